//! `tollgate token`: mints a signed JWT from a local key, for tutorials, the demo and tests.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value};

/// What to put in the token and how to sign it.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// `sub`.
    pub subject: String,
    /// `iss`, if any.
    pub issuer: Option<String>,
    /// `aud`, if any.
    pub audience: Option<String>,
    /// Lifetime in seconds (`exp` = now + ttl).
    pub ttl_secs: u64,
    /// Extra claims; a value with commas becomes an array (`groups=a,b`).
    pub claims: Vec<(String, String)>,
    /// `kid` header.
    pub kid: Option<String>,
}

/// Errors minting a token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The key could not be used.
    #[error("cannot use the key: {0}")]
    Key(String),
    /// Signing failed.
    #[error("cannot sign: {0}")]
    Sign(String),
}

/// Signs `request` with `alg` and a key: a PEM private key for RS*/PS*/ES*/EdDSA, or a secret for
/// HS*.
pub fn mint(
    request: &TokenRequest,
    alg: Algorithm,
    key_material: &[u8],
) -> Result<String, TokenError> {
    let key = match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            Ok(EncodingKey::from_secret(key_material))
        }
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(key_material),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(key_material),
        _ => EncodingKey::from_rsa_pem(key_material),
    }
    .map_err(|e| TokenError::Key(e.to_string()))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut claims = Map::new();
    claims.insert("sub".into(), Value::from(request.subject.clone()));
    claims.insert("iat".into(), Value::from(now));
    claims.insert("exp".into(), Value::from(now + request.ttl_secs));
    if let Some(iss) = &request.issuer {
        claims.insert("iss".into(), Value::from(iss.clone()));
    }
    if let Some(aud) = &request.audience {
        claims.insert("aud".into(), Value::from(aud.clone()));
    }
    for (name, value) in &request.claims {
        let value = if value.contains(',') {
            Value::from(value.split(',').map(str::to_string).collect::<Vec<_>>())
        } else {
            Value::from(value.clone())
        };
        claims.insert(name.clone(), value);
    }
    let mut header = Header::new(alg);
    header.kid = request.kid.clone();
    jsonwebtoken::encode(&header, &claims, &key).map_err(|e| TokenError::Sign(e.to_string()))
}
