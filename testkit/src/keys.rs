//! JWT signing keys made with the `openssl` CLI, the JWKS document of their public halves, and a
//! JWKS endpoint whose answer the test controls (key rotation, an IdP outage).

use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey};
use tempfile::TempDir;

use crate::openssl::openssl;

/// Key files in a temporary directory, removed on drop: `rsa1.key`/`rsa1.pub` and
/// `rsa2.key`/`rsa2.pub` (RSA 2048), `ec.key`/`ec.pub` (EC P-256); private keys in PKCS#8 PEM,
/// public keys in SPKI PEM.
pub struct KeyFiles {
    dir: TempDir,
}

impl KeyFiles {
    /// Generates the keys.
    pub fn generate() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tollgate-keys-")
            .tempdir()
            .expect("key directory");
        for name in ["rsa1", "rsa2"] {
            let key = format!("{name}.key");
            openssl(
                dir.path(),
                &[
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    "rsa_keygen_bits:2048",
                    "-out",
                    &key,
                ],
            );
            public_half(dir.path(), name);
        }
        openssl(
            dir.path(),
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
        public_half(dir.path(), "ec");
        Self { dir }
    }

    /// Contents of a key file.
    pub fn read(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.dir.path().join(file)).expect("read key")
    }

    /// Path of a key file, as configuration files name it.
    pub fn path(&self, file: &str) -> String {
        self.dir.path().join(file).display().to_string()
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
}

/// Writes `<name>.pub`, the public half of `<name>.key`.
fn public_half(dir: &Path, name: &str) {
    let (key, public) = (format!("{name}.key"), format!("{name}.pub"));
    openssl(dir, &["pkey", "-in", &key, "-pubout", "-out", &public]);
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
