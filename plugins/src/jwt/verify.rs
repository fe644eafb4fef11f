//! Token verification: the checks and the reason codes of each failure.

use std::collections::HashMap;

use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use super::keys::KeySet;

/// Why a token was refused: a reason code (`x-tollgate-reason`) and a message for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `jwt.expired`, `jwt.bad_signature`, ...
    pub reason: &'static str,
    /// What to tell the caller (never the token).
    pub message: &'static str,
}

const fn failure(reason: &'static str, message: &'static str) -> Failure {
    Failure { reason, message }
}

/// The token is not a well-formed JWT.
pub const MALFORMED: Failure = failure("jwt.malformed", "the token is not a well-formed JWT");
/// The token is longer than allowed.
pub const OVERSIZED: Failure = failure("jwt.oversized", "the token is too large");
/// No key may verify the token's algorithm (`none`, or an algorithm the keys do not allow).
pub const ALG_NOT_ALLOWED: Failure = failure(
    "jwt.alg_not_allowed",
    "the token's algorithm is not allowed",
);
/// The token names a key the key set does not have.
pub const UNKNOWN_KID: Failure = failure(
    "jwt.unknown_kid",
    "the token was signed with an unknown key",
);
/// The signature does not verify.
pub const BAD_SIGNATURE: Failure = failure("jwt.bad_signature", "the token's signature is invalid");
/// `exp` is past.
pub const EXPIRED: Failure = failure("jwt.expired", "the token has expired");
/// `nbf` is in the future.
pub const NOT_YET_VALID: Failure = failure("jwt.not_yet_valid", "the token is not valid yet");
/// `iss` is not accepted.
pub const WRONG_ISSUER: Failure = failure("jwt.wrong_issuer", "the token's issuer is not accepted");
/// `aud` is not accepted.
pub const WRONG_AUDIENCE: Failure =
    failure("jwt.wrong_audience", "the token's audience is not accepted");
/// A required claim is missing.
pub const MISSING_CLAIM: Failure = failure("jwt.missing_claim", "the token lacks a required claim");
/// The header's `crit` names extensions the gateway must understand, and it understands none.
pub const UNSUPPORTED_CRIT: Failure = failure(
    "jwt.unsupported_crit",
    "the token requires header extensions the gateway does not support",
);

/// The fixed rules of one plugin instance, with a prepared `Validation` per algorithm.
pub struct Verifier {
    validations: HashMap<Algorithm, Validation>,
    required_claims: Vec<String>,
    max_token_bytes: usize,
}

/// Every algorithm tollgate verifies.
const ALGORITHMS: [Algorithm; 12] = [
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

impl Verifier {
    /// Rules for `issuers`, `audiences`, `leeway_secs`, `required_claims`. A configured issuer
    /// (audience) makes `iss` (`aud`) required: jsonwebtoken checks them only when present, and a
    /// token that omits them must not pass a check the operator asked for.
    pub fn new(
        issuers: &[String],
        audiences: &[String],
        leeway_secs: u64,
        required_claims: Vec<String>,
        max_token_bytes: usize,
    ) -> Self {
        let validations = ALGORITHMS
            .iter()
            .map(|&alg| {
                let mut v = Validation::new(alg);
                v.leeway = leeway_secs;
                v.validate_nbf = true;
                v.set_required_spec_claims(&required_spec_claims(issuers, audiences));
                if !issuers.is_empty() {
                    v.set_issuer(issuers);
                }
                if audiences.is_empty() {
                    v.validate_aud = false;
                } else {
                    v.set_audience(audiences);
                }
                (alg, v)
            })
            .collect();
        Self {
            validations,
            required_claims,
            max_token_bytes,
        }
    }

    /// Checks the token's size and header; returns its algorithm and `kid`.
    pub fn header(&self, token: &str) -> Result<(Algorithm, Option<String>), Failure> {
        if token.len() > self.max_token_bytes {
            return Err(OVERSIZED);
        }
        let header = match jsonwebtoken::decode_header(token) {
            Ok(header) => header,
            Err(_) if declares_alg_none(token) => return Err(ALG_NOT_ALLOWED),
            Err(_) => return Err(MALFORMED),
        };
        check_crit(token)?;
        Ok((header.alg, header.kid))
    }

    /// Verifies `token` (whose header gave `alg` and `kid`) against `keys`.
    pub fn verify(
        &self,
        token: &str,
        alg: Algorithm,
        kid: Option<&str>,
        keys: &KeySet,
    ) -> Result<Map<String, Value>, Failure> {
        let validation = self.validations.get(&alg).ok_or(ALG_NOT_ALLOWED)?;
        let mut candidates = keys.candidates(alg, kid).peekable();
        if candidates.peek().is_none() {
            return Err(match kid {
                Some(kid) if !keys.has_kid(kid) => UNKNOWN_KID,
                _ => ALG_NOT_ALLOWED,
            });
        }
        let mut last = BAD_SIGNATURE;
        for entry in candidates {
            match jsonwebtoken::decode::<Map<String, Value>>(token, &entry.key, validation) {
                Ok(data) => return self.check_required(data.claims),
                Err(e) => {
                    last = classify(e.kind());
                    if last != BAD_SIGNATURE {
                        return Err(last);
                    }
                }
            }
        }
        Err(last)
    }

    fn check_required(&self, claims: Map<String, Value>) -> Result<Map<String, Value>, Failure> {
        if self
            .required_claims
            .iter()
            .any(|c| claims.get(c).is_none_or(Value::is_null))
        {
            return Err(MISSING_CLAIM);
        }
        Ok(claims)
    }
}

/// `exp` always; `iss` and `aud` when the operator configured accepted values for them.
fn required_spec_claims(issuers: &[String], audiences: &[String]) -> Vec<&'static str> {
    let mut required = vec!["exp"];
    if !issuers.is_empty() {
        required.push("iss");
    }
    if !audiences.is_empty() {
        required.push("aud");
    }
    required
}

fn classify(kind: &ErrorKind) -> Failure {
    match kind {
        ErrorKind::InvalidSignature => BAD_SIGNATURE,
        ErrorKind::ExpiredSignature => EXPIRED,
        ErrorKind::ImmatureSignature => NOT_YET_VALID,
        ErrorKind::InvalidIssuer => WRONG_ISSUER,
        ErrorKind::InvalidAudience => WRONG_AUDIENCE,
        ErrorKind::MissingRequiredClaim(_) => MISSING_CLAIM,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm => ALG_NOT_ALLOWED,
        _ => MALFORMED,
    }
}

/// RFC 7515 §4.1.11: a recipient must refuse a token whose `crit` names an extension it does not
/// understand, and tollgate understands none; so any `crit` is refused, a well-formed one (a
/// non-empty array of strings) as unsupported, anything else as malformed. Read from the raw
/// header because jsonwebtoken's `Header` maps `"crit": null` to `None`, as if it were absent.
fn check_crit(token: &str) -> Result<(), Failure> {
    let header = raw_header(token).ok_or(MALFORMED)?;
    match header.get("crit") {
        None => Ok(()),
        Some(Value::Array(names)) if !names.is_empty() && names.iter().all(Value::is_string) => {
            Err(UNSUPPORTED_CRIT)
        }
        Some(_) => Err(MALFORMED),
    }
}

/// Whether the (unparseable) header says `"alg": "none"`, for a precise reason code.
fn declares_alg_none(token: &str) -> bool {
    raw_header(token)
        .and_then(|h| {
            h.get("alg")
                .and_then(Value::as_str)
                .map(|a| a.eq_ignore_ascii_case("none"))
        })
        .unwrap_or(false)
}

/// The token's protected header as JSON, only to read what jsonwebtoken's `Header` does not
/// tell (the signature and claims are always checked by jsonwebtoken).
fn raw_header(token: &str) -> Option<Map<String, Value>> {
    let header = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}
