//! One contender in a loop, for instruction-count profiles (callgrind is repeatable on a
//! noisy machine where timings are not):
//!
//! ```sh
//! cd bench/jwt && CARGO_TARGET_DIR=../../target/bench cargo build --profile bench --example loop
//! valgrind --tool=callgrind --cache-sim=yes --branch-sim=yes \
//!     ../../target/bench/release/examples/loop tessera HS256 20000
//! ```
//!
//! Arguments: `floor` or `tessera`, an algorithm name, an iteration count.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use tessera_jwt::{Algorithm, Validation};
use tessera_jwt_bench::*;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let who = args.get(1).map_or("tessera", String::as_str);
    let alg: Algorithm = args.get(2).map_or("HS256", String::as_str).parse().unwrap();
    let n: u32 = args.get(3).map_or(100_000, |s| s.parse().unwrap());
    let k = case(alg);
    let vk = k.tessera.verifying_key();
    let policy = Validation::access_token(ISS, &["api"]);
    let token = k.token.clone();
    match who {
        "floor" => {
            for _ in 0..n {
                black_box(floor_verify(black_box(&token), &k.floor_v).unwrap());
            }
        }
        "tessera" => {
            for _ in 0..n {
                black_box(tessera_jwt::verify::<App>(black_box(&token), &vk, &policy).unwrap());
            }
        }
        other => panic!("unknown contender {other}"),
    }
}
