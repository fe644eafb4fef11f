//! `tollgate demo`: the gateway with a built-in configuration in front of the demo upstreams,
//! with two callers' tokens made up at start.

use std::path::Path;
use std::process::ExitCode;

use secrecy::{ExposeSecret, SecretString};

use super::{DemoUpstreams, EchoOptions};
use crate::gateway::{Gateway, ServeOptions};

/// The demo configuration; `${...}` placeholders are filled in by `tollgate demo`.
pub const DEMO_CONFIG: &str = include_str!("../../../conf/demo.toml");

/// Environment variable holding the demo's provider key (made up at start).
const DEMO_KEY_ENV: &str = "TOLLGATE_DEMO_PROVIDER_KEY";

/// Environment variable holding the demo's JWT signing secret (made up at start).
const DEMO_JWT_ENV: &str = "TOLLGATE_DEMO_JWT_SECRET";

/// Runs the demo until the process is stopped.
pub fn run(gateway: &Gateway, listen: &str, admin: &str) -> ExitCode {
    let provider_key = SecretString::from(format!("demo-provider-{:x}", random_u64()));
    let jwt_secret = SecretString::from(format!("demo-jwt-{:x}{:x}", random_u64(), random_u64()));
    // Set before any thread of ours starts; the demo config reads them at load.
    std::env::set_var(DEMO_KEY_ENV, provider_key.expose_secret());
    std::env::set_var(DEMO_JWT_ENV, jwt_secret.expose_secret());
    let echo = EchoOptions {
        event_delay: std::time::Duration::from_millis(50),
        expected_api_key: Some(provider_key),
    };
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let upstreams = match DemoUpstreams::start(loopback, loopback, echo) {
        Ok(upstreams) => upstreams,
        Err(e) => {
            eprintln!("error: cannot start the demo upstreams: {e}");
            return ExitCode::FAILURE;
        }
    };
    let source = DEMO_CONFIG
        .replace("${LISTEN}", listen)
        .replace("${ADMIN}", admin)
        .replace(
            "${MCP_UPSTREAM}",
            &format!("http://{}/mcp", upstreams.mcp_addr()),
        )
        .replace(
            "${TEXT_MCP_UPSTREAM}",
            &format!("http://{}/text/mcp", upstreams.mcp_addr()),
        )
        .replace(
            "${LLM_UPSTREAM}",
            &format!("http://{}", upstreams.llm_addr()),
        );
    let config = match crate::config::load_str(Path::new("<demo>"), &source, gateway.registry()) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::FAILURE;
        }
    };
    let tokens = demo_token("alice@example.com", "math-users", &jwt_secret)
        .and_then(|alice| Ok((alice, demo_token("bob@example.com", "sales", &jwt_secret)?)));
    let (alice, bob) = match tokens {
        Ok(tokens) => tokens,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let server = match gateway.build_server(config, &ServeOptions::default()) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    print_demo_banner(listen, admin, &alice, &bob);
    // `upstreams` stays alive: `run_forever` never returns.
    server.run_forever()
}

/// A 12-hour demo token for `subject` in `group`.
fn demo_token(
    subject: &str,
    group: &str,
    secret: &SecretString,
) -> Result<String, crate::token::TokenError> {
    let request = crate::token::TokenRequest {
        subject: subject.into(),
        issuer: Some("tollgate-demo".into()),
        audience: None,
        ttl_secs: 12 * 3600,
        claims: vec![("groups".into(), group.into())],
        kid: None,
    };
    crate::token::mint(
        &request,
        jsonwebtoken::Algorithm::HS256,
        secret.expose_secret().as_bytes(),
    )
}

/// Unpredictable enough for throwaway demo secrets (no `rand` dependency for this alone).
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(now_nanos());
    hasher.finish()
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn print_demo_banner(listen: &str, admin: &str, alice: &str, bob: &str) {
    let base = format!("http://{listen}");
    println!(
        r#"tollgate demo is running (Ctrl-C to stop)

  MCP route        {base}/mcp            -> demo MCP math server (tools: add, multiply)
  Federated MCP    {base}/tools          -> math and text servers behind one endpoint
                                            (math__add, math__multiply, text__upper, text__count_words)
  Anthropic route  {base}/anthropic      -> demo Anthropic-compatible echo model (streams)
  Admin            http://{admin}/healthz  http://{admin}/readyz

Demo callers (JWTs valid for 12 hours; alice is in math-users, bob is not):

  export ALICE_TOKEN={alice}
  export BOB_TOKEN={bob}

Try it:

  # MCP: initialize a session through the gateway (without a token: 401 + WWW-Authenticate)
  curl -si {base}/mcp -H "authorization: Bearer $ALICE_TOKEN" -H 'content-type: application/json' \
    -H 'accept: application/json, text/event-stream' \
    -d '{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"protocolVersion":"2025-06-18","capabilities":{{}},"clientInfo":{{"name":"curl","version":"1"}}}}}}'

  # Anthropic Messages, streamed event by event; the gateway swaps the token for its provider key
  # and charges the tokens to the caller's budget (see the x-ratelimit-* headers with curl -i)
  curl -sN {base}/anthropic/v1/messages -H "x-api-key: $ALICE_TOKEN" \
    -H 'anthropic-version: 2023-06-01' -H 'content-type: application/json' \
    -d '{{"model":"tollgate-echo-1","max_tokens":64,"stream":true,"messages":[{{"role":"user","content":"hello gateway"}}]}}'

  # Federation: one endpoint, both servers' tools; alice sees all four, bob only text's
  curl -s {base}/tools -H "authorization: Bearer $BOB_TOKEN" -H 'content-type: application/json' \
    -H 'accept: application/json, text/event-stream' -H 'mcp-protocol-version: 2026-07-28' -H 'mcp-method: tools/list' \
    -d '{{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{{"_meta":{{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{{}}}}}}}}'

  # MCP Inspector: Streamable HTTP, URL {base}/mcp or {base}/tools, header Authorization: Bearer <alice's or bob's token>
  npx @modelcontextprotocol/inspector

  # Claude Code against the echo model
  ANTHROPIC_BASE_URL={base}/anthropic ANTHROPIC_API_KEY=$ALICE_TOKEN claude
"#
    );
}
