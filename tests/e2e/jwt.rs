//! The `jwt` plugin against real tokens: the attack suite, identity propagation, key rotation
//! from a JWKS URL, the IdP being down, and the OAuth challenge of MCP routes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use base64::Engine;
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};
use tollgate_testkit::keys::{JwksServer, KeyFiles};
use tollgate_testkit::{client, RunningGateway};

use crate::common::tokens::{mint_token, AUDIENCE, ISSUER};
use crate::common::upstream::TestUpstream;
use crate::common::{gateway, tollgate_bin};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn b64(value: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

async fn status_and_reason(
    gw: &RunningGateway,
    token: Option<&str>,
) -> (u16, String, Option<String>) {
    let mut request = client().get(gw.url("/api/whoami"));
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let resp = request.send().await.unwrap();
    let reason = resp
        .headers()
        .get("x-tollgate-reason")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    (resp.status().as_u16(), reason, challenge)
}

fn jwks_config(upstream: &str, jwks_url: &str) -> String {
    format!(
        r#"
[plugin.auth]
type = "jwt"
issuer = "{ISSUER}"
audiences = ["{AUDIENCE}"]
jwks = {{ url = "{jwks_url}", refresh = "1s", min_refetch = "1s" }}
claims_to_headers = {{ sub = "x-user-id", groups = "x-user-groups" }}

[[route]]
name = "api"
match = {{ path_prefix = "/api" }}
upstream = {{ url = "{upstream}" }}
plugins = ["auth"]
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn attack_suite_each_refused_with_its_reason() {
    let keys = KeyFiles::generate();
    let up = TestUpstream::start().await;
    let jwks = JwksServer::start(keys.jwks(&[("rsa1.key", "k1")])).await;
    let gw = gateway(&jwks_config(&up.url(), &jwks.url)).start().await;

    let valid = mint_token(&keys, "rsa1.key", Algorithm::RS256, Some("k1"), |_| {});
    let claims = json!({"sub": "mallory", "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600});
    let public_pem = keys.read("rsa1.pub");
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("no token", None, "jwt.missing"),
        ("malformed", Some("not-a-jwt".into()), "jwt.malformed"),
        (
            "bad signature",
            Some(mint_token(
                &keys,
                "rsa2.key",
                Algorithm::RS256,
                Some("k1"),
                |_| {},
            )),
            "jwt.bad_signature",
        ),
        (
            "tampered payload",
            Some({
                let parts: Vec<&str> = valid.split('.').collect();
                format!("{}.{}.{}", parts[0], b64(&claims), parts[2])
            }),
            "jwt.bad_signature",
        ),
        (
            "alg none",
            Some(format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT", "kid": "k1"})),
                b64(&claims)
            )),
            "jwt.alg_not_allowed",
        ),
        (
            "HS256 signed with the RSA public key",
            Some({
                let request = tollgate::token::TokenRequest {
                    subject: "mallory".into(),
                    issuer: Some(ISSUER.into()),
                    audience: Some(AUDIENCE.into()),
                    ttl_secs: 600,
                    claims: vec![],
                    kid: Some("k1".into()),
                };
                tollgate::token::mint(&request, Algorithm::HS256, &public_pem).unwrap()
            }),
            "jwt.alg_not_allowed",
        ),
        (
            "wrong issuer",
            Some(mint_token(
                &keys,
                "rsa1.key",
                Algorithm::RS256,
                Some("k1"),
                |r| r.issuer = Some("https://evil.test".into()),
            )),
            "jwt.wrong_issuer",
        ),
        (
            "wrong audience",
            Some(mint_token(
                &keys,
                "rsa1.key",
                Algorithm::RS256,
                Some("k1"),
                |r| r.audience = Some("other".into()),
            )),
            "jwt.wrong_audience",
        ),
        (
            "unknown kid",
            Some(mint_token(
                &keys,
                "rsa1.key",
                Algorithm::RS256,
                Some("k9"),
                |_| {},
            )),
            "jwt.unknown_kid",
        ),
        (
            "oversized",
            Some(mint_token(
                &keys,
                "rsa1.key",
                Algorithm::RS256,
                Some("k1"),
                |r| r.claims.push(("pad".into(), "x".repeat(10_000))),
            )),
            "jwt.oversized",
        ),
    ];
    for (name, token, reason) in &cases {
        let (status, got, challenge) = status_and_reason(&gw, token.as_deref()).await;
        assert_eq!((status, got.as_str()), (401, *reason), "{name}");
        assert!(
            challenge.unwrap_or_default().starts_with("Bearer"),
            "{name}: WWW-Authenticate"
        );
    }
    assert!(
        up.recorder.requests().is_empty(),
        "no refused token reached the upstream"
    );

    let (status, _, _) = status_and_reason(&gw, Some(&valid)).await;
    assert_eq!(status, 200);
    assert!(!gw.log().contains(&valid), "tokens are never logged");
}

#[tokio::test(flavor = "multi_thread")]
async fn time_claims_are_checked_with_leeway() {
    let keys = KeyFiles::generate();
    let up = TestUpstream::start().await;
    let jwks = JwksServer::start(keys.jwks(&[("rsa1.key", "k1")])).await;
    let gw = gateway(&jwks_config(&up.url(), &jwks.url)).start().await;
    let signed = |claims: Value| {
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(&keys.read("rsa1.key")).unwrap();
        let mut header = jsonwebtoken::Header::new(Algorithm::RS256);
        header.kid = Some("k1".into());
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    };
    let base = |exp: u64| json!({"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "exp": exp});
    let expired = signed(base(now() - 3600));
    let within_leeway = signed(base(now() - 10));
    let mut future = base(now() + 600);
    future["nbf"] = json!(now() + 3600);
    let no_exp = signed(json!({"sub": "alice", "iss": ISSUER, "aud": AUDIENCE}));
    assert_eq!(
        status_and_reason(&gw, Some(&expired)).await.1,
        "jwt.expired"
    );
    assert_eq!(
        status_and_reason(&gw, Some(&signed(future))).await.1,
        "jwt.not_yet_valid"
    );
    assert_eq!(
        status_and_reason(&gw, Some(&no_exp)).await.1,
        "jwt.missing_claim"
    );
    assert_eq!(status_and_reason(&gw, Some(&within_leeway)).await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cached_token_is_refused_once_it_expires() {
    let keys = KeyFiles::generate();
    let up = TestUpstream::start().await;
    let jwks = JwksServer::start(keys.jwks(&[("rsa1.key", "k1")])).await;
    let config = jwks_config(&up.url(), &jwks.url)
        .replace("claims_to_headers", "leeway = \"0s\"\nclaims_to_headers");
    let gw = gateway(&config).start().await;
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&keys.read("rsa1.key")).unwrap();
    let mut header = jsonwebtoken::Header::new(Algorithm::RS256);
    header.kid = Some("k1".into());
    let exp = now() + 2;
    let claims = json!({"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "exp": exp});
    let token = jsonwebtoken::encode(&header, &claims, &key).unwrap();
    // Verified, then served from the verified-token cache.
    assert_eq!(status_and_reason(&gw, Some(&token)).await.0, 200);
    assert_eq!(status_and_reason(&gw, Some(&token)).await.0, 200);
    while now() <= exp {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        status_and_reason(&gw, Some(&token)).await.1,
        "jwt.expired",
        "the cache does not outlive the token"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn identity_reaches_the_upstream_and_the_token_does_not() {
    let keys = KeyFiles::generate();
    let up = TestUpstream::start().await;
    let jwks = JwksServer::start(keys.jwks(&[("rsa1.key", "k1")])).await;
    let gw = gateway(&jwks_config(&up.url(), &jwks.url)).start().await;
    let token = mint_token(&keys, "rsa1.key", Algorithm::RS256, Some("k1"), |_| {});
    let resp = client()
        .get(gw.url("/api/whoami"))
        .header("authorization", format!("Bearer {token}"))
        .header("x-user-id", "spoofed-admin")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen: Value = resp.json().await.unwrap();
    assert_eq!(seen["headers"]["x-user-id"], "alice@example.com");
    assert_eq!(seen["headers"]["x-user-groups"], "math-users,staff");
    assert!(
        seen["headers"].get("authorization").is_none(),
        "the token is stripped: {seen}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn jwks_rotation_is_picked_up_and_outages_keep_the_last_keys() {
    let keys = KeyFiles::generate();
    let up = TestUpstream::start().await;
    let jwks = JwksServer::start(keys.jwks(&[("rsa1.key", "k1")])).await;
    let gw = gateway(&jwks_config(&up.url(), &jwks.url)).start().await;
    let k1 = mint_token(&keys, "rsa1.key", Algorithm::RS256, Some("k1"), |_| {});
    let k2 = mint_token(&keys, "rsa2.key", Algorithm::RS256, Some("k2"), |_| {});
    assert_eq!(status_and_reason(&gw, Some(&k1)).await.0, 200);
    assert_eq!(status_and_reason(&gw, Some(&k2)).await.1, "jwt.unknown_kid");

    // The IdP rotates to k2: an unknown kid triggers a refetch (at most once per second here).
    jwks.set(StatusCode::OK, keys.jwks(&[("rsa2.key", "k2")]));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        status_and_reason(&gw, Some(&k2)).await.0,
        200,
        "{}",
        gw.log()
    );

    // The IdP goes down: refreshes fail, the last good key set stays in use.
    jwks.set(StatusCode::INTERNAL_SERVER_ERROR, "down".into());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..3 {
        assert_eq!(status_and_reason(&gw, Some(&k2)).await.0, 200);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert!(
        gw.log().contains("JWKS fetch failed"),
        "the outage is logged"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn static_keys_pem_and_hmac_secret() {
    let keys = KeyFiles::generate();
    let up = TestUpstream::start().await;
    let config = format!(
        r#"
[plugin.ec]
type = "jwt"
public_key = {{ file = "{ec}" }}

[plugin.hmac]
type = "jwt"
secret = {{ env = "E2E_JWT_SECRET" }}
token_from = ["x-api-key", "authorization"]

[[route]]
name = "ec"
match = {{ path_prefix = "/ec" }}
upstream = {{ url = "{u}" }}
plugins = ["ec"]

[[route]]
name = "hmac"
match = {{ path_prefix = "/hmac" }}
upstream = {{ url = "{u}" }}
plugins = ["hmac"]
"#,
        ec = keys.path("ec.pub"),
        u = up.url()
    );
    let secret = "a-shared-secret-of-some-length-0123456789";
    let gw = gateway(&config).env("E2E_JWT_SECRET", secret).start().await;
    let client = client();
    let es256 = mint_token(&keys, "ec.key", Algorithm::ES256, None, |_| {});
    let resp = client
        .get(gw.url("/ec/x"))
        .bearer_auth(&es256)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // An RS256 token is refused by an EC key whatever its signature.
    let rs256 = mint_token(&keys, "rsa1.key", Algorithm::RS256, None, |_| {});
    let resp = client
        .get(gw.url("/ec/x"))
        .bearer_auth(&rs256)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-tollgate-reason"], "jwt.alg_not_allowed");

    let request = tollgate::token::TokenRequest {
        subject: "bob".into(),
        issuer: None,
        audience: None,
        ttl_secs: 60,
        claims: vec![],
        kid: None,
    };
    let hs256 = tollgate::token::mint(&request, Algorithm::HS256, secret.as_bytes()).unwrap();
    // Claude Code's ANTHROPIC_API_KEY lands in x-api-key.
    let resp = client
        .get(gw.url("/hmac/x"))
        .header("x-api-key", &hs256)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen: Value = resp.json().await.unwrap();
    assert!(
        seen["headers"].get("x-api-key").is_none(),
        "the token is stripped: {seen}"
    );
    let wrong = tollgate::token::mint(
        &request,
        Algorithm::HS256,
        b"another-secret-entirely-0123456789",
    )
    .unwrap();
    let resp = client
        .get(gw.url("/hmac/x"))
        .bearer_auth(&wrong)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-tollgate-reason"], "jwt.bad_signature");
}

#[tokio::test(flavor = "multi_thread")]
async fn mcp_route_challenge_names_the_resource_metadata_document() {
    let keys = KeyFiles::generate();
    let up = TestUpstream::start().await;
    let jwks = JwksServer::start(keys.jwks(&[("rsa1.key", "k1")])).await;
    let config = format!(
        r#"
[plugin.auth]
type = "jwt"
issuer = "{ISSUER}"
jwks = {{ url = "{jwks}" }}
resource_metadata = {{ authorization_servers = ["{ISSUER}"], scopes_supported = ["mcp:tools"] }}

[[route]]
name = "mcp"
match = {{ path_prefix = "/mcp" }}
upstream = {{ url = "{u}/mcp", kind = "mcp" }}
plugins = ["auth"]
"#,
        jwks = jwks.url,
        u = up.url()
    );
    let gw = gateway(&config).start().await;
    let client = client();
    let resp = client
        .post(gw.url("/mcp"))
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    let metadata_url = format!(
        "http://{}/.well-known/oauth-protected-resource/mcp",
        gw.addr
    );
    assert!(
        challenge.contains(&format!("resource_metadata=\"{metadata_url}\"")),
        "{challenge}"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32002);
    assert_eq!(body["error"]["data"]["reason"], "jwt.missing");

    let doc: Value = client
        .get(&metadata_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["resource"], format!("http://{}/mcp", gw.addr));
    assert_eq!(doc["authorization_servers"], json!([ISSUER]));
    assert_eq!(doc["scopes_supported"], json!(["mcp:tools"]));
    let resp = client
        .get(gw.url("/.well-known/oauth-protected-resource/other"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn optional_mode_and_tokens_minted_by_the_cli() {
    let up = TestUpstream::start().await;
    let secret = "cli-minted-secret-0123456789abcdef";
    let config = format!(
        r#"
[plugin.auth]
type = "jwt"
secret = {{ env = "E2E_CLI_SECRET" }}
mode = "optional"
claims_to_headers = {{ sub = "x-user-id", groups = "x-user-groups" }}

[[route]]
name = "api"
match = {{ path_prefix = "/api" }}
upstream = {{ url = "{}" }}
plugins = ["auth"]
"#,
        up.url()
    );
    let gw = gateway(&config).env("E2E_CLI_SECRET", secret).start().await;
    let output = std::process::Command::new(tollgate_bin())
        .args([
            "token",
            "--secret-env",
            "E2E_CLI_SECRET",
            "--alg",
            "HS256",
            "--sub",
            "carol",
        ])
        .args(["--claim", "groups=a,b", "--ttl", "5m"])
        .env("E2E_CLI_SECRET", secret)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout).unwrap().trim().to_string();
    let client = client();

    // Anonymous requests pass in optional mode, without identity headers.
    let seen: Value = client
        .get(gw.url("/api/x"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(seen["headers"].get("x-user-id").is_none(), "{seen}");
    // A present token is still validated...
    let resp = client
        .get(gw.url("/api/x"))
        .bearer_auth("a.b.c")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // ...and a valid one sets the identity.
    let seen: Value = client
        .get(gw.url("/api/x"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["headers"]["x-user-id"], "carol");
    assert_eq!(seen["headers"]["x-user-groups"], "a,b");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_configured_issuer_and_audience_must_be_in_the_token() {
    let keys = KeyFiles::generate();
    let up = TestUpstream::start().await;
    let jwks = JwksServer::start(keys.jwks(&[("rsa1.key", "k1")])).await;
    let gw = gateway(&jwks_config(&up.url(), &jwks.url)).start().await;
    let minted = |edit: fn(&mut tollgate::token::TokenRequest)| {
        mint_token(&keys, "rsa1.key", Algorithm::RS256, Some("k1"), edit)
    };
    let cases: [(&str, String, &str); 5] = [
        ("no iss", minted(|r| r.issuer = None), "jwt.missing_claim"),
        ("no aud", minted(|r| r.audience = None), "jwt.missing_claim"),
        (
            "neither",
            minted(|r| {
                r.issuer = None;
                r.audience = None;
            }),
            "jwt.missing_claim",
        ),
        (
            "wrong iss",
            minted(|r| r.issuer = Some("https://evil.test".into())),
            "jwt.wrong_issuer",
        ),
        (
            "wrong aud",
            minted(|r| r.audience = Some("other".into())),
            "jwt.wrong_audience",
        ),
    ];
    for (name, token, reason) in &cases {
        let (status, got, challenge) = status_and_reason(&gw, Some(token)).await;
        assert_eq!((status, got.as_str()), (401, *reason), "{name}");
        assert!(
            challenge
                .unwrap_or_default()
                .contains("error=\"invalid_token\""),
            "{name}: WWW-Authenticate"
        );
    }
    assert!(
        up.recorder.requests().is_empty(),
        "no refused token reached the upstream"
    );
    assert_eq!(status_and_reason(&gw, Some(&minted(|_| {}))).await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_with_a_crit_header_is_refused() {
    let keys = KeyFiles::generate();
    let up = TestUpstream::start().await;
    let jwks = JwksServer::start(keys.jwks(&[("rsa1.key", "k1")])).await;
    let gw = gateway(&jwks_config(&up.url(), &jwks.url)).start().await;
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&keys.read("rsa1.key")).unwrap();
    let claims = json!({"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600});
    // Properly signed by the trusted key: only the header's `crit` is wrong.
    let signed = |crit: Option<Value>| {
        let mut header = jsonwebtoken::Header::new(Algorithm::RS256);
        header.kid = Some("k1".into());
        if let Some(crit) = crit {
            header.extras.insert("crit", crit);
            header.extras.insert("urn:example:ext", true);
        }
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    };
    let cases = [
        (json!(["urn:example:ext"]), "jwt.unsupported_crit"),
        (json!(["b64"]), "jwt.unsupported_crit"),
        (json!([]), "jwt.malformed"),
        (json!(null), "jwt.malformed"),
        (json!("urn:example:ext"), "jwt.malformed"),
        (json!([42]), "jwt.malformed"),
    ];
    for (crit, reason) in &cases {
        let token = signed(Some(crit.clone()));
        let (status, got, _) = status_and_reason(&gw, Some(&token)).await;
        assert_eq!((status, got.as_str()), (401, *reason), "crit {crit}");
    }
    assert!(
        up.recorder.requests().is_empty(),
        "no refused token reached the upstream"
    );
    assert_eq!(status_and_reason(&gw, Some(&signed(None))).await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_token_header_is_removed_before_the_upstream() {
    let keys = KeyFiles::generate();
    let up = TestUpstream::start().await;
    let jwks = JwksServer::start(keys.jwks(&[("rsa1.key", "k1")])).await;
    let config = jwks_config(&up.url(), &jwks.url).replace(
        "claims_to_headers",
        "token_from = [\"authorization\", \"x-api-key\"]\nclaims_to_headers",
    );
    let gw = gateway(&config).start().await;
    let token = mint_token(&keys, "rsa1.key", Algorithm::RS256, Some("k1"), |_| {});
    let client = client();
    // The token in one header, the client's own credentials in the other.
    let requests = [
        client
            .get(gw.url("/api/x"))
            .bearer_auth(&token)
            .header("x-api-key", "sk-ant-client-own-key"),
        client
            .get(gw.url("/api/x"))
            .header("x-api-key", &token)
            .header("authorization", "Basic Y2xpZW50OnBhc3N3b3Jk"),
    ];
    for request in requests {
        let resp = request.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let seen: Value = resp.json().await.unwrap();
        for header in ["authorization", "x-api-key"] {
            assert!(
                seen["headers"].get(header).is_none(),
                "{header} reached the upstream: {seen}"
            );
        }
        assert_eq!(seen["headers"]["x-user-id"], "alice@example.com");
    }
}

/// The values of the headers the upstream's last request had under a name that reads as
/// `name` when `_` is taken for `-` (as WSGI and uvicorn upstreams read them).
fn received_as(up: &TestUpstream, name: &str) -> Vec<String> {
    let requests = up.recorder.requests();
    let last = requests.last().expect("the upstream got the request");
    last.headers
        .iter()
        .filter(|(n, _)| n.as_str().replace('_', "-") == name)
        .map(|(_, v)| v.to_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn client_sent_claim_headers_never_reach_the_upstream_in_any_spelling() {
    let keys = KeyFiles::generate();
    let up = TestUpstream::start().await;
    let jwks = JwksServer::start(keys.jwks(&[("rsa1.key", "k1")])).await;
    let config = format!(
        r#"
[plugin.auth]
type = "jwt"
issuer = "{ISSUER}"
audiences = ["{AUDIENCE}"]
jwks = {{ url = "{jwks}" }}
claims_to_headers = {{ sub = "x-user-id", groups = "x-user-groups", email = "x-user-email" }}

[plugin.maybe]
type = "jwt"
issuer = "{ISSUER}"
audiences = ["{AUDIENCE}"]
jwks = {{ url = "{jwks}" }}
mode = "optional"
claims_to_headers = {{ sub = "x-user-id" }}

[[route]]
name = "api"
match = {{ path_prefix = "/api" }}
upstream = {{ url = "{u}" }}
plugins = ["auth"]

[[route]]
name = "open"
match = {{ path_prefix = "/open" }}
upstream = {{ url = "{u}" }}
plugins = ["maybe"]
"#,
        jwks = jwks.url,
        u = up.url()
    );
    let gw = gateway(&config).start().await;
    // The token has `sub` and `groups` but no `email`.
    let token = mint_token(&keys, "rsa1.key", Algorithm::RS256, Some("k1"), |_| {});
    let spoofed = [
        ("x-user-id", "admin@example.com"),
        ("x_user_id", "admin@example.com"),
        ("x_user-groups", "admins"),
        ("x-user-email", "admin@example.com"),
        ("x_user_email", "admin@example.com"),
    ];
    let mut request = client().get(gw.url("/api/x")).bearer_auth(&token);
    for (name, value) in spoofed {
        request = request.header(name, value);
    }
    assert_eq!(request.send().await.unwrap().status(), 200);
    assert_eq!(received_as(&up, "x-user-id"), ["alice@example.com"]);
    assert_eq!(received_as(&up, "x-user-groups"), ["math-users,staff"]);
    assert!(
        received_as(&up, "x-user-email").is_empty(),
        "a claim the token lacks cannot be supplied by the client"
    );

    // Anonymous requests of optional mode lose them too.
    let mut request = client().get(gw.url("/open/x"));
    for (name, value) in spoofed {
        request = request.header(name, value);
    }
    assert_eq!(request.send().await.unwrap().status(), 200);
    assert!(received_as(&up, "x-user-id").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn mcp_routes_offer_oauth_discovery_from_the_issuer_alone() {
    let keys = KeyFiles::generate();
    let up = TestUpstream::start().await;
    let jwks = JwksServer::start(keys.jwks(&[("rsa1.key", "k1")])).await;
    let config = format!(
        r#"
[plugin.auth]
type = "jwt"
issuer = "{ISSUER}"
jwks = {{ url = "{jwks}" }}

[plugin.several]
type = "jwt"
issuer = ["https://first.test", "{ISSUER}"]
jwks = {{ url = "{jwks}" }}

[plugin.explicit]
type = "jwt"
issuer = "{ISSUER}"
jwks = {{ url = "{jwks}" }}
resource_metadata = {{ authorization_servers = ["https://login.test"] }}

[[route]]
name = "mcp"
match = {{ path_prefix = "/mcp" }}
upstream = {{ url = "{u}/mcp", kind = "mcp" }}
plugins = ["auth"]

[[route]]
name = "several"
match = {{ path_prefix = "/several" }}
upstream = {{ url = "{u}/mcp", kind = "mcp" }}
plugins = ["several"]

[[route]]
name = "explicit"
match = {{ path_prefix = "/explicit" }}
upstream = {{ url = "{u}/mcp", kind = "mcp" }}
plugins = ["explicit"]
"#,
        jwks = jwks.url,
        u = up.url()
    );
    let gw = gateway(&config).start().await;
    let client = client();
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let metadata_url = format!(
        "http://{}/.well-known/oauth-protected-resource/mcp",
        gw.addr
    );
    let no_iss = mint_token(&keys, "rsa1.key", Algorithm::RS256, Some("k1"), |r| {
        r.issuer = None
    });
    for (token, reason) in [(None, "jwt.missing"), (Some(&no_iss), "jwt.missing_claim")] {
        let mut request = client.post(gw.url("/mcp")).json(&list);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let resp = request.send().await.unwrap();
        assert_eq!(resp.status(), 401);
        let challenge = resp.headers()["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.contains(&format!("resource_metadata=\"{metadata_url}\"")),
            "{reason}: {challenge}"
        );
        assert_eq!(
            challenge.contains("error=\"invalid_token\""),
            token.is_some(),
            "{challenge}"
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], -32002);
        assert_eq!(body["error"]["data"]["reason"], reason);
    }

    let document = |prefix: &'static str| {
        let client = client.clone();
        let url = gw.url(&format!("/.well-known/oauth-protected-resource{prefix}"));
        async move {
            let resp = client.get(url).send().await.unwrap();
            assert_eq!(resp.status(), 200, "{prefix}");
            resp.json::<Value>().await.unwrap()
        }
    };
    let doc = document("/mcp").await;
    assert_eq!(doc["resource"], format!("http://{}/mcp", gw.addr));
    assert_eq!(doc["authorization_servers"], json!([ISSUER]));
    assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
    assert!(doc.get("scopes_supported").is_none(), "{doc}");
    assert_eq!(
        document("/several").await["authorization_servers"],
        json!(["https://first.test"]),
        "the first issuer"
    );
    assert_eq!(
        document("/explicit").await["authorization_servers"],
        json!(["https://login.test"]),
        "configuration wins"
    );
}
