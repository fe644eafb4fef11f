//! `jwt`: authenticates callers with bearer JWTs and sets the request's `Identity`.
//!
//! Keys come from a JWKS (file, inline, or URL with background refresh and `kid` rotation), a
//! PEM public key, or an HMAC secret. Every key is bound to the algorithms of its type, so `none`
//! and algorithm-confusion tokens are refused. See docs/auth.md.

pub mod cache;
pub mod config;
pub mod keys;
pub mod provider;
pub mod verify;

use std::sync::Arc;
use std::time::Duration;
use tollgate_plugin_api::trace::TraceCtx;

use async_trait::async_trait;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderName, HeaderValue, StatusCode};
use serde_json::{json, Map, Value};

use cache::VerifiedTokens;
use config::{JwtConfig, Mode, ResourceMetadataConfig};
use keys::KeySet;
use provider::{KeyProvider, RemoteJwks};
use tollgate_plugin_api::config::{parse, PluginConfigError};
use tollgate_plugin_api::secret_source::{ExposeSecret, SecretSource};
use tollgate_plugin_api::{
    Identity, Plugin, PluginError, PluginFactory, RejectKind, Rejection, RequestCtx, RouteKind,
    Verdict,
};
use verify::{Failure, Verifier, MISSING_CLAIM};

/// The `jwt` plugin instance.
pub struct Jwt {
    name: String,
    keys: KeyProvider,
    verifier: Verifier,
    sources: Vec<HeaderName>,
    mode: Mode,
    subject_claim: String,
    claims_to_headers: Vec<(String, HeaderName)>,
    forward_token: bool,
    resource: Option<ResourceMetadataConfig>,
    verified: VerifiedTokens<KeySet>,
    files: Vec<std::path::PathBuf>,
}

impl std::fmt::Debug for Jwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwt")
            .field("name", &self.name)
            .field("keys", &self.keys)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// Factory for `type = "jwt"`.
pub struct JwtFactory;

impl PluginFactory for JwtFactory {
    fn build(&self, name: &str, table: &toml::Table) -> Result<Arc<dyn Plugin>, PluginConfigError> {
        Ok(Arc::new(Jwt::from_table(name, table)?))
    }
}

impl Jwt {
    fn from_table(name: &str, table: &toml::Table) -> Result<Self, PluginConfigError> {
        let cfg: JwtConfig = parse(table)?;
        let keys = build_keys(&cfg)?;
        let files = key_files(&cfg);
        let issuers = cfg.issuer.map(|i| i.into_vec()).unwrap_or_default();
        let audiences = cfg.audiences.unwrap_or_default();
        let leeway = cfg.leeway.map_or(60, |d| d.0.as_secs());
        let verifier = Verifier::new(
            &issuers,
            &audiences,
            leeway,
            cfg.required_claims,
            cfg.max_token_bytes.unwrap_or(8192),
        );
        let sources = cfg
            .token_from
            .iter()
            .map(|s| match s.to_ascii_lowercase().as_str() {
                "authorization" => Ok(AUTHORIZATION),
                "x-api-key" => Ok(HeaderName::from_static("x-api-key")),
                other => Err(PluginConfigError::at(
                    "token_from",
                    format!("unknown token source `{other}` (use authorization, x-api-key)"),
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let claims_to_headers = cfg
            .claims_to_headers
            .into_iter()
            .map(|(claim, header)| {
                HeaderName::from_bytes(header.as_bytes())
                    .map(|h| (claim, h))
                    .map_err(|_| {
                        PluginConfigError::at(
                            "claims_to_headers",
                            format!("`{header}` is not a valid header name"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Jwt {
            verified: VerifiedTokens::new(leeway),
            name: name.to_string(),
            keys,
            verifier,
            sources,
            mode: cfg.mode,
            subject_claim: cfg.subject_claim,
            claims_to_headers,
            forward_token: cfg.forward_token,
            resource: cfg.resource_metadata,
            files,
        })
    }
}

/// The files the key material was read from (a JWKS URL is refreshed by the plugin itself).
fn key_files(cfg: &JwtConfig) -> Vec<std::path::PathBuf> {
    let jwks = cfg
        .jwks
        .as_ref()
        .and_then(|j| j.file.as_ref())
        .map(std::path::PathBuf::from);
    let pem = cfg.public_key.as_ref().and_then(SecretSource::file);
    let secret = cfg.secret.as_ref().and_then(SecretSource::file);
    jwks.into_iter().chain(pem).chain(secret).collect()
}

fn build_keys(cfg: &JwtConfig) -> Result<KeyProvider, PluginConfigError> {
    let given = [
        cfg.jwks.is_some(),
        cfg.public_key.is_some(),
        cfg.secret.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if given != 1 {
        return Err(PluginConfigError::new(
            "set exactly one of `jwks`, `public_key` or `secret`",
        ));
    }
    if let Some(secret) = &cfg.secret {
        return Ok(KeyProvider::Static(Arc::new(KeySet::from_secret(
            secret.load("secret")?.expose_secret().as_bytes(),
        ))));
    }
    if let Some(pem) = &cfg.public_key {
        let pem = pem.load("public_key")?;
        let keys = KeySet::from_pem(pem.expose_secret(), None)
            .map_err(|e| PluginConfigError::at("public_key", e))?;
        return Ok(KeyProvider::Static(Arc::new(keys)));
    }
    let Some(jwks) = &cfg.jwks else {
        return Err(PluginConfigError::new(
            "set exactly one of `jwks`, `public_key` or `secret`",
        ));
    };
    let sources = [
        jwks.file.is_some(),
        jwks.url.is_some(),
        jwks.inline.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if sources != 1 {
        return Err(PluginConfigError::at(
            "jwks",
            "set exactly one of `file`, `url` or `inline`",
        ));
    }
    if let Some(url) = &jwks.url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(PluginConfigError::at(
                "jwks",
                format!("`{url}` is not an http(s) URL"),
            ));
        }
        let refresh = jwks.refresh.map_or(Duration::from_secs(300), |d| d.0);
        let min_refetch = jwks.min_refetch.map_or(Duration::from_secs(30), |d| d.0);
        let remote = RemoteJwks::new(url.clone(), refresh, min_refetch)
            .map_err(|e| PluginConfigError::at("jwks", e))?;
        return Ok(KeyProvider::Remote(Arc::new(remote)));
    }
    let text = match (&jwks.file, &jwks.inline) {
        (Some(path), _) => std::fs::read_to_string(path).map_err(|e| {
            PluginConfigError::at("jwks", format!("cannot read JWKS file `{path}`: {e}"))
        })?,
        (_, Some(inline)) => inline.clone(),
        _ => {
            return Err(PluginConfigError::at(
                "jwks",
                "set exactly one of `file`, `url` or `inline`",
            ))
        }
    };
    let keys = KeySet::from_jwks(&text).map_err(|e| PluginConfigError::at("jwks", e))?;
    Ok(KeyProvider::Static(Arc::new(keys)))
}

impl Jwt {
    /// The token from the first configured header that carries one, and that header.
    fn token<'a>(&self, cx: &'a RequestCtx) -> Option<(&'a str, &HeaderName)> {
        for source in &self.sources {
            let Some(value) = cx.headers().get(source).and_then(|v| v.to_str().ok()) else {
                continue;
            };
            let token = if *source == AUTHORIZATION {
                let (scheme, rest) = value.split_once(' ')?;
                if !scheme.eq_ignore_ascii_case("bearer") {
                    continue;
                }
                rest.trim()
            } else {
                value.trim()
            };
            // `x-api-key` may hold a provider key rather than a JWT: only take JWT-shaped values.
            if *source != AUTHORIZATION && token.matches('.').count() != 2 {
                continue;
            }
            return Some((token, source));
        }
        None
    }

    async fn verify(
        &self,
        token: &str,
        trace: &TraceCtx,
    ) -> Result<Arc<Map<String, Value>>, Rejection> {
        let keys = match &self.keys {
            KeyProvider::Static(keys) => keys.clone(),
            KeyProvider::Remote(remote) => match remote.keys(trace).await {
                Some(keys) => keys,
                None => return Err(keys_unavailable()),
            },
        };
        if let Some(claims) = self.verified.get(token, &keys) {
            return Ok(claims);
        }
        let (claims, keys) = self.verify_signature(token, keys, trace).await?;
        let claims = Arc::new(claims);
        self.verified.insert(token, &keys, claims.clone());
        Ok(claims)
    }

    /// Checks the signature and claims; returns the claims and the key set that verified them.
    async fn verify_signature(
        &self,
        token: &str,
        keys: Arc<KeySet>,
        trace: &TraceCtx,
    ) -> Result<(Map<String, Value>, Arc<KeySet>), Rejection> {
        let (alg, kid) = self.verifier.header(token).map_err(|f| self.reject(f))?;
        match self.verifier.verify(token, alg, kid.as_deref(), &keys) {
            Err(f) if f == verify::UNKNOWN_KID => {
                // Rotation: the IdP may have published a new key since the last fetch.
                if let KeyProvider::Remote(remote) = &self.keys {
                    if let Some(fresh) = remote.refetch_for_unknown_kid(trace).await {
                        return match self.verifier.verify(token, alg, kid.as_deref(), &fresh) {
                            Ok(claims) => Ok((claims, fresh)),
                            Err(f) => Err(self.reject(f)),
                        };
                    }
                }
                Err(self.reject(f))
            }
            Ok(claims) => Ok((claims, keys)),
            Err(f) => Err(self.reject(f)),
        }
    }

    /// A 401 for `failure`; the `WWW-Authenticate` challenge is added in `on_request`, which
    /// knows the route.
    fn reject(&self, failure: Failure) -> Rejection {
        Rejection::new(RejectKind::Authentication, failure.reason, failure.message)
    }

    fn challenge(&self, cx: &RequestCtx, token_present: bool) -> Option<HeaderValue> {
        let mut value = String::from("Bearer realm=\"tollgate\"");
        if cx.route().kind == RouteKind::Mcp && self.resource.is_some() {
            value.push_str(&format!(
                ", resource_metadata=\"{}\"",
                self.metadata_url(cx)
            ));
        }
        if token_present {
            value.push_str(", error=\"invalid_token\"");
        }
        HeaderValue::from_str(&value).ok()
    }

    /// The gateway's public base URL: configured, or from the request's forwarding headers.
    fn public_base(&self, headers: &http::HeaderMap) -> String {
        if let Some(base) = self.resource.as_ref().and_then(|r| r.public_url.as_deref()) {
            return base.trim_end_matches('/').to_string();
        }
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let scheme = header("x-forwarded-proto").unwrap_or("http");
        let host = header("x-forwarded-host")
            .or_else(|| header("host"))
            .unwrap_or("localhost");
        format!("{scheme}://{host}")
    }

    fn metadata_url(&self, cx: &RequestCtx) -> String {
        let prefix = cx.route().path_prefix.trim_end_matches('/');
        format!(
            "{}/.well-known/oauth-protected-resource{prefix}",
            self.public_base(cx.headers())
        )
    }

    fn apply_identity(
        &self,
        cx: &mut RequestCtx,
        claims: Arc<Map<String, Value>>,
        source: &HeaderName,
    ) -> Result<(), Rejection> {
        let subject = match claims.get(&self.subject_claim) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(self.reject(MISSING_CLAIM)),
        };
        for (claim, header) in &self.claims_to_headers {
            // A client must not be able to pose as someone else through these headers.
            cx.upstream_headers.remove(header.clone());
            if let Some(value) = claims.get(claim).and_then(claim_header_value) {
                cx.upstream_headers.set(header.clone(), value);
            }
        }
        if !self.forward_token {
            cx.upstream_headers.remove(source.clone());
        }
        cx.identity = Some(Identity { subject, claims });
        Ok(())
    }
}

fn keys_unavailable() -> Rejection {
    Rejection::new(
        RejectKind::Api,
        "jwt.keys_unavailable",
        "the token cannot be checked: signing keys are unavailable",
    )
    .with_status(StatusCode::SERVICE_UNAVAILABLE)
}

fn claim_header_value(value: &Value) -> Option<HeaderValue> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join(","),
        _ => return None,
    };
    HeaderValue::from_str(&text).ok()
}

#[async_trait]
impl Plugin for Jwt {
    fn name(&self) -> &str {
        &self.name
    }

    fn watched_files(&self) -> Vec<std::path::PathBuf> {
        self.files.clone()
    }

    async fn on_request(&self, cx: &mut RequestCtx) -> Result<Verdict, PluginError> {
        let Some((token, source)) = self.token(cx) else {
            if self.mode == Mode::Optional {
                return Ok(Verdict::Continue);
            }
            let mut rejection = Rejection::new(
                RejectKind::Authentication,
                "jwt.missing",
                "a bearer token is required",
            );
            if let Some(challenge) = self.challenge(cx, false) {
                rejection.headers.push((WWW_AUTHENTICATE, challenge));
            }
            return Ok(Verdict::Reject(rejection));
        };
        let source = source.clone();
        let outcome = match self.verify(token, cx.trace()).await {
            Ok(claims) => self.apply_identity(cx, claims, &source),
            Err(rejection) => Err(rejection),
        };
        match outcome {
            Ok(()) => Ok(Verdict::Continue),
            Err(mut rejection) => {
                if rejection.kind == RejectKind::Authentication {
                    if let Some(challenge) = self.challenge(cx, true) {
                        rejection.headers.push((WWW_AUTHENTICATE, challenge));
                    }
                }
                Ok(Verdict::Reject(rejection))
            }
        }
    }

    fn protected_resource_metadata(
        &self,
        path_prefix: &str,
        headers: &http::HeaderMap,
    ) -> Option<Value> {
        let meta = self.resource.as_ref()?;
        let resource = format!(
            "{}{}",
            self.public_base(headers),
            path_prefix.trim_end_matches('/')
        );
        let mut doc = json!({
            "resource": resource,
            "authorization_servers": meta.authorization_servers,
            "bearer_methods_supported": ["header"],
        });
        if let Some(scopes) = &meta.scopes_supported {
            doc["scopes_supported"] = json!(scopes);
        }
        Some(doc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_plugin_api::testing::build_plugin;

    #[test]
    fn watches_the_key_file_it_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwt-secret");
        std::fs::write(&path, "an-hmac-secret\n").unwrap();
        let plugin = build_plugin(
            &JwtFactory,
            "auth",
            &format!("secret = {{ file = \"{}\" }}", path.display()),
        )
        .unwrap();
        assert_eq!(plugin.watched_files(), vec![path]);
    }

    #[test]
    fn an_env_secret_watches_nothing() {
        std::env::set_var("TOLLGATE_TEST_JWT_SECRET", "an-hmac-secret");
        let plugin = build_plugin(
            &JwtFactory,
            "auth",
            "secret = { env = \"TOLLGATE_TEST_JWT_SECRET\" }",
        )
        .unwrap();
        assert!(plugin.watched_files().is_empty());
    }

    #[test]
    fn debug_hides_the_hmac_secret() {
        std::env::set_var("TOLLGATE_TEST_JWT_DEBUG", "hmac-very-secret-0123456789");
        let table: toml::Table =
            toml::from_str("secret = { env = \"TOLLGATE_TEST_JWT_DEBUG\" }").unwrap();
        let jwt = Jwt::from_table("auth", &table).unwrap();
        assert!(!format!("{jwt:?}").contains("very-secret"));
    }
}
