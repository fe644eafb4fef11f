//! `jwt`: authenticates callers with bearer JWTs and sets the request's `Identity`.
//!
//! Keys come from a JWKS (file, inline, or URL with background refresh and `kid` rotation), a
//! PEM public key, or an HMAC secret. Every key is bound to the algorithms of its type, so `none`
//! and algorithm-confusion tokens are refused. The client's token and claim headers never reach
//! the upstream. See docs/auth.md.

pub mod cache;
pub mod config;
pub mod discovery;
pub mod headers;
pub mod keys;
pub mod provider;
pub mod verify;

use std::sync::Arc;
use std::time::Duration;
use tollgate_plugin_api::trace::TraceCtx;

use async_trait::async_trait;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderName, HeaderValue, StatusCode};
use serde_json::{Map, Value};

use cache::VerifiedTokens;
use config::{JwtConfig, Mode};
use discovery::{challenge, ResourceMetadata};
use headers::ProtectedHeaders;
use keys::KeySet;
use provider::{KeyProvider, RemoteJwks};
use tollgate_plugin_api::config::{parse, PluginConfigError};
use tollgate_plugin_api::secret_source::{ExposeSecret, SecretSource};
use tollgate_plugin_api::{
    Identity, Plugin, PluginError, PluginFactory, RejectKind, Rejection, RequestCtx, Verdict,
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
    /// Client headers removed before the upstream: every claim header, and every token source
    /// unless `forward_token`.
    protected: ProtectedHeaders,
    resource: Option<ResourceMetadata>,
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
        let resource = ResourceMetadata::resolve(cfg.resource_metadata, &issuers)?;
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
        let protected = protected_headers(&sources, &claims_to_headers, cfg.forward_token);
        Ok(Jwt {
            verified: VerifiedTokens::new(leeway),
            name: name.to_string(),
            keys,
            verifier,
            sources,
            mode: cfg.mode,
            subject_claim: cfg.subject_claim,
            claims_to_headers,
            protected,
            resource,
            files,
        })
    }
}

/// The client headers to strip: a claim header always (a client must not pose as someone else,
/// whether or not the token carries that claim), a token header unless the token is forwarded —
/// every configured one, not only the one the token came from, since the others may hold the
/// client's own credentials.
fn protected_headers(
    sources: &[HeaderName],
    claims_to_headers: &[(String, HeaderName)],
    forward_token: bool,
) -> ProtectedHeaders {
    let claims = claims_to_headers.iter().map(|(_, header)| header);
    let tokens = sources.iter().filter(|_| !forward_token);
    ProtectedHeaders::new(claims.chain(tokens))
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
    /// The token from the first configured header that carries one.
    fn token<'a>(&self, cx: &'a RequestCtx) -> Option<&'a str> {
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
            return Some(token);
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

    /// `rejection` with the route's `WWW-Authenticate` challenge, when it is about the token.
    fn with_challenge(&self, cx: &RequestCtx, mut rejection: Rejection) -> Rejection {
        if rejection.kind == RejectKind::Authentication {
            if let Some(value) = challenge(cx, self.resource.as_ref(), true) {
                rejection.headers.push((WWW_AUTHENTICATE, value));
            }
        }
        rejection
    }

    /// A request without a token: anonymous in optional mode (still without the protected
    /// headers), refused otherwise.
    fn without_token(&self, cx: &mut RequestCtx) -> Verdict {
        if self.mode == Mode::Optional {
            self.protected.strip(cx);
            return Verdict::Continue;
        }
        let mut rejection = Rejection::new(
            RejectKind::Authentication,
            "jwt.missing",
            "a bearer token is required",
        );
        if let Some(value) = challenge(cx, self.resource.as_ref(), false) {
            rejection.headers.push((WWW_AUTHENTICATE, value));
        }
        Verdict::Reject(rejection)
    }

    /// Sets the caller's identity and the claim headers, after removing the client's protected
    /// headers.
    fn apply_identity(
        &self,
        cx: &mut RequestCtx,
        claims: Arc<Map<String, Value>>,
    ) -> Result<(), Rejection> {
        let subject = match claims.get(&self.subject_claim) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(self.reject(MISSING_CLAIM)),
        };
        self.protected.strip(cx);
        for (claim, header) in &self.claims_to_headers {
            if let Some(value) = claims.get(claim).and_then(claim_header_value) {
                cx.upstream_headers.set(header.clone(), value);
            }
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
        let Some(token) = self.token(cx) else {
            return Ok(self.without_token(cx));
        };
        let outcome = match self.verify(token, cx.trace()).await {
            Ok(claims) => self.apply_identity(cx, claims),
            Err(rejection) => Err(rejection),
        };
        Ok(match outcome {
            Ok(()) => Verdict::Continue,
            Err(rejection) => Verdict::Reject(self.with_challenge(cx, rejection)),
        })
    }

    fn protected_resource_metadata(
        &self,
        path_prefix: &str,
        headers: &http::HeaderMap,
    ) -> Option<Value> {
        self.resource
            .as_ref()
            .map(|meta| meta.document(path_prefix, headers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_plugin_api::testing::{build_plugin, TestExchange, TestRequest};

    const SECRET: &str = "unit-test-hmac-secret-0123456789";

    /// An HS256 token for `claims` (`exp` in ten minutes added) with `crit` in its header.
    fn token(mut claims: Value, crit: Option<Value>) -> String {
        claims["exp"] = serde_json::json!(unix_now() + 600);
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        if let Some(crit) = crit {
            header.extras.insert("crit", crit);
        }
        let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    }

    fn unix_now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn plugin(extra: &str) -> Arc<dyn Plugin> {
        std::env::set_var("TOLLGATE_TEST_JWT_UNIT", SECRET);
        build_plugin(
            &JwtFactory,
            "auth",
            &format!("secret = {{ env = \"TOLLGATE_TEST_JWT_UNIT\" }}\n{extra}"),
        )
        .unwrap()
    }

    async fn run(plugin: Arc<dyn Plugin>, request: TestRequest) -> (Verdict, TestExchange) {
        let mut exchange = TestExchange::new(plugin, request);
        let verdict = exchange.on_request().await.unwrap();
        (verdict, exchange)
    }

    async fn reason(plugin: &Arc<dyn Plugin>, token: &str) -> Option<String> {
        let request = TestRequest::http("/").header("authorization", &format!("Bearer {token}"));
        let (verdict, _) = run(plugin.clone(), request).await;
        verdict.rejection().map(|r| r.reason.to_string())
    }

    #[tokio::test]
    async fn a_configured_issuer_or_audience_must_be_present() {
        let plugin = plugin("issuer = \"https://idp.test\"\naudiences = [\"gw\"]");
        let cases = [
            (
                serde_json::json!({"sub": "a", "aud": "gw"}),
                Some("jwt.missing_claim"),
            ),
            (
                serde_json::json!({"sub": "a", "iss": "https://idp.test"}),
                Some("jwt.missing_claim"),
            ),
            (
                serde_json::json!({"sub": "a", "iss": null, "aud": "gw"}),
                Some("jwt.missing_claim"),
            ),
            (
                serde_json::json!({"sub": "a", "iss": "https://evil.test", "aud": "gw"}),
                Some("jwt.wrong_issuer"),
            ),
            (
                serde_json::json!({"sub": "a", "iss": "https://idp.test", "aud": "other"}),
                Some("jwt.wrong_audience"),
            ),
            (
                serde_json::json!({"sub": "a", "iss": "https://idp.test", "aud": "gw"}),
                None,
            ),
        ];
        for (claims, expected) in cases {
            let got = reason(&plugin, &token(claims.clone(), None)).await;
            assert_eq!(got.as_deref(), expected, "{claims}");
        }
    }

    #[tokio::test]
    async fn iss_and_aud_stay_optional_when_not_configured() {
        let plugin = plugin("");
        assert_eq!(
            reason(&plugin, &token(serde_json::json!({"sub": "a"}), None)).await,
            None
        );
    }

    #[tokio::test]
    async fn any_crit_header_is_refused() {
        let plugin = plugin("");
        let claims = serde_json::json!({"sub": "a"});
        let cases = [
            (
                serde_json::json!(["urn:example:ext"]),
                "jwt.unsupported_crit",
            ),
            (serde_json::json!(["exp"]), "jwt.unsupported_crit"),
            (serde_json::json!([]), "jwt.malformed"),
            (serde_json::json!(null), "jwt.malformed"),
            (serde_json::json!("urn:example:ext"), "jwt.malformed"),
            (serde_json::json!([1]), "jwt.malformed"),
        ];
        for (crit, expected) in cases {
            let got = reason(&plugin, &token(claims.clone(), Some(crit.clone()))).await;
            assert_eq!(got.as_deref(), Some(expected), "crit {crit}");
        }
        assert_eq!(reason(&plugin, &token(claims, None)).await, None);
    }

    /// The headers a request's upstream edits remove, sorted.
    fn removed(exchange: &TestExchange) -> Vec<String> {
        let mut names: Vec<String> = exchange
            .header_edits()
            .into_iter()
            .filter(|(_, value)| value.is_none())
            .map(|(name, _)| name)
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn every_token_and_claim_header_is_stripped() {
        let plugin = plugin(
            "token_from = [\"authorization\", \"x-api-key\"]\nclaims_to_headers = { sub = \"x-user-id\", email = \"x-user-email\" }",
        );
        let token = token(serde_json::json!({"sub": "alice"}), None);
        let request = TestRequest::http("/")
            .header("authorization", &format!("Bearer {token}"))
            .header("x-api-key", "sk-client-own-key")
            .header("x_api_key", "sk-client-own-key")
            .header("x_user_id", "mallory")
            .header("x-user-email", "mallory@example.com")
            .header("x_user-email", "mallory@example.com");
        let (verdict, exchange) = run(plugin, request).await;
        assert!(verdict.is_continue());
        assert_eq!(
            removed(&exchange),
            [
                "authorization",
                "x-api-key",
                "x-user-email",
                "x_api_key",
                "x_user-email",
                "x_user_id"
            ]
        );
        assert!(exchange
            .header_edits()
            .contains(&("x-user-id".to_string(), Some("alice".to_string()))));
    }

    #[tokio::test]
    async fn anonymous_requests_lose_the_protected_headers_too() {
        let plugin = plugin("mode = \"optional\"\nclaims_to_headers = { sub = \"x-user-id\" }");
        let request = TestRequest::http("/")
            .header("x-user-id", "mallory")
            .header("x_user_id", "mallory");
        let (verdict, exchange) = run(plugin, request).await;
        assert!(verdict.is_continue());
        assert_eq!(removed(&exchange), ["x-user-id", "x_user_id"]);
    }

    #[tokio::test]
    async fn a_forwarded_token_keeps_its_headers() {
        let plugin =
            plugin("forward_token = true\ntoken_from = [\"authorization\", \"x-api-key\"]");
        let token = token(serde_json::json!({"sub": "alice"}), None);
        let request = TestRequest::http("/")
            .header("authorization", &format!("Bearer {token}"))
            .header("x-api-key", "sk-client-own-key");
        let (verdict, exchange) = run(plugin, request).await;
        assert!(verdict.is_continue());
        assert!(removed(&exchange).is_empty());
    }

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
