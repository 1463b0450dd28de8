//! The harness of `run.sh` (see there): floor, this tree and an earlier revision, interleaved.

use std::hint::black_box;
use std::time::{Duration, Instant};
use tessera_jwt::{Algorithm, Validation};
use tessera_jwt_bench::*;

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

fn main() {
    let rounds: usize = std::env::args().nth(1).map_or(3001, |s| s.parse().unwrap());
    let alg_name = std::env::args().nth(2).unwrap_or("HS256".into());
    let alg: Algorithm = alg_name.parse().unwrap();
    let k = case(alg);
    let vk = k.tessera.verifying_key();
    let policy = Validation::access_token(ISS, &["api"]);
    let secret = k.tessera.to_secret_bytes();
    let bk = if alg.is_hmac() {
        tessera_jwt_base::SigningKey::from_hmac_secret(tessera_jwt_base::Algorithm::HS256, &secret)
            .unwrap()
    } else {
        tessera_jwt_base::SigningKey::from_pkcs8_der(alg_name.parse().unwrap(), &secret).unwrap()
    }
    .with_kid("k1");
    let bvk = bk.verifying_key();
    let bpolicy = tessera_jwt_base::Validation::access_token(ISS, &["api"]);
    let token = k.token.clone();
    tessera_jwt::verify::<App>(&token, &vk, &policy).unwrap();
    tessera_jwt_base::verify::<App>(&token, &bvk, &bpolicy).unwrap();
    let mut fs: Vec<(&str, Box<dyn FnMut()>)> = vec![
        (
            "floor",
            Box::new(|| {
                black_box(floor_verify(black_box(&token), &k.floor_v).unwrap());
            }),
        ),
        (
            "new",
            Box::new(|| {
                black_box(tessera_jwt::verify::<App>(black_box(&token), &vk, &policy).unwrap());
            }),
        ),
        (
            "base",
            Box::new(|| {
                black_box(
                    tessera_jwt_base::verify::<App>(black_box(&token), &bvk, &bpolicy).unwrap(),
                );
            }),
        ),
    ];
    if let Ok(only) = std::env::var("ONLY") {
        let n: u32 = std::env::var("N").map_or(1_000_000, |v| v.parse().unwrap());
        let i = fs.iter().position(|(name, _)| *name == only).unwrap();
        let f = &mut fs[i].1;
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        println!(
            "{only}: {:.1} ns",
            t.elapsed().as_nanos() as f64 / f64::from(n)
        );
        return;
    }
    let target = Duration::from_micros(250);
    let iters: Vec<u32> = fs
        .iter_mut()
        .map(|(_, f)| calibrate(&mut **f, target))
        .collect();
    let n = fs.len();
    let mut t = vec![Vec::new(); n];
    let mut r_fn = Vec::new();
    let mut r_fb = Vec::new();
    let mut r_bn = Vec::new();
    for round in 0..rounds {
        let mut this = vec![0.0; n];
        for j in 0..n {
            let i = (j + round) % n;
            this[i] = batch(iters[i], &mut *fs[i].1);
        }
        for i in 0..n {
            t[i].push(this[i]);
        }
        r_fn.push(this[0] / this[1]);
        r_fb.push(this[0] / this[2]);
        r_bn.push(this[2] / this[1]);
    }
    println!("{alg_name}: floor {:.3} µs new {:.3} base {:.3} | floor/new {:.3} floor/base {:.3} base/new {:.3}",
        median(&mut t[0]) / 1e3, median(&mut t[1]) / 1e3, median(&mut t[2]) / 1e3,
        median(&mut r_fn), median(&mut r_fb), median(&mut r_bn));
}
