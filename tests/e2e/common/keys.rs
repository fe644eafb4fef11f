//! Signing keys for the JWT tests (made with the `openssl` CLI), a JWKS server whose document
//! can be swapped (key rotation, IdP outage), and token minting through `tollgate::token`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey};
use tollgate::token::{mint, TokenRequest};

/// Issuer and audience the tests configure.
pub const ISSUER: &str = "https://idp.test";
/// Audience the tests configure.
pub const AUDIENCE: &str = "tollgate";

/// Key files in a temporary directory.
pub struct TestKeys {
    /// The directory.
    pub dir: PathBuf,
}

impl TestKeys {
    /// Generates two RSA keys and one EC P-256 key.
    pub fn generate() -> Self {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("tollgate-keys-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("key dir");
        for name in ["rsa1", "rsa2"] {
            openssl(
                &dir,
                &[
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    "rsa_keygen_bits:2048",
                    "-out",
                    &format!("{name}.key"),
                ],
            );
            openssl(
                &dir,
                &[
                    "pkey",
                    "-in",
                    &format!("{name}.key"),
                    "-pubout",
                    "-out",
                    &format!("{name}.pub"),
                ],
            );
        }
        openssl(
            &dir,
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                "ec.key",
            ],
        );
        openssl(
            &dir,
            &["pkey", "-in", "ec.key", "-pubout", "-out", "ec.pub"],
        );
        Self { dir }
    }

    /// Contents of a key file.
    pub fn read(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(file)).expect("read key")
    }

    /// Path of a key file.
    pub fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }

    /// A JWKS with the public halves of `(key file, kid)` pairs, for RS256.
    pub fn jwks(&self, keys: &[(&str, &str)]) -> String {
        let keys = keys
            .iter()
            .map(|(file, kid)| {
                let encoding = EncodingKey::from_rsa_pem(&self.read(file)).expect("rsa key");
                let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::RS256).expect("jwk");
                jwk.common.key_id = Some((*kid).to_string());
                jwk
            })
            .collect();
        serde_json::to_string(&JwkSet { keys }).expect("jwks json")
    }

    /// A token signed with `file` (RS256 unless `alg` says otherwise).
    pub fn token(
        &self,
        file: &str,
        alg: Algorithm,
        kid: Option<&str>,
        edit: impl FnOnce(&mut TokenRequest),
    ) -> String {
        let mut request = TokenRequest {
            subject: "alice@example.com".into(),
            issuer: Some(ISSUER.into()),
            audience: Some(AUDIENCE.into()),
            ttl_secs: 600,
            claims: vec![("groups".into(), "math-users,staff".into())],
            kid: kid.map(str::to_string),
        };
        edit(&mut request);
        mint(&request, alg, &self.read(file)).expect("mint")
    }
}

impl Drop for TestKeys {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs the `openssl` CLI in `dir`, failing the test with its stderr.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A JWKS endpoint whose answer the test controls.
pub struct JwksServer {
    /// `http://<addr>/jwks.json`.
    pub url: String,
    state: Arc<Mutex<(StatusCode, String)>>,
}

impl JwksServer {
    /// Serves `body` on a free port.
    pub async fn start(body: String) -> Self {
        let state = Arc::new(Mutex::new((StatusCode::OK, body)));
        let shared = state.clone();
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let shared = shared.clone();
                async move {
                    let (status, body) = shared.lock().expect("lock").clone();
                    (status, [("content-type", "application/json")], body).into_response()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind jwks");
        let url = format!("http://{}/jwks.json", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, state }
    }

    /// Changes what the endpoint answers.
    pub fn set(&self, status: StatusCode, body: String) {
        *self.state.lock().expect("lock") = (status, body);
    }
}

/// An HS256 token for `subject` in the comma-separated `groups`, valid for 10 minutes.
pub fn hs256_token(secret: &str, subject: &str, groups: &str) -> String {
    let request = TokenRequest {
        subject: subject.into(),
        issuer: None,
        audience: None,
        ttl_secs: 600,
        claims: vec![("groups".into(), groups.into())],
        kid: None,
    };
    mint(&request, Algorithm::HS256, secret.as_bytes()).expect("mint")
}
