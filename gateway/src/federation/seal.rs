//! Sealed session ids: what a 2025-era client session needs (its protocol version and
//! capabilities, the server sessions opened for it) is encrypted and authenticated into the
//! `Mcp-Session-Id` the client holds, so that any replica with the same key serves the session
//! and no replica keeps a session table.

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The first byte of every sealed id: the format, so that a future one can be told apart.
const FORMAT: u8 = b'1';
/// The first byte of a `requestState` the gateway seals (bridged calls).
const REQUEST_STATE: u8 = b'r';
/// Binds derived keys to their use: the same `session_key` keyed elsewhere gives another key.
const KEY_INFO: &[u8] = b"tollgate mcp session id v1";
/// Ids longer than this are not opened (a client cannot make the gateway decrypt megabytes).
const MAX_ID_LEN: usize = 16 * 1024;

/// What the gateway needs to continue a 2025-era client session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionState {
    /// The protocol version negotiated with the client.
    #[serde(rename = "v")]
    pub protocol_version: String,
    /// The client's capabilities, as it declared them in `initialize`.
    #[serde(rename = "c", default)]
    pub capabilities: Value,
    /// The client's `clientInfo`.
    #[serde(rename = "i", default, skip_serializing_if = "Option::is_none")]
    pub client_info: Option<Value>,
    /// The session the gateway opened on each server for this client (2025-era servers only).
    #[serde(rename = "s", default)]
    pub servers: Vec<ServerSession>,
}

/// One server's session inside a client session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerSession {
    /// The `[mcp_server.<name>]` name.
    #[serde(rename = "n")]
    pub server: String,
    /// The server's `Mcp-Session-Id`, if it gave one.
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The protocol version the server agreed to.
    #[serde(rename = "p")]
    pub protocol_version: String,
}

impl SessionState {
    /// The session opened on `server`, if any.
    pub fn server(&self, server: &str) -> Option<&ServerSession> {
        self.servers.iter().find(|s| s.server == server)
    }
}

/// Seals and opens session ids with one key.
pub struct SessionSealer {
    key: LessSafeKey,
    random: SystemRandom,
}

impl std::fmt::Debug for SessionSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionSealer { .. }")
    }
}

/// Why a sealer could not be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot derive the session key")]
pub struct KeyError;

/// Characters of a sealed id's nonce (12 bytes, base64 without padding).
const NONCE_CHARS: usize = NONCE_LEN.div_ceil(3) * 4;

/// A sealed id's identity, [`SessionSealer::fingerprint`].
pub type Fingerprint = [u8; NONCE_CHARS];

impl SessionSealer {
    /// A sealer keyed by `secret` (any length; a key is derived from it).
    pub fn new(secret: &[u8]) -> Result<Self, KeyError> {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"tollgate");
        let prk = salt.extract(secret);
        let okm = prk
            .expand(&[KEY_INFO], &CHACHA20_POLY1305)
            .map_err(|_| KeyError)?;
        Ok(Self {
            key: LessSafeKey::new(UnboundKey::from(okm)),
            random: SystemRandom::new(),
        })
    }

    /// The sealer of this process when no `session_key` is configured: one random key for the
    /// process's life (reloads keep it, so sessions survive them; other replicas cannot open its
    /// ids).
    pub fn process_default() -> Result<&'static SessionSealer, KeyError> {
        static SEALER: OnceLock<Result<SessionSealer, ()>> = OnceLock::new();
        SEALER
            .get_or_init(|| {
                let mut secret = [0u8; 32];
                SystemRandom::new().fill(&mut secret).map_err(|_| ())?;
                SessionSealer::new(&secret).map_err(|_| ())
            })
            .as_ref()
            .map_err(|()| KeyError)
    }

    /// `state` as a session id: visible ASCII, as `Mcp-Session-Id` must be.
    pub fn seal(&self, state: &SessionState) -> Option<String> {
        self.seal_as(FORMAT, state)
    }

    /// The state sealed into `id`; `None` when the id is not one of this key's (unknown,
    /// tampered with, or sealed by another key).
    pub fn open(&self, id: &str) -> Option<SessionState> {
        self.open_as(FORMAT, id)
    }

    /// What identifies the sealed `id` among all others: its random nonce (the 16 characters
    /// after the format's), unique per seal. A replica remembers ended sessions by it, 16 bytes
    /// instead of the whole id (a few hundred); an id that is not one of this key's opens to
    /// nothing whatever its fingerprint.
    pub fn fingerprint(id: &str) -> Fingerprint {
        let mut print = [0u8; NONCE_CHARS];
        let nonce = id.as_bytes().get(1..).unwrap_or_default();
        let len = nonce.len().min(NONCE_CHARS);
        print[..len].copy_from_slice(&nonce[..len]);
        print
    }

    /// `value` sealed as the gateway's own `requestState` (told apart from session ids: one
    /// cannot be passed for the other).
    pub fn seal_request_state<T: Serialize>(&self, value: &T) -> Option<String> {
        self.seal_as(REQUEST_STATE, value)
    }

    /// What [`seal_request_state`](Self::seal_request_state) sealed into `state`.
    pub fn open_request_state<T: DeserializeOwned>(&self, state: &str) -> Option<T> {
        self.open_as(REQUEST_STATE, state)
    }

    fn seal_as<T: Serialize>(&self, format: u8, value: &T) -> Option<String> {
        let mut data = serde_json::to_vec(value).ok()?;
        let mut nonce = [0u8; NONCE_LEN];
        self.random.fill(&mut nonce).ok()?;
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from([format]),
                &mut data,
            )
            .ok()?;
        let mut sealed = Vec::with_capacity(NONCE_LEN + data.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&data);
        let mut id = String::with_capacity(1 + sealed.len() * 4 / 3 + 4);
        id.push(char::from(format));
        URL_SAFE_NO_PAD.encode_string(&sealed, &mut id);
        Some(id)
    }

    fn open_as<T: DeserializeOwned>(&self, format: u8, id: &str) -> Option<T> {
        if id.len() > MAX_ID_LEN {
            return None;
        }
        let encoded = id.strip_prefix(char::from(format))?;
        let mut sealed = URL_SAFE_NO_PAD.decode(encoded).ok()?;
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let nonce = Nonce::try_assume_unique_for_key(&sealed[..NONCE_LEN]).ok()?;
        let plain = self
            .key
            .open_in_place(nonce, Aad::from([format]), &mut sealed[NONCE_LEN..])
            .ok()?;
        serde_json::from_slice(plain).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> SessionState {
        SessionState {
            protocol_version: "2025-11-25".into(),
            capabilities: serde_json::json!({"sampling": {}}),
            client_info: Some(serde_json::json!({"name": "c", "version": "1"})),
            servers: vec![ServerSession {
                server: "math".into(),
                session: Some("abc".into()),
                protocol_version: "2025-11-25".into(),
            }],
        }
    }

    #[test]
    fn each_seal_has_its_own_fingerprint_the_nonce() {
        let sealer = SessionSealer::new(b"key one").unwrap();
        let (one, two) = (
            sealer.seal(&state()).unwrap(),
            sealer.seal(&state()).unwrap(),
        );
        let print = SessionSealer::fingerprint(&one);
        assert_eq!(&print[..], &one.as_bytes()[1..1 + NONCE_CHARS]);
        assert_eq!(print, SessionSealer::fingerprint(&one.clone()));
        assert_ne!(print, SessionSealer::fingerprint(&two));
        // Ids too short to be sealed have one too (and open to nothing).
        assert_eq!(SessionSealer::fingerprint(""), [0; NONCE_CHARS]);
        assert_eq!(&SessionSealer::fingerprint("xab")[..2], b"ab");
    }

    #[test]
    fn a_sealed_id_opens_with_the_same_key_only() {
        let a = SessionSealer::new(b"key one").unwrap();
        let id = a.seal(&state()).unwrap();
        assert!(id.bytes().all(|b| (0x21..=0x7e).contains(&b)), "{id}");
        assert!(
            !id.contains("abc"),
            "the server session id is not readable: {id}"
        );
        assert_eq!(a.open(&id), Some(state()));
        // The same key configured on another replica opens it too.
        assert_eq!(
            SessionSealer::new(b"key one").unwrap().open(&id),
            Some(state())
        );
        assert_eq!(SessionSealer::new(b"key two").unwrap().open(&id), None);
    }

    #[test]
    fn a_tampered_or_foreign_id_does_not_open() {
        let sealer = SessionSealer::new(b"k").unwrap();
        let id = sealer.seal(&state()).unwrap();
        let mut bytes = id.clone().into_bytes();
        let last = bytes.len() - 5;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(sealer.open(&String::from_utf8(bytes).unwrap()), None);
        assert_eq!(sealer.open("1"), None);
        assert_eq!(sealer.open("not-ours"), None);
        assert_eq!(sealer.open(&id[..id.len() - 1]), None);
        assert_eq!(sealer.open(&"1".repeat(MAX_ID_LEN + 1)), None);
    }

    #[test]
    fn a_request_state_is_not_a_session_id() {
        let sealer = SessionSealer::new(b"k").unwrap();
        let sealed = sealer.seal_request_state(&vec![1, 2]).unwrap();
        assert_eq!(
            sealer.open_request_state::<Vec<i32>>(&sealed),
            Some(vec![1, 2])
        );
        assert_eq!(sealer.open(&sealed), None);
        let id = sealer.seal(&state()).unwrap();
        assert_eq!(sealer.open_request_state::<Value>(&id), None);
    }

    #[test]
    fn every_seal_is_a_new_id() {
        let sealer = SessionSealer::new(b"k").unwrap();
        assert_ne!(sealer.seal(&state()), sealer.seal(&state()));
    }
}
