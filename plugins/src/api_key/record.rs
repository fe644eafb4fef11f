//! A gateway-issued key and what the gateway keeps of it: never the key itself, only its hash,
//! the first characters (to tell keys apart in a list), and the identity it carries.

use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What every gateway-issued key starts with (and what tells it from a JWT or a provider key).
pub const KEY_PREFIX: &str = "tg_";

/// Characters of a key kept for display (`tg_` and four more).
const SHOWN: usize = 7;

/// What the store keeps of a key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    /// The key's id, for listing and revoking (`key_` and 16 hex digits).
    pub id: String,
    /// The first characters of the key (`tg_AbCd`), to recognise it.
    pub prefix: String,
    /// Who calls with it: the identity's subject.
    pub subject: String,
    /// The identity's claims (`team`, ...), read by later plugins as a JWT's.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub claims: Map<String, Value>,
    /// A label for people (`"alice's laptop"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// When it was created (Unix seconds).
    pub created_at: u64,
    /// When it stops working (Unix seconds), if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// When it was revoked (Unix seconds), if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<u64>,
}

impl KeyRecord {
    /// Whether the key works at `now` (Unix seconds): not revoked, not expired.
    pub fn valid_at(&self, now: u64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|end| now < end)
    }

    /// The identity's claims: the record's, with `sub` and `key_id` set by the gateway.
    pub fn identity_claims(&self) -> Map<String, Value> {
        let mut claims = self.claims.clone();
        claims.insert("sub".into(), Value::String(self.subject.clone()));
        claims.insert("key_id".into(), Value::String(self.id.clone()));
        claims
    }
}

/// A new key (to show once) and its hash (to keep).
pub struct NewKey {
    /// The key: `tg_` and 43 URL-safe characters (256 random bits).
    pub key: String,
    /// Its hash, as the store keys it.
    pub hash: String,
    /// Its first characters.
    pub prefix: String,
    /// A new id.
    pub id: String,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey")
            .field("id", &self.id)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Draws a new key from the system's random source.
pub fn new_key() -> Result<NewKey, ring::error::Unspecified> {
    let random = SystemRandom::new();
    let mut secret = [0u8; 32];
    random.fill(&mut secret)?;
    let mut id = [0u8; 8];
    random.fill(&mut id)?;
    let key = format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
    );
    Ok(NewKey {
        hash: hash(&key),
        prefix: key.chars().take(SHOWN).collect(),
        id: format!("key_{}", hex(&id)),
        key,
    })
}

/// The hash a key is kept under: `sha256:` and 64 hex digits. A key holds 256 random bits, so
/// a fast hash is enough: there is nothing to guess from it.
pub fn hash(key: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    format!("sha256:{}", hex(digest.as_ref()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Now, in Unix seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_and_kept_only_as_their_hash() {
        let a = new_key().unwrap();
        let b = new_key().unwrap();
        assert!(
            a.key.starts_with(KEY_PREFIX) && a.key.len() == 46,
            "{}",
            a.key
        );
        assert_ne!(a.key, b.key);
        assert_ne!(a.id, b.id);
        assert_eq!(a.hash, hash(&a.key));
        assert!(a.hash.starts_with("sha256:") && a.hash.len() == 71);
        assert_eq!(a.prefix, a.key[..7]);
        assert!(
            !format!("{a:?}").contains(&a.key),
            "Debug never shows the key"
        );
    }

    #[test]
    fn a_revoked_or_expired_key_is_not_valid() {
        let mut record = KeyRecord {
            id: "key_1".into(),
            prefix: "tg_abcd".into(),
            subject: "alice".into(),
            claims: Map::new(),
            name: None,
            created_at: 100,
            expires_at: Some(200),
            revoked_at: None,
        };
        assert!(record.valid_at(199));
        assert!(!record.valid_at(200));
        record.expires_at = None;
        assert!(record.valid_at(u64::MAX));
        record.revoked_at = Some(150);
        assert!(!record.valid_at(151));
        let claims = record.identity_claims();
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["key_id"], "key_1");
    }
}
