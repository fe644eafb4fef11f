//! `api-key`: authenticates callers with keys the gateway issues ("virtual keys"): `tg_` and 43
//! random characters, shown once when created, kept only as their hash. Each key carries an
//! identity (a subject and claims) that later plugins read as they read a JWT's (`jwt.team`
//! keys of `token-ratelimit` and `budget`, `mcp-rbac` claims). The client's key never reaches
//! the upstream. See docs/spend.md.

pub mod admin;
pub mod record;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::header::AUTHORIZATION;
use http::{HeaderName, StatusCode};
use serde::Deserialize;

use crate::jwt::headers::ProtectedHeaders;
use record::{hash, unix_now, KEY_PREFIX};
use store::{FileKeys, KeyStore, RedisKeys};
use tollgate_plugin_api::config::{parse, PluginConfigError};
use tollgate_plugin_api::secret_source::{ExposeSecret, SecretString};
use tollgate_plugin_api::units::DurationStr;
use tollgate_plugin_api::{
    AdminRequest, AdminResponse, Identity, Plugin, PluginError, PluginFactory, RejectKind,
    Rejection, RequestCtx, Verdict,
};

/// Whether a request without a key is refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Mode {
    /// Refused (`401 key.missing`).
    #[default]
    Required,
    /// Passed on without an identity (another plugin of the chain may authenticate it).
    Optional,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiKeyConfig {
    store: StoreConfig,
    #[serde(default)]
    mode: Mode,
    /// Headers a key is read from, in order; `authorization` takes `Bearer tg_...`.
    #[serde(default = "default_sources")]
    token_from: Vec<String>,
    /// Longest wait for Redis (default 250ms).
    store_timeout: Option<DurationStr>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreConfig {
    /// May hold a password (`redis://:pw@host`).
    redis: Option<SecretString>,
    file: Option<String>,
}

fn default_sources() -> Vec<String> {
    vec!["x-api-key".into(), "authorization".into()]
}

/// The `api-key` plugin instance.
pub struct ApiKey {
    name: String,
    store: KeyStore,
    mode: Mode,
    sources: Vec<HeaderName>,
    /// Every key header: the client's key never goes upstream.
    protected: ProtectedHeaders,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("name", &self.name)
            .field("store", &self.store)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// Factory for `type = "api-key"`.
pub struct ApiKeyFactory;

impl PluginFactory for ApiKeyFactory {
    fn build(&self, name: &str, table: &toml::Table) -> Result<Arc<dyn Plugin>, PluginConfigError> {
        let cfg: ApiKeyConfig = parse(table)?;
        let timeout = cfg
            .store_timeout
            .map_or(Duration::from_millis(250), |d| d.0);
        let store = match (&cfg.store.redis, &cfg.store.file) {
            (Some(url), None) => KeyStore::Redis(Box::new(
                RedisKeys::new(url.expose_secret(), name, timeout)
                    .map_err(|e| PluginConfigError::at("store", e))?,
            )),
            (None, Some(path)) => KeyStore::File(
                FileKeys::load(std::path::Path::new(path))
                    .map_err(|e| PluginConfigError::at("store", e))?,
            ),
            _ => {
                return Err(PluginConfigError::at(
                    "store",
                    "set exactly one of `redis` or `file`",
                ))
            }
        };
        if cfg.token_from.is_empty() {
            return Err(PluginConfigError::at(
                "token_from",
                "name at least one header",
            ));
        }
        let sources = cfg
            .token_from
            .iter()
            .map(|h| {
                HeaderName::from_bytes(h.trim().to_ascii_lowercase().as_bytes()).map_err(|_| {
                    PluginConfigError::at("token_from", format!("`{h}` is not a header name"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Arc::new(ApiKey {
            name: name.to_string(),
            store,
            mode: cfg.mode,
            protected: ProtectedHeaders::new(sources.iter()),
            sources,
        }))
    }
}

impl ApiKey {
    /// The gateway-issued key the request carries, if any: a `tg_` value of a source header
    /// (`Bearer tg_...` in `authorization`). Other values (a JWT, a provider key) are not ours.
    fn key<'a>(&self, cx: &'a RequestCtx) -> Option<&'a str> {
        self.sources.iter().find_map(|name| {
            let value = cx.headers().get(name)?.to_str().ok()?.trim();
            let key = if *name == AUTHORIZATION {
                let (scheme, rest) = value.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())?
            } else {
                value
            };
            key.starts_with(KEY_PREFIX).then_some(key)
        })
    }

    fn invalid() -> Rejection {
        // The same answer whether the key is unknown, revoked or expired: a caller learns
        // nothing about keys it does not hold.
        Rejection::new(
            RejectKind::Authentication,
            "key.invalid",
            "the API key is not valid",
        )
    }
}

#[async_trait]
impl Plugin for ApiKey {
    fn name(&self) -> &str {
        &self.name
    }

    fn watched_files(&self) -> Vec<std::path::PathBuf> {
        self.store
            .file()
            .map(|p| p.to_path_buf())
            .into_iter()
            .collect()
    }

    async fn on_request(&self, cx: &mut RequestCtx) -> Result<Verdict, PluginError> {
        if cx.identity.is_some() {
            // An earlier plugin of the chain (a `jwt`) identified the caller.
            self.protected.strip(cx);
            return Ok(Verdict::Continue);
        }
        let Some(key) = self.key(cx) else {
            if self.mode == Mode::Optional {
                self.protected.strip(cx);
                return Ok(Verdict::Continue);
            }
            return Ok(Verdict::Reject(Rejection::new(
                RejectKind::Authentication,
                "key.missing",
                "an API key is required (x-api-key or Authorization: Bearer)",
            )));
        };
        let hash = hash(key);
        let mut span = cx.trace().io_span("api-key lookup");
        let found = self.store.lookup(&hash).await;
        if found.is_err() {
            span.fail("key.store_unavailable");
        }
        drop(span);
        let record = match found {
            Ok(Some(record)) if record.valid_at(unix_now()) => record,
            Ok(_) => return Ok(Verdict::Reject(Self::invalid())),
            Err(error) => {
                tracing::warn!(plugin = %self.name, %error, "api-key: the key store is unavailable; refusing the request");
                return Ok(Verdict::Reject(
                    Rejection::new(
                        RejectKind::Api,
                        "key.store_unavailable",
                        "the API key cannot be checked right now",
                    )
                    .with_status(StatusCode::SERVICE_UNAVAILABLE),
                ));
            }
        };
        self.protected.strip(cx);
        cx.identity = Some(Identity {
            subject: record.subject.clone(),
            claims: Arc::new(record.identity_claims()),
        });
        Ok(Verdict::Continue)
    }

    async fn admin(&self, request: &AdminRequest) -> AdminResponse {
        admin::answer(self, request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use record::new_key;
    use tollgate_plugin_api::testing::{build_plugin, TestExchange, TestRequest};

    /// A plugin on a key file holding `valid` (team eng), `revoked` and `expired`.
    fn plugin_with_file() -> (Arc<dyn Plugin>, [String; 3], tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let keys = [new_key().unwrap(), new_key().unwrap(), new_key().unwrap()];
        let file = format!(
            "[[key]]\nid = \"key_a\"\nhash = \"{}\"\nsubject = \"alice\"\nclaims = {{ team = \"eng\" }}\n\n\
             [[key]]\nid = \"key_b\"\nhash = \"{}\"\nsubject = \"bob\"\nrevoked_at = 1\n\n\
             [[key]]\nid = \"key_c\"\nhash = \"{}\"\nsubject = \"carol\"\nexpires_at = 1\n",
            keys[0].hash, keys[1].hash, keys[2].hash
        );
        let path = dir.path().join("keys.toml");
        std::fs::write(&path, file).unwrap();
        let plugin = build_plugin(
            &ApiKeyFactory,
            "keys",
            &format!("store = {{ file = \"{}\" }}", path.display()),
        )
        .unwrap();
        let [a, b, c] = keys;
        (plugin, [a.key, b.key, c.key], dir)
    }

    async fn run(plugin: &Arc<dyn Plugin>, request: TestRequest) -> (Verdict, TestExchange) {
        let mut exchange = TestExchange::new(plugin.clone(), request);
        let verdict = exchange.on_request().await.unwrap();
        (verdict, exchange)
    }

    #[tokio::test]
    async fn a_valid_key_sets_the_identity_and_never_goes_upstream() {
        let (plugin, [valid, _, _], _dir) = plugin_with_file();
        for request in [
            TestRequest::http("/").header("x-api-key", &valid),
            TestRequest::http("/").header("authorization", &format!("Bearer {valid}")),
        ] {
            let (verdict, exchange) = run(&plugin, request).await;
            assert!(verdict.rejection().is_none(), "{verdict:?}");
            let identity = exchange.cx().identity.as_ref().unwrap();
            assert_eq!(identity.subject, "alice");
            assert_eq!(identity.claims["team"], "eng");
            assert_eq!(identity.claims["key_id"], "key_a");
            let edits = exchange.header_edits();
            assert!(
                edits
                    .iter()
                    .any(|(name, value)| name == "x-api-key" && value.is_none())
                    || edits
                        .iter()
                        .any(|(name, value)| name == "authorization" && value.is_none()),
                "the client's key is removed: {edits:?}"
            );
        }
    }

    #[tokio::test]
    async fn unknown_revoked_and_expired_keys_get_the_same_refusal() {
        let (plugin, [_, revoked, expired], _dir) = plugin_with_file();
        let unknown = new_key().unwrap().key;
        for key in [unknown, revoked, expired] {
            let (verdict, _) = run(&plugin, TestRequest::http("/").header("x-api-key", &key)).await;
            let rejection = verdict.rejection().expect("refused");
            assert_eq!(rejection.reason, "key.invalid");
            assert_eq!(rejection.message, "the API key is not valid");
        }
        // Not a gateway key (a provider key, a JWT): as if there were none.
        for request in [
            TestRequest::http("/"),
            TestRequest::http("/").header("x-api-key", "sk-ant-api03-laptop"),
            TestRequest::http("/").header("authorization", "Bearer eyJhbGciOi.x.y"),
        ] {
            let (verdict, _) = run(&plugin, request).await;
            assert_eq!(verdict.rejection().unwrap().reason, "key.missing");
        }
    }

    #[test]
    fn a_bad_key_file_or_store_is_a_configuration_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        std::fs::write(
            &path,
            "[[key]]\nid = \"k\"\nhash = \"md5:00\"\nsubject = \"a\"\n",
        )
        .unwrap();
        let error = build_plugin(
            &ApiKeyFactory,
            "keys",
            &format!("store = {{ file = \"{}\" }}", path.display()),
        )
        .unwrap_err();
        assert!(error.to_string().contains("64 hex digits"), "{error}");
        let error = build_plugin(&ApiKeyFactory, "keys", "store = {}").unwrap_err();
        assert!(error.to_string().contains("exactly one"), "{error}");
    }
}
