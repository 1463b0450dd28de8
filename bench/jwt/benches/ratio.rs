//! Interleaved ratio measurement for a noisy, shared 2-core machine.
//!
//! Criterion measures one function after another, so load that changes during a run skews
//! any comparison between functions. Here every round times a short batch of each contender
//! back to back, and the reported figure is the median over rounds of the per-round ratio
//! `floor time / contender time` (higher is faster; 1.0 = as fast as the floor). Run:
//!
//! ```sh
//! cd bench/jwt && CARGO_TARGET_DIR=/work/main/target/bench cargo bench --bench ratio
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use tessera_jwt::{Algorithm, Header, Validation};
use tessera_jwt_bench::*;

const ROUNDS: usize = 1501;

/// Nanoseconds per iteration of `f`, over a batch sized to take about `target`.
fn batch(iters: u32, f: &mut dyn FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    t.elapsed().as_nanos() as f64 / f64::from(iters)
}

fn calibrate(f: &mut dyn FnMut(), target: Duration) -> u32 {
    let mut n = 1u32;
    loop {
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        if t.elapsed() >= target / 4 || n >= 1 << 20 {
            let per = t.elapsed().as_nanos().max(1) / u128::from(n);
            return (target.as_nanos() / per.max(1)).clamp(1, 1 << 22) as u32;
        }
        n *= 2;
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Runs the contenders interleaved; prints medians and the median per-round ratios vs the
/// first contender (the floor).
fn compare(label: &str, contenders: &mut [(&str, &mut dyn FnMut())]) {
    let target = Duration::from_micros(250);
    let iters: Vec<u32> = contenders
        .iter_mut()
        .map(|(_, f)| calibrate(*f, target))
        .collect();
    let n = contenders.len();
    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(ROUNDS); n];
    let mut ratios: Vec<Vec<f64>> = vec![Vec::with_capacity(ROUNDS); n];
    for round in 0..ROUNDS {
        let mut this = vec![0.0; n];
        // Rotate the order each round so that no contender always runs first.
        for k in 0..n {
            let i = (k + round) % n;
            this[i] = batch(iters[i], contenders[i].1);
        }
        for i in 0..n {
            times[i].push(this[i]);
            ratios[i].push(this[0] / this[i]);
        }
    }
    println!("{label}");
    for i in 0..n {
        let t = median(&mut times[i]);
        let r = median(&mut ratios[i]);
        println!(
            "  {:<14} median {:>10.2} µs   floor/this {:>5.2}",
            contenders[i].0,
            t / 1000.0,
            r
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument filters by algorithm name.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    let policy = Validation::access_token(ISS, &["api"]);
    for alg in [
        Algorithm::HS256,
        Algorithm::RS256,
        Algorithm::ES256,
        Algorithm::EdDSA,
    ] {
        if !filter.is_empty() && !filter.iter().any(|f| alg.as_str().contains(f.as_str())) {
            continue;
        }
        let k = case(alg);
        let vk = k.tessera.verifying_key();
        let mut jv = jsonwebtoken::Validation::new(k.jwt_alg);
        jv.set_issuer(&[ISS]);
        jv.set_audience(&["api"]);
        let token = k.token.clone();
        tessera_jwt::verify::<App>(&token, &vk, &policy).unwrap();
        compare(
            &format!("verify+validate {}", k.name),
            &mut [
                ("floor", &mut || {
                    black_box(floor_verify(black_box(&token), &k.floor_v).unwrap());
                }),
                ("tessera", &mut || {
                    black_box(tessera_jwt::verify::<App>(black_box(&token), &vk, &policy).unwrap());
                }),
                ("jsonwebtoken", &mut || {
                    black_box(
                        jsonwebtoken::decode::<Flat>(black_box(&token), &k.jwt_dec, &jv).unwrap(),
                    );
                }),
                ("jwt-simple", &mut || {
                    assert!(k.simple.verify(black_box(&token)));
                }),
            ],
        );
        let claims = claims();
        let flat = flat();
        let header = Header::new().typ("at+jwt");
        let mut jh = jsonwebtoken::Header::new(k.jwt_alg);
        jh.typ = Some("at+jwt".into());
        jh.kid = Some("k1".into());
        compare(
            &format!("sign {}", k.name),
            &mut [
                ("floor", &mut || {
                    black_box(floor_sign(k.name, "k1", black_box(&flat), &k.floor_s));
                }),
                ("tessera", &mut || {
                    black_box(k.tessera.sign(&header, black_box(&claims)).unwrap());
                }),
                ("jsonwebtoken", &mut || {
                    black_box(jsonwebtoken::encode(&jh, black_box(&flat), &k.jwt_enc).unwrap());
                }),
            ],
        );
    }
}
