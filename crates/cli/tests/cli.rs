//! The `tessera` binary, driven as a user drives it: real files, real processes, exit codes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on a broken precondition"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn tessera() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("run tessera")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Generates a key in `dir`; returns (private path, public key text on stdout).
fn generate(dir: &Path, alg: &str, format: &str) -> (PathBuf, String) {
    let out = dir.join(format!("{alg}.{format}"));
    let o = run(tessera()
        .args([
            "keys", "generate", "--alg", alg, "--format", format, "--out",
        ])
        .arg(&out));
    assert!(o.status.success(), "generate {alg}: {}", stderr(&o));
    (out, stdout(&o))
}

fn sign(key: &Path, extra: &[&str]) -> String {
    let o = run(tessera()
        .args(["token", "sign", "--key"])
        .arg(key)
        .args([
            "--claims",
            r#"{"sub":"u1","roles":["reader"]}"#,
            "--iss",
            "https://auth.test",
            "--aud",
            "api",
            "--typ",
            "at+jwt",
        ])
        .args(extra));
    assert!(o.status.success(), "sign: {}", stderr(&o));
    stdout(&o).trim().to_string()
}

fn verify(token: &str, key: &Path, extra: &[&str]) -> Output {
    run(tessera()
        .args(["token", "verify", token, "--key"])
        .arg(key)
        .args([
            "--iss",
            "https://auth.test",
            "--aud",
            "api",
            "--typ",
            "at+jwt",
        ])
        .args(extra))
}

#[test]
fn every_asymmetric_algorithm_round_trips_through_jwk_and_pem() {
    let dir = tempfile::tempdir().unwrap();
    for alg in ["EdDSA", "ES256", "ES384", "RS256", "PS256", "RS512"] {
        for format in ["jwk", "pem"] {
            let (private, public) = generate(dir.path(), alg, format);
            let public_path = dir.path().join(format!("{alg}.{format}.pub"));
            std::fs::write(&public_path, &public).unwrap();
            let mut extra = vec![];
            if format == "pem" && alg.starts_with("PS") || alg == "RS512" {
                extra = vec!["--alg", alg];
            }
            let token = sign(&private, &extra);
            let o = verify(&token, &public_path, &extra);
            assert!(o.status.success(), "{alg}/{format}: {}", stderr(&o));
            let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
            assert_eq!(v["claims"]["sub"], "u1");
            assert_eq!(v["header"]["alg"], alg);
        }
    }
}

#[cfg(unix)]
#[test]
fn private_key_file_is_0600_and_never_overwritten() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = generate(dir.path(), "EdDSA", "jwk");
    let mode = std::fs::metadata(&private).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(
        !public.contains("\"d\""),
        "public output leaks the private key"
    );
    let before = std::fs::read(&private).unwrap();
    let o = run(tessera()
        .args(["keys", "generate", "--alg", "EdDSA", "--out"])
        .arg(&private));
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(std::fs::read(&private).unwrap(), before);
}

#[test]
fn hmac_secret_file_signs_and_verifies_and_short_secret_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret.bin");
    std::fs::write(&secret, [7u8; 32]).unwrap();
    let token = sign(&secret, &["--alg", "HS256"]);
    assert!(verify(&token, &secret, &["--alg", "HS256"])
        .status
        .success());

    let short = dir.path().join("short.bin");
    std::fs::write(&short, [7u8; 16]).unwrap();
    let o = run(tessera()
        .args(["token", "sign", "--alg", "HS256", "--key"])
        .arg(&short));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("too short"), "{}", stderr(&o));
}

#[test]
fn a_jwks_picks_the_key_by_kid() {
    let dir = tempfile::tempdir().unwrap();
    let (k1, p1) = generate(dir.path(), "EdDSA", "jwk");
    let (_k2, p2) = generate(dir.path(), "ES256", "jwk");
    let jwks = format!(r#"{{"keys":[{p1},{p2}]}}"#);
    let set = dir.path().join("jwks.json");
    std::fs::write(&set, jwks).unwrap();
    let token = sign(&k1, &[]);
    let o = verify(&token, &set, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn rejections_exit_1_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = generate(dir.path(), "EdDSA", "jwk");
    let public_path = dir.path().join("pub.jwk");
    std::fs::write(&public_path, public).unwrap();

    let token = sign(&private, &[]);
    let o = run(tessera()
        .args(["token", "verify", &token, "--key"])
        .arg(&public_path)
        .args(["--iss", "https://auth.test", "--aud", "other"]));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("audience"), "{}", stderr(&o));

    let expired = sign(&private, &["--ttl", "0s"]);
    let o = verify(&expired, &public_path, &["--leeway", "0"]);
    // exp == now may still pass within the same second; a ttl of 0 with leeway 0 expires
    // at the latest one second later.
    if o.status.success() {
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let o = verify(&expired, &public_path, &["--leeway", "0"]);
        assert_eq!(o.status.code(), Some(1));
    }

    let mut tampered = token.clone();
    tampered.insert(tampered.find('.').unwrap() + 5, 'A');
    let o = verify(&tampered, &public_path, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));

    let o = run(tessera()
        .args(["token", "verify", &token, "--key"])
        .arg(&public_path)
        .args(["--iss", "https://auth.test", "--aud", "api", "--typ", "JWT"]));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
}

#[test]
fn decode_marks_output_unverified_and_signature_only_prints_the_payload() {
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = generate(dir.path(), "ES256", "jwk");
    let public_path = dir.path().join("pub.jwk");
    std::fs::write(&public_path, public).unwrap();
    let token = sign(&private, &[]);

    let o = run(tessera().args(["token", "decode", &token]));
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["verified"], false);
    assert!(stderr(&o).contains("WITHOUT verification"));

    let o = run(tessera()
        .args(["token", "verify", &token, "--signature-only", "--key"])
        .arg(&public_path));
    assert!(o.status.success(), "{}", stderr(&o));
    let payload: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(payload["sub"], "u1");
}

#[test]
fn bad_files_and_usage_errors_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.jwk");
    let o = run(tessera()
        .args(["token", "verify", "a.b.c", "--key"])
        .arg(&missing));
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o).trim().lines().count(), 1, "{}", stderr(&o));

    let junk = dir.path().join("junk.jwk");
    std::fs::write(&junk, r#"{"kty":"EC","crv":"P-256","x":"!!","y":"??"}"#).unwrap();
    let o = run(tessera()
        .args(["token", "verify", "a.b.c", "--key"])
        .arg(&junk));
    assert_eq!(o.status.code(), Some(2));
    assert!(!stderr(&o).contains("panicked"));

    let o = run(tessera()
        .args(["token", "sign", "--claims", "[1]", "--key"])
        .arg(&junk));
    assert_eq!(o.status.code(), Some(2));

    let o = run(tessera().args(["keys", "generate", "--alg", "none"]));
    assert_eq!(o.status.code(), Some(2));

    let o = run(tessera().args(["frobnicate"]));
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn garbage_tokens_are_rejected_not_panicked_on() {
    let dir = tempfile::tempdir().unwrap();
    let (_private, public) = generate(dir.path(), "EdDSA", "jwk");
    let public_path = dir.path().join("pub.jwk");
    std::fs::write(&public_path, public).unwrap();
    for t in [
        "",
        "a",
        "a.b",
        "a.b.c.d",
        "eyJhbGciOiJub25lIn0.e30.",
        "....",
        "\u{1}\u{2}.\u{7f}.x",
    ] {
        let o = verify(t, &public_path, &[]);
        assert_eq!(o.status.code(), Some(1), "token {t:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"));
    }
}
