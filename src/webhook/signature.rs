//! Standard Webhooks signatures (what Svix sends for Gigs).
//!
//! Signed content is `{id}.{timestamp}.{raw body}`, HMAC-SHA256 keyed with the bytes after
//! `whsec_`; the signature header holds space-separated `v1,<base64>` entries. Verification
//! runs over the raw bytes, before anything is parsed.
//!
//! The signing secret ([`WebhookSecret`]) lives here too, beside the code that uses it.

use std::num::IntErrorKind;

use axum::http::HeaderMap;
use base64::Engine;
use hmac::{digest::CtOutput, Hmac, Mac};
use secrecy::SecretString;
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// A Standard Webhooks signing secret: the raw HMAC key bytes.
#[derive(Clone)]
pub struct WebhookSecret(Vec<u8>);

impl WebhookSecret {
    /// Parse `whsec_<base64>` (the prefix is optional); the key must be 24 to 64 bytes.
    pub fn parse(text: &str) -> Result<Self, String> {
        let b64 = text.strip_prefix("whsec_").unwrap_or(text);
        // Padding is optional: some tools print secrets without the trailing '='.
        const LENIENT: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let bytes = LENIENT
            .decode(b64)
            .map_err(|_| "is not base64 after the optional whsec_ prefix".to_string())?;
        if !(24..=64).contains(&bytes.len()) {
            return Err(format!(
                "must decode to 24 to 64 bytes, got {}",
                bytes.len()
            ));
        }
        Ok(Self(bytes))
    }

    /// The HMAC key.
    pub fn key(&self) -> &[u8] {
        &self.0
    }

    /// The `whsec_…` form (used by `demo` to hand its own secret to `replay`).
    pub fn to_whsec(&self) -> SecretString {
        SecretString::from(format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(&self.0)
        ))
    }

    /// A fresh random secret (for `demo`).
    pub fn random() -> Self {
        let bytes: [u8; 32] = rand::random();
        Self(bytes.to_vec())
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// Why a delivery's signature was refused. The messages say what to fix, never a secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("missing header {0} (or its svix- twin)")]
    MissingHeader(&'static str),
    #[error("webhook-timestamp is not a whole number of seconds")]
    InvalidTimestamp,
    #[error("webhook-timestamp is outside the allowed tolerance")]
    TimestampOutOfTolerance,
    #[error("webhook-signature has no v1 signature")]
    NoSupportedSignature,
    #[error("no signature matches")]
    Mismatch,
}

impl SignatureError {
    /// Stable machine-readable code for error bodies and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingHeader(_) => "missing_signature_header",
            Self::InvalidTimestamp => "invalid_timestamp",
            Self::TimestampOutOfTolerance => "timestamp_out_of_tolerance",
            Self::NoSupportedSignature => "unsupported_signature",
            Self::Mismatch => "invalid_signature",
        }
    }
}

/// Checks deliveries against every configured secret (several during a rotation).
#[derive(Clone)]
pub struct Verifier {
    /// One keyed HMAC per secret, cloned per check so the key schedule is done once.
    keys: Vec<HmacSha256>,
    tolerance_secs: u64,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("secrets", &self.keys.len())
            .field("tolerance_secs", &self.tolerance_secs)
            .finish()
    }
}

fn header<'a>(
    headers: &'a HeaderMap,
    name: &'static str,
    svix: &'static str,
) -> Result<&'a str, SignatureError> {
    headers
        .get(name)
        .or_else(|| headers.get(svix))
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(SignatureError::MissingHeader(name))
}

impl Verifier {
    pub fn new(secrets: &[WebhookSecret], tolerance: std::time::Duration) -> Self {
        let keys = secrets
            .iter()
            .map(|s| HmacSha256::new_from_slice(s.key()).expect("HMAC accepts any key length"))
            .collect();
        Self {
            keys,
            tolerance_secs: tolerance.as_secs(),
        }
    }

    /// Verify a delivery; `now` is Unix seconds. Returns the message id on success.
    pub fn verify<'h>(
        &self,
        headers: &'h HeaderMap,
        body: &[u8],
        now: i64,
    ) -> Result<&'h str, SignatureError> {
        let id = header(headers, "webhook-id", "svix-id")?;
        let ts_text = header(headers, "webhook-timestamp", "svix-timestamp")?;
        let sigs = header(headers, "webhook-signature", "svix-signature")?;

        let ts: i64 = ts_text.parse().map_err(|e: std::num::ParseIntError| {
            match e.kind() {
                // A whole number, just too far from now to fit.
                IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => {
                    SignatureError::TimestampOutOfTolerance
                }
                _ => SignatureError::InvalidTimestamp,
            }
        })?;
        // `abs_diff`: the sender picks `ts`, and `now - ts` overflows for ts near i64::MIN.
        if now.abs_diff(ts) > self.tolerance_secs {
            return Err(SignatureError::TimestampOutOfTolerance);
        }

        let v1: Vec<&str> = sigs
            .split(' ')
            .filter_map(|entry| entry.split_once(','))
            .filter(|(version, _)| *version == "v1")
            .map(|(_, b64)| b64)
            .collect();
        if v1.is_empty() {
            return Err(SignatureError::NoSupportedSignature);
        }
        // An undecodable v1 entry simply matches nothing.
        let candidates: Vec<Vec<u8>> = v1
            .iter()
            .filter_map(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
            .collect();

        for key in &self.keys {
            let expected = mac(key.clone(), id, ts_text, body).into_bytes();
            // Constant-time comparison; only the (public) length can short-cut it.
            if candidates
                .iter()
                .any(|candidate| bool::from(expected.as_slice().ct_eq(candidate)))
            {
                return Ok(id);
            }
        }
        Err(SignatureError::Mismatch)
    }
}

fn mac(mut key: HmacSha256, id: &str, ts: &str, body: &[u8]) -> CtOutput<HmacSha256> {
    key.update(id.as_bytes());
    key.update(b".");
    key.update(ts.as_bytes());
    key.update(b".");
    key.update(body);
    key.finalize()
}

/// Sign a payload the way Gigs (Svix) does; returns the `webhook-signature` value.
pub fn sign(secret: &WebhookSecret, id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = HmacSha256::new_from_slice(secret.key()).expect("HMAC accepts any key length");
    let tag = mac(key, id, &timestamp.to_string(), body).into_bytes();
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    // The example from the Standard Webhooks specification / Svix docs.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn headers(prefix: &str, sig: &str, ts: i64) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::HeaderName::from_bytes(format!("{prefix}-id").as_bytes()).unwrap(),
            HeaderValue::from_static(ID),
        );
        h.insert(
            axum::http::HeaderName::from_bytes(format!("{prefix}-timestamp").as_bytes()).unwrap(),
            HeaderValue::from_str(&ts.to_string()).unwrap(),
        );
        h.insert(
            axum::http::HeaderName::from_bytes(format!("{prefix}-signature").as_bytes()).unwrap(),
            HeaderValue::from_str(sig).unwrap(),
        );
        h
    }

    fn verifier(secrets: &[&str]) -> Verifier {
        let s: Vec<_> = secrets
            .iter()
            .map(|s| WebhookSecret::parse(s).unwrap())
            .collect();
        Verifier::new(&s, std::time::Duration::from_secs(300))
    }

    #[test]
    fn signing_matches_the_published_example() {
        let secret = WebhookSecret::parse(SECRET).unwrap();
        assert_eq!(sign(&secret, ID, TS, BODY), SIG);
    }

    #[test]
    fn accepts_webhook_and_svix_headers() {
        let v = verifier(&[SECRET]);
        assert_eq!(v.verify(&headers("webhook", SIG, TS), BODY, TS), Ok(ID));
        assert_eq!(v.verify(&headers("svix", SIG, TS), BODY, TS + 299), Ok(ID));
    }

    #[test]
    fn accepts_any_matching_entry_and_any_secret() {
        let v = verifier(&["whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", SECRET]);
        let sig = format!("v2,abc v1,Zm9v {SIG}");
        assert_eq!(v.verify(&headers("webhook", &sig, TS), BODY, TS), Ok(ID));
    }

    #[test]
    fn rejects_what_it_must() {
        let v = verifier(&[SECRET]);
        let tampered = br#"{"test": 2432232315}"#;
        assert_eq!(
            v.verify(&headers("webhook", SIG, TS), tampered, TS),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            v.verify(&headers("webhook", SIG, TS), BODY, TS + 301),
            Err(SignatureError::TimestampOutOfTolerance)
        );
        assert_eq!(
            v.verify(&headers("webhook", SIG, TS), BODY, TS - 301),
            Err(SignatureError::TimestampOutOfTolerance)
        );
        assert_eq!(
            v.verify(&headers("webhook", "v1,not*base64", TS), BODY, TS),
            Err(SignatureError::Mismatch)
        );
        let v2_only = SIG.replace("v1,", "v2,");
        assert_eq!(
            v.verify(&headers("webhook", &v2_only, TS), BODY, TS),
            Err(SignatureError::NoSupportedSignature)
        );
        assert_eq!(
            v.verify(&HeaderMap::new(), BODY, TS),
            Err(SignatureError::MissingHeader("webhook-id"))
        );
        let other = verifier(&["whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"]);
        assert_eq!(
            other.verify(&headers("webhook", SIG, TS), BODY, TS),
            Err(SignatureError::Mismatch)
        );
    }

    /// Headers carrying `ts` as given, signed over exactly that text.
    fn headers_at(ts: &str) -> HeaderMap {
        let key = HmacSha256::new_from_slice(WebhookSecret::parse(SECRET).unwrap().key()).unwrap();
        let tag = mac(key, ID, ts, BODY).into_bytes();
        let sig = format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(tag)
        );
        let mut h = headers("webhook", &sig, TS);
        h.insert("webhook-timestamp", HeaderValue::from_str(ts).unwrap());
        h
    }

    #[test]
    fn timestamps_far_off_are_refused_without_overflow() {
        let v = verifier(&[SECRET]);
        // TS - 2^63 does not fit an i64 as a difference: `(now - ts).abs()` wrapped to
        // i64::MIN, which is below the tolerance, so it passed in release builds.
        let wrapping = TS.wrapping_add(i64::MIN);
        for ts in [
            i64::MIN.to_string(),
            wrapping.to_string(),
            (i64::MIN + 1).to_string(),
            i64::MAX.to_string(),
            u64::MAX.to_string(),
            "9223372036854775808".to_string(),
            "-9223372036854775809".to_string(),
            "99999999999999999999999999".to_string(),
        ] {
            assert_eq!(
                v.verify(&headers_at(&ts), BODY, TS),
                Err(SignatureError::TimestampOutOfTolerance),
                "{ts}"
            );
        }
        // The same at the edges of `now` itself.
        for now in [i64::MIN, i64::MAX] {
            assert_eq!(
                v.verify(&headers_at(&TS.to_string()), BODY, now),
                Err(SignatureError::TimestampOutOfTolerance)
            );
        }
        // A huge tolerance is not a negative one (`as i64` made it -1: nothing passed).
        let secret = WebhookSecret::parse(SECRET).unwrap();
        let lenient = Verifier::new(&[secret], std::time::Duration::from_secs(u64::MAX));
        assert_eq!(
            lenient.verify(&headers_at(&i64::MIN.to_string()), BODY, i64::MAX),
            Ok(ID)
        );
        assert_eq!(
            v.verify(&headers_at("12abc"), BODY, TS),
            Err(SignatureError::InvalidTimestamp)
        );
        assert_eq!(v.verify(&headers_at(&TS.to_string()), BODY, TS), Ok(ID));
    }

    proptest::proptest! {
        #[test]
        fn any_body_signed_verifies_and_any_flip_fails(body in proptest::collection::vec(proptest::num::u8::ANY, 0..512), flip in 0usize..512) {
            let secret = WebhookSecret::parse(SECRET).unwrap();
            let v = verifier(&[SECRET]);
            let sig = sign(&secret, ID, TS, &body);
            let h = headers("webhook", &sig, TS);
            proptest::prop_assert!(v.verify(&h, &body, TS).is_ok());
            if !body.is_empty() {
                let mut bad = body.clone();
                let i = flip % bad.len();
                bad[i] ^= 0x01;
                proptest::prop_assert_eq!(v.verify(&h, &bad, TS), Err(SignatureError::Mismatch));
            }
        }
    }
}
