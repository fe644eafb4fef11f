//! An operator's own gateway binary: the stock CLI plus one custom plugin type.
//!
//! `forbidden-words` rejects requests whose body matches a regex (before the upstream sees
//! anything) and stamps every response it let through with a header. Configure it as:
//!
//! ```toml
//! [plugin.no-secrets]
//! type = "forbidden-words"
//! pattern = "(?i)project[- ]falcon"
//! message = "that project is confidential"   # optional
//! ```
//!
//! Run: `cargo run -p tollgate --example custom_plugin -- run -c my.toml`; its unit tests, which
//! run the plugin without a gateway: `cargo test -p tollgate --example custom_plugin`.

use std::process::ExitCode;
use std::sync::Arc;

use regex::Regex;
use serde::Deserialize;
use tollgate::plugin_api::config::{self, PluginConfigError};
use tollgate::plugin_api::http::{HeaderName, HeaderValue};
use tollgate::plugin_api::{
    async_trait, Plugin, PluginError, PluginFactory, RejectKind, Rejection, RequestBody,
    RequestCtx, ResponseHead, Verdict,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ForbiddenWordsConfig {
    pattern: String,
    message: Option<String>,
}

/// A `forbidden-words` instance: built once per configuration load, shared by all requests.
struct ForbiddenWords {
    name: String,
    pattern: Regex,
    message: String,
    stamp: HeaderValue,
}

struct ForbiddenWordsFactory;

impl PluginFactory for ForbiddenWordsFactory {
    fn build(&self, name: &str, table: &toml::Table) -> Result<Arc<dyn Plugin>, PluginConfigError> {
        let cfg: ForbiddenWordsConfig = config::parse(table)?;
        // Compiled here, at load time: a bad regex is a located `tollgate check` error.
        let pattern = Regex::new(&cfg.pattern)
            .map_err(|e| PluginConfigError::at("pattern", format!("bad regex: {e}")))?;
        let stamp = HeaderValue::from_str(name)
            .map_err(|_| PluginConfigError::new("the plugin name is not a valid header value"))?;
        Ok(Arc::new(ForbiddenWords {
            name: name.to_string(),
            pattern,
            message: cfg
                .message
                .unwrap_or_else(|| "the request contains a forbidden word".into()),
            stamp,
        }))
    }
}

#[async_trait]
impl Plugin for ForbiddenWords {
    fn name(&self) -> &str {
        &self.name
    }

    fn inspects_body(&self) -> bool {
        true
    }

    async fn on_request_body(
        &self,
        _cx: &mut RequestCtx,
        body: &mut RequestBody,
    ) -> Result<Verdict, PluginError> {
        let text = String::from_utf8_lossy(body.raw());
        if self.pattern.is_match(&text) {
            // On MCP routes this is a per-call denial: HTTP 200 with a JSON-RPC error.
            let rejection = Rejection::new(
                RejectKind::Permission,
                "example.forbidden_word",
                self.message.clone(),
            )
            .in_band();
            return Ok(Verdict::Reject(rejection));
        }
        Ok(Verdict::Continue)
    }

    async fn on_response(
        &self,
        _cx: &mut RequestCtx,
        resp: &mut ResponseHead,
    ) -> Result<(), PluginError> {
        resp.headers.insert(
            HeaderName::from_static("x-tollgate-example"),
            self.stamp.clone(),
        );
        Ok(())
    }
}

fn main() -> ExitCode {
    let mut gateway = tollgate::Gateway::new();
    gateway.register_plugin("forbidden-words", ForbiddenWordsFactory);
    tollgate::cli::main(gateway)
}

#[cfg(test)]
mod tests {
    use tollgate::plugin_api::http::StatusCode;
    use tollgate::plugin_api::serde_json::json;
    use tollgate::plugin_api::testing::{build_plugin, json_body, TestExchange, TestRequest};

    use super::*;

    fn plugin(config: &str) -> Arc<dyn Plugin> {
        build_plugin(&ForbiddenWordsFactory, "no-falcon", config)
            .unwrap_or_else(|e| panic!("config: {e}"))
    }

    #[tokio::test]
    async fn a_body_with_the_word_is_refused_in_band() {
        let plugin = plugin("pattern = \"(?i)project[- ]falcon\"\nmessage = \"confidential\"");
        let mut exchange = TestExchange::new(plugin, TestRequest::mcp("/mcp"));
        let mut body = json_body(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "search", "arguments": {"q": "Project Falcon budget"}}}));
        let verdict = exchange.on_request_body(&mut body).await.unwrap();
        let rejection = verdict.rejection().expect("refused");
        assert_eq!(rejection.reason, "example.forbidden_word");
        assert_eq!(rejection.kind, RejectKind::Permission);
        assert_eq!(rejection.message, "confidential");
        assert!(rejection.in_band, "a per-call denial on MCP routes");
    }

    #[tokio::test]
    async fn other_bodies_pass_and_their_answers_are_stamped() {
        let plugin = plugin("pattern = \"falcon\"");
        let mut exchange = TestExchange::new(plugin, TestRequest::llm("/v1/messages"));
        let mut body = json_body(&json!({"messages": [{"role": "user", "content": "hello"}]}));
        assert!(exchange
            .on_request_body(&mut body)
            .await
            .unwrap()
            .is_continue());
        assert!(!body.is_rewritten());
        let head = exchange
            .on_response(StatusCode::OK, &[("content-type", "application/json")])
            .await
            .unwrap();
        assert_eq!(head.headers["x-tollgate-example"], "no-falcon");
    }

    #[test]
    fn a_bad_regex_is_an_error_at_its_key() {
        let err = build_plugin(&ForbiddenWordsFactory, "x", "pattern = \"(\"").unwrap_err();
        assert_eq!(err.key.as_deref(), Some("pattern"));
        assert!(err.message.starts_with("bad regex"), "{}", err.message);
        let err = build_plugin(&ForbiddenWordsFactory, "x", "patern = \"a\"").unwrap_err();
        assert_eq!(err.key.as_deref(), Some("patern"), "a typo is located");
    }
}
