//! Fixtures shared by the benchmarks: one fixed realistic access token (about 330 bytes of
//! claims, with `roles`), the floor (raw aws-lc-rs primitive + base64url + serde_json into
//! plain structs, no validation), and the peer crates set up on the same key material.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use aws_lc_rs::signature::{self as sig, KeyPair as _};
use aws_lc_rs::{hmac, rand as lc_rand};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jwt_simple::prelude::{
    Duration as JsDuration, ECDSAP256PublicKeyLike, EdDSAPublicKeyLike, MACLike, RSAPublicKeyLike,
    VerificationOptions,
};
use serde::{Deserialize, Serialize};
use tessera_jwt::{Algorithm, Audience, Claims, Header, RegisteredClaims, SigningKey};

pub const ISS: &str = "https://auth.tessera.example";
pub const IAT: i64 = 1_795_000_000;
pub const EXP: i64 = 4_000_000_000;

/// The application claims of a Tessera access token (DESIGN §3).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct App {
    pub sid: String,
    pub client_id: String,
    pub roles: Vec<String>,
    pub scope: String,
}

/// The same token as one flat struct, for the floor and the peers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Flat {
    pub iss: String,
    pub sub: String,
    pub aud: Vec<String>,
    pub exp: i64,
    pub nbf: i64,
    pub iat: i64,
    pub jti: String,
    pub sid: String,
    pub client_id: String,
    pub roles: Vec<String>,
    pub scope: String,
}

#[derive(Serialize, Deserialize)]
pub struct FloorHeader {
    pub alg: String,
    #[serde(default)]
    pub typ: Option<String>,
    #[serde(default)]
    pub kid: Option<String>,
}

pub fn app() -> App {
    App {
        sid: "b6a2f0c4-3d1e-4f7a-9c8b-2e5d7a1f0c93".into(),
        client_id: "web".into(),
        roles: vec!["admin".into(), "editor".into(), "viewer".into()],
        scope: "notes:read notes:write profile".into(),
    }
}

pub fn claims() -> Claims<App> {
    Claims::new(
        RegisteredClaims {
            iss: Some(ISS.into()),
            sub: Some("0b9d5e1c-7f3a-4c2e-9a41-5d6f8e2b3c10".into()),
            aud: Some(Audience::Many(vec!["api".into()])),
            exp: Some(EXP),
            nbf: Some(IAT),
            iat: Some(IAT),
            jti: Some("7f9c2ba4-e88f-4f3b-a0a1-2d5e6c8b9f01".into()),
        },
        app(),
    )
}

pub fn flat() -> Flat {
    let a = app();
    Flat {
        iss: ISS.into(),
        sub: "0b9d5e1c-7f3a-4c2e-9a41-5d6f8e2b3c10".into(),
        aud: vec!["api".into()],
        exp: EXP,
        nbf: IAT,
        iat: IAT,
        jti: "7f9c2ba4-e88f-4f3b-a0a1-2d5e6c8b9f01".into(),
        sid: a.sid,
        client_id: a.client_id,
        roles: a.roles,
        scope: a.scope,
    }
}

// ------------------------------------------------------------------------------------------
// The floor

pub enum FloorVerifier {
    Hmac(hmac::Key),
    Public(sig::ParsedPublicKey),
}

impl FloorVerifier {
    #[inline]
    pub fn verify(&self, msg: &[u8], s: &[u8]) -> bool {
        match self {
            FloorVerifier::Hmac(k) => hmac::verify(k, msg, s).is_ok(),
            FloorVerifier::Public(k) => k.verify_sig(msg, s).is_ok(),
        }
    }
}

pub enum FloorSigner {
    Hmac(hmac::Key),
    Rsa(sig::RsaKeyPair),
    Ec(sig::EcdsaKeyPair),
    Ed(sig::Ed25519KeyPair),
}

impl FloorSigner {
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        match self {
            FloorSigner::Hmac(k) => hmac::sign(k, msg).as_ref().to_vec(),
            FloorSigner::Rsa(k) => {
                let mut out = vec![0; k.public_modulus_len()];
                k.sign(
                    &sig::RSA_PKCS1_SHA256,
                    &lc_rand::SystemRandom::new(),
                    msg,
                    &mut out,
                )
                .unwrap();
                out
            }
            FloorSigner::Ec(k) => k
                .sign(&lc_rand::SystemRandom::new(), msg)
                .unwrap()
                .as_ref()
                .to_vec(),
            FloorSigner::Ed(k) => k.sign(msg).as_ref().to_vec(),
        }
    }
}

pub fn floor_verify(token: &str, key: &FloorVerifier) -> Option<Flat> {
    let mut it = token.splitn(3, '.');
    let (h, p, s) = (it.next()?, it.next()?, it.next()?);
    let hb = URL_SAFE_NO_PAD.decode(h).ok()?;
    let header: FloorHeader = serde_json::from_slice(&hb).ok()?;
    black_box(&header);
    let sig = URL_SAFE_NO_PAD.decode(s).ok()?;
    if !key.verify(&token.as_bytes()[..h.len() + 1 + p.len()], &sig) {
        return None;
    }
    let pb = URL_SAFE_NO_PAD.decode(p).ok()?;
    serde_json::from_slice(&pb).ok()
}

pub fn floor_sign(alg: &str, kid: &str, claims: &Flat, key: &FloorSigner) -> String {
    let header = FloorHeader {
        alg: alg.into(),
        typ: Some("at+jwt".into()),
        kid: Some(kid.into()),
    };
    let h = serde_json::to_vec(&header).unwrap();
    let p = serde_json::to_vec(claims).unwrap();
    let mut out = String::with_capacity(700);
    URL_SAFE_NO_PAD.encode_string(&h, &mut out);
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(&p, &mut out);
    let s = key.sign(out.as_bytes());
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(&s, &mut out);
    out
}

// ------------------------------------------------------------------------------------------
// One algorithm's fixtures, all built from the same key material.

pub struct Case {
    pub name: &'static str,
    pub tessera: SigningKey,
    pub token: String,
    pub floor_v: FloorVerifier,
    pub floor_s: FloorSigner,
    pub jwt_dec: jsonwebtoken::DecodingKey,
    pub jwt_enc: jsonwebtoken::EncodingKey,
    pub jwt_alg: jsonwebtoken::Algorithm,
    pub simple: Simple,
}

pub enum Simple {
    Hs(jwt_simple::algorithms::HS256Key),
    Rs(jwt_simple::algorithms::RS256KeyPair),
    Es(jwt_simple::algorithms::ES256KeyPair),
    Ed(jwt_simple::algorithms::Ed25519KeyPair),
}

pub fn simple_options() -> VerificationOptions {
    VerificationOptions {
        allowed_issuers: Some([ISS.to_owned()].into_iter().collect()),
        allowed_audiences: Some(["api".to_owned()].into_iter().collect()),
        time_tolerance: Some(JsDuration::from_secs(30)),
        ..Default::default()
    }
}

impl Simple {
    pub fn verify(&self, token: &str) -> bool {
        type C = jwt_simple::claims::JWTClaims<App>;
        let o = Some(simple_options());
        let r: Result<C, _> = match self {
            Simple::Hs(k) => k.verify_token(token, o),
            Simple::Rs(k) => k.public_key().verify_token(token, o),
            Simple::Es(k) => k.public_key().verify_token(token, o),
            Simple::Ed(k) => k.public_key().verify_token(token, o),
        };
        r.is_ok()
    }
}

pub fn case(alg: Algorithm) -> Case {
    let tessera = SigningKey::generate(alg).unwrap().with_kid("k1");
    let token = tessera
        .sign(&Header::new().typ("at+jwt"), &claims())
        .unwrap();
    let secret = tessera.to_secret_bytes();
    let spki_pem = if alg.is_hmac() {
        String::new()
    } else {
        tessera.verifying_key().to_pem().unwrap()
    };
    let pkcs8_pem = if alg.is_hmac() {
        String::new()
    } else {
        tessera.to_pem().unwrap().to_string()
    };
    let (floor_v, floor_s, jwt_dec, jwt_enc, jwt_alg, simple, name) = match alg {
        Algorithm::HS256 => (
            FloorVerifier::Hmac(hmac::Key::new(hmac::HMAC_SHA256, &secret)),
            FloorSigner::Hmac(hmac::Key::new(hmac::HMAC_SHA256, &secret)),
            jsonwebtoken::DecodingKey::from_secret(&secret),
            jsonwebtoken::EncodingKey::from_secret(&secret),
            jsonwebtoken::Algorithm::HS256,
            Simple::Hs(jwt_simple::algorithms::HS256Key::from_bytes(&secret)),
            "HS256",
        ),
        Algorithm::RS256 => {
            let kp = sig::RsaKeyPair::from_pkcs8(&secret).unwrap();
            let pk = sig::ParsedPublicKey::new(
                &sig::RSA_PKCS1_2048_8192_SHA256,
                kp.public_key().as_ref(),
            )
            .unwrap();
            (
                FloorVerifier::Public(pk),
                FloorSigner::Rsa(kp),
                jsonwebtoken::DecodingKey::from_rsa_pem(spki_pem.as_bytes()).unwrap(),
                jsonwebtoken::EncodingKey::from_rsa_pem(pkcs8_pem.as_bytes()).unwrap(),
                jsonwebtoken::Algorithm::RS256,
                Simple::Rs(jwt_simple::algorithms::RS256KeyPair::from_pem(&pkcs8_pem).unwrap()),
                "RS256",
            )
        }
        Algorithm::ES256 => {
            let kp = sig::EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, &secret)
                .unwrap();
            let pk =
                sig::ParsedPublicKey::new(&sig::ECDSA_P256_SHA256_FIXED, kp.public_key().as_ref())
                    .unwrap();
            (
                FloorVerifier::Public(pk),
                FloorSigner::Ec(kp),
                jsonwebtoken::DecodingKey::from_ec_pem(spki_pem.as_bytes()).unwrap(),
                jsonwebtoken::EncodingKey::from_ec_pem(pkcs8_pem.as_bytes()).unwrap(),
                jsonwebtoken::Algorithm::ES256,
                Simple::Es(jwt_simple::algorithms::ES256KeyPair::from_pem(&pkcs8_pem).unwrap()),
                "ES256",
            )
        }
        Algorithm::EdDSA => {
            let kp = sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&secret).unwrap();
            let pk = sig::ParsedPublicKey::new(&sig::ED25519, kp.public_key().as_ref()).unwrap();
            (
                FloorVerifier::Public(pk),
                FloorSigner::Ed(kp),
                jsonwebtoken::DecodingKey::from_ed_pem(spki_pem.as_bytes()).unwrap(),
                jsonwebtoken::EncodingKey::from_ed_pem(pkcs8_pem.as_bytes()).unwrap(),
                jsonwebtoken::Algorithm::EdDSA,
                Simple::Ed(jwt_simple::algorithms::Ed25519KeyPair::from_pem(&pkcs8_pem).unwrap()),
                "EdDSA",
            )
        }
        _ => unreachable!(),
    };
    Case {
        name,
        tessera,
        token,
        floor_v,
        floor_s,
        jwt_dec,
        jwt_enc,
        jwt_alg,
        simple,
    }
}
