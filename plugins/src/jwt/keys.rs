//! Verification keys: from a JWKS document, a PEM public key, or a shared secret. Each key knows
//! which algorithms it may verify, so a token can never choose a weaker check than the key's
//! (no `none`, no HS256 signed with an RSA public key).

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};

/// One verification key.
pub struct KeyEntry {
    /// `kid`, when the key set names its keys.
    pub kid: Option<String>,
    /// The algorithms this key may verify.
    pub algorithms: Vec<Algorithm>,
    /// The key.
    pub key: DecodingKey,
}

/// A set of verification keys.
#[derive(Default)]
pub struct KeySet {
    /// The keys.
    pub keys: Vec<KeyEntry>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<_> = self
            .keys
            .iter()
            .map(|k| k.kid.as_deref().unwrap_or("-"))
            .collect();
        f.debug_struct("KeySet").field("kids", &kids).finish()
    }
}

const RSA_ALGS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

impl KeySet {
    /// Parses a JWKS document (`{"keys": [...]}`). Keys of unsupported types are skipped; a set
    /// with no usable key is an error.
    pub fn from_jwks(text: &str) -> Result<Self, String> {
        let set: JwkSet =
            serde_json::from_str(text).map_err(|e| format!("not a JWKS document: {e}"))?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            let family_algs: Vec<Algorithm> = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => RSA_ALGS.to_vec(),
                AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                    EllipticCurve::P256 => vec![Algorithm::ES256],
                    EllipticCurve::P384 => vec![Algorithm::ES384],
                    _ => continue,
                },
                AlgorithmParameters::OctetKeyPair(_) => vec![Algorithm::EdDSA],
                AlgorithmParameters::OctetKey(_) => {
                    vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512]
                }
                _ => continue,
            };
            // A key that names its algorithm may verify only that one.
            let algorithms = match jwk.common.key_algorithm.and_then(key_algorithm) {
                Some(alg) if family_algs.contains(&alg) => vec![alg],
                Some(_) => continue,
                None => family_algs,
            };
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            keys.push(KeyEntry {
                kid: jwk.common.key_id.clone(),
                algorithms,
                key,
            });
        }
        if keys.is_empty() {
            return Err(
                "the JWKS document has no usable key (RSA, EC P-256/P-384, Ed25519 or oct)".into(),
            );
        }
        Ok(Self { keys })
    }

    /// A PEM public key (RSA, EC or Ed25519).
    pub fn from_pem(pem: &str, kid: Option<String>) -> Result<Self, String> {
        let bytes = pem.as_bytes();
        let (key, algorithms) = if let Ok(key) = DecodingKey::from_rsa_pem(bytes) {
            (key, RSA_ALGS.to_vec())
        } else if let Ok(key) = DecodingKey::from_ec_pem(bytes) {
            (key, vec![Algorithm::ES256, Algorithm::ES384])
        } else if let Ok(key) = DecodingKey::from_ed_pem(bytes) {
            (key, vec![Algorithm::EdDSA])
        } else {
            return Err("not a PEM public key (RSA, EC or Ed25519)".into());
        };
        Ok(Self {
            keys: vec![KeyEntry {
                kid,
                algorithms,
                key,
            }],
        })
    }

    /// A shared HMAC secret (HS256/384/512).
    pub fn from_secret(secret: &[u8]) -> Self {
        let algorithms = vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
        Self {
            keys: vec![KeyEntry {
                kid: None,
                algorithms,
                key: DecodingKey::from_secret(secret),
            }],
        }
    }

    /// Keys that may verify a token with `alg` and `kid`. A token with a `kid` only matches keys
    /// with that `kid` (or keys without one, for single-key configurations).
    pub fn candidates<'a>(
        &'a self,
        alg: Algorithm,
        kid: Option<&'a str>,
    ) -> impl Iterator<Item = &'a KeyEntry> + 'a {
        self.keys.iter().filter(move |k| {
            k.algorithms.contains(&alg)
                && match (kid, k.kid.as_deref()) {
                    (Some(want), Some(have)) => want == have,
                    _ => true,
                }
        })
    }

    /// Whether a key with `kid` exists.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }
}

fn key_algorithm(alg: KeyAlgorithm) -> Option<Algorithm> {
    Some(match alg {
        KeyAlgorithm::HS256 => Algorithm::HS256,
        KeyAlgorithm::HS384 => Algorithm::HS384,
        KeyAlgorithm::HS512 => Algorithm::HS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}
