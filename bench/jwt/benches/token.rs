//! Token core benchmarks: tessera-jwt against its floor and against peer crates, on one fixed
//! realistic access token (about 280 bytes of claims, with `roles`), in the same criterion run.
//!
//! floor = what no JWT library can avoid: the raw aws-lc-rs primitive with a pre-parsed key,
//! base64url decoding of the three segments, and serde_json parsing of header and claims into
//! plain structs (no validation, no strictness). Run:
//!
//! ```sh
//! cd bench/jwt && CARGO_TARGET_DIR=/work/main/target/bench cargo bench --bench token
//! ```

use std::hint::black_box;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use criterion::{criterion_group, criterion_main, Criterion};
use tessera_jwt::{Algorithm, Header, Validation};
use tessera_jwt_bench::*;

fn bench(c: &mut Criterion) {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    let policy = Validation::access_token(ISS, &["api"]);
    for alg in [
        Algorithm::HS256,
        Algorithm::RS256,
        Algorithm::ES256,
        Algorithm::EdDSA,
    ] {
        let k = case(alg);
        let vk = k.tessera.verifying_key();
        let mut jv = jsonwebtoken::Validation::new(k.jwt_alg);
        jv.set_issuer(&[ISS]);
        jv.set_audience(&["api"]);
        let flat = flat();

        // Every contender must accept the token, or the comparison means nothing.
        let payload_len = URL_SAFE_NO_PAD
            .decode(k.token.split('.').nth(1).unwrap())
            .unwrap()
            .len();
        eprintln!(
            "{}: token {} bytes, claims {} bytes",
            k.name,
            k.token.len(),
            payload_len
        );
        tessera_jwt::verify::<App>(&k.token, &vk, &policy).unwrap();
        assert!(floor_verify(&k.token, &k.floor_v).is_some());
        jsonwebtoken::decode::<Flat>(&k.token, &k.jwt_dec, &jv).unwrap();
        assert!(k.simple.verify(&k.token), "jwt-simple rejects the token");

        let mut g = c.benchmark_group(format!("verify/{}", k.name));
        g.bench_function("tessera", |b| {
            b.iter(|| tessera_jwt::verify::<App>(black_box(&k.token), &vk, &policy).unwrap())
        });
        g.bench_function("floor", |b| {
            b.iter(|| floor_verify(black_box(&k.token), &k.floor_v).unwrap())
        });
        g.bench_function("jsonwebtoken", |b| {
            b.iter(|| jsonwebtoken::decode::<Flat>(black_box(&k.token), &k.jwt_dec, &jv).unwrap())
        });
        g.bench_function("jwt-simple", |b| {
            b.iter(|| assert!(k.simple.verify(black_box(&k.token))))
        });
        g.finish();

        let claims = claims();
        let mut jh = jsonwebtoken::Header::new(k.jwt_alg);
        jh.typ = Some("at+jwt".into());
        jh.kid = Some("k1".into());
        let header = Header::new().typ("at+jwt");
        let mut g = c.benchmark_group(format!("sign/{}", k.name));
        g.bench_function("tessera", |b| {
            b.iter(|| k.tessera.sign(&header, black_box(&claims)).unwrap())
        });
        g.bench_function("floor", |b| {
            b.iter(|| floor_sign(k.name, "k1", black_box(&flat), &k.floor_s))
        });
        g.bench_function("jsonwebtoken", |b| {
            b.iter(|| jsonwebtoken::encode(&jh, black_box(&flat), &k.jwt_enc).unwrap())
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
