//! `mcp-rbac`: which caller may list and call which MCP tools, prompts and resources.
//!
//! A forbidden `tools/call`, `prompts/get` or `resources/read` is answered by the gateway with a
//! JSON-RPC error (HTTP 200, code -32001, reason `rbac.denied`); the upstream sees nothing. List
//! answers are filtered so that listing and calling never disagree. See docs/auth.md.

pub mod judge;
pub mod rules;

use std::sync::Arc;

use async_trait::async_trait;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use serde::Deserialize;

use crate::list_filter::{ListFilter, PendingList};
use judge::CallerJudge;
use rules::{Policy, Rule, RuleConfig, Target};
use tollgate_plugin_api::config::{parse, PluginConfigError};
use tollgate_plugin_api::request::McpMessage;
use tollgate_plugin_api::McpMethod;
use tollgate_plugin_api::{
    Plugin, PluginError, PluginFactory, RejectKind, Rejection, RequestBody, RequestCtx,
    ResponseChunk, ResponseHead, Verdict,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RbacConfig {
    #[serde(default)]
    default: DefaultDecision,
    #[serde(default)]
    rules: Vec<RuleConfig>,
}

#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum DefaultDecision {
    #[default]
    Deny,
    Allow,
}

/// The `mcp-rbac` plugin instance.
#[derive(Debug)]
pub struct McpRbac {
    name: String,
    policy: Policy,
}

/// Factory for `type = "mcp-rbac"`.
pub struct McpRbacFactory;

impl PluginFactory for McpRbacFactory {
    fn build(&self, name: &str, table: &toml::Table) -> Result<Arc<dyn Plugin>, PluginConfigError> {
        let cfg: RbacConfig = parse(table)?;
        let rules = cfg
            .rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| Rule::compile(r, i))
            .collect::<Result<Vec<_>, _>>()?;
        let policy = Policy {
            rules,
            default_allow: cfg.default == DefaultDecision::Allow,
        };
        Ok(Arc::new(McpRbac {
            name: name.to_string(),
            policy,
        }))
    }
}

/// What a request message asks to use, if it is guarded.
fn guarded(message: &McpMessage) -> Option<(Target, &str)> {
    let target = match message.method.as_ref()? {
        McpMethod::ToolsCall => Target::Tool,
        McpMethod::PromptsGet => Target::Prompt,
        McpMethod::ResourcesRead | McpMethod::ResourcesSubscribe => Target::Resource,
        _ => return None,
    };
    Some((target, message.target.as_deref().unwrap_or("")))
}

fn list_target(method: Option<&McpMethod>) -> Option<Target> {
    match method? {
        McpMethod::ToolsList => Some(Target::Tool),
        McpMethod::PromptsList => Some(Target::Prompt),
        McpMethod::ResourcesList => Some(Target::Resource),
        _ => None,
    }
}

fn noun(target: Target) -> &'static str {
    match target {
        Target::Tool => "tool",
        Target::Prompt => "prompt",
        Target::Resource => "resource",
    }
}

#[async_trait]
impl Plugin for McpRbac {
    fn name(&self) -> &str {
        &self.name
    }

    fn inspects_body(&self) -> bool {
        true
    }

    async fn on_request_body(
        &self,
        cx: &mut RequestCtx,
        _body: &mut RequestBody,
    ) -> Result<Verdict, PluginError> {
        let Some(request) = cx.mcp() else {
            return Ok(Verdict::Continue);
        };
        // Batches are checked element by element; one forbidden call refuses the whole batch,
        // so the upstream never runs part of it.
        for message in &request.messages {
            if let Some((target, name)) = guarded(message) {
                if !self.policy.allows(cx.identity.as_ref(), target, name) {
                    let text = format!("{} `{name}` is not allowed for this caller", noun(target));
                    let mut rejection = Rejection::new(RejectKind::Permission, "rbac.denied", text)
                        .in_band()
                        .with_jsonrpc_code(-32001);
                    if request.batch {
                        rejection.message = format!("batch refused: {}", rejection.message);
                    }
                    return Ok(Verdict::Reject(rejection));
                }
            }
        }
        if let Some(refusal) = crate::list_filter::ambiguous_lists(request) {
            return Ok(Verdict::Reject(refusal));
        }
        let pending: Vec<PendingList> = request
            .messages
            .iter()
            .filter_map(|m| {
                Some(PendingList {
                    id: m.id.clone()?,
                    target: list_target(m.method.as_ref())?,
                })
            })
            .collect();
        if !pending.is_empty() {
            cx.extensions
                .insert(ListFilter::new(pending, request.batch, judge::OWNER));
        }
        Ok(Verdict::Continue)
    }

    async fn on_response(
        &self,
        cx: &mut RequestCtx,
        resp: &mut ResponseHead,
    ) -> Result<(), PluginError> {
        let content_type = resp
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if let Some(filter) = cx.extensions.get_mut::<ListFilter>() {
            if filter.start(&content_type) {
                resp.headers.remove(CONTENT_LENGTH);
            }
        }
        Ok(())
    }

    fn on_response_chunk(&self, cx: &mut RequestCtx, chunk: &mut ResponseChunk) {
        let mut judge = CallerJudge {
            policy: &self.policy,
            identity: cx.identity.as_ref(),
        };
        if let Some(filter) = cx.extensions.get_mut::<ListFilter>() {
            let sent = filter.chunk(chunk.data(), chunk.end_of_stream(), &mut judge);
            chunk.set_data(sent);
            let stopped = filter.stopped();
            cx.warnings.extend(filter.take_warnings());
            if stopped {
                cx.end_answer();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};
    use tollgate_plugin_api::http::StatusCode;
    use tollgate_plugin_api::testing::{
        build_plugin, identity, json_body, TestExchange, TestRequest,
    };
    use tollgate_plugin_api::McpRequest;

    use super::*;

    const CONFIG: &str = r#"
        type = "mcp-rbac"
        [[rules]]
        tools = ["add"]
        claim = "groups"
        any_of = ["math-users"]
    "#;

    /// A request for `messages` (method, tool) by a member of `math-users`.
    fn exchange_of(messages: &[(&str, Option<&str>)]) -> TestExchange {
        let plugin = build_plugin(&McpRbacFactory, "rbac", CONFIG).unwrap();
        let messages = messages
            .iter()
            .enumerate()
            .map(|(id, (method, target))| McpMessage {
                id: Some(json!(id)),
                method: Some(McpMethod::parse(method)),
                target: target.map(str::to_string),
            })
            .collect::<Vec<_>>();
        let request = TestRequest::mcp("/mcp")
            .identity(identity("alice", json!({"groups": ["math-users"]})))
            .mcp_request(McpRequest {
                batch: messages.len() > 1,
                messages,
            });
        TestExchange::new(plugin, request)
    }

    #[tokio::test]
    async fn a_forbidden_call_refuses_the_whole_batch_in_band() {
        let mut exchange = exchange_of(&[("tools/call", Some("add")), ("tools/call", Some("rm"))]);
        let mut body = json_body(&json!([]));
        let verdict = exchange.on_request_body(&mut body).await.unwrap();
        let rejection = verdict.rejection().unwrap();
        assert_eq!(rejection.reason, "rbac.denied");
        assert_eq!(rejection.jsonrpc_code, Some(-32001));
        assert!(rejection.in_band);
        assert!(rejection.message.starts_with("batch refused"));

        let mut exchange = exchange_of(&[("tools/call", Some("add"))]);
        let verdict = exchange.on_request_body(&mut body).await.unwrap();
        assert!(verdict.is_continue());
    }

    #[tokio::test]
    async fn a_list_answer_keeps_only_the_tools_the_caller_may_call() {
        let mut exchange = exchange_of(&[("tools/list", None)]);
        let mut body = json_body(&json!({}));
        assert!(exchange
            .on_request_body(&mut body)
            .await
            .unwrap()
            .is_continue());
        let head = exchange
            .on_response(
                StatusCode::OK,
                &[
                    ("content-type", "application/json"),
                    ("content-length", "9"),
                ],
            )
            .await
            .unwrap();
        assert!(
            !head.headers.contains_key(CONTENT_LENGTH),
            "the body changes"
        );
        let answer = json!({"jsonrpc": "2.0", "id": 0,
            "result": {"tools": [{"name": "add"}, {"name": "rm"}]}})
        .to_string();
        let (start, rest) = answer.split_at(20);
        let sent = exchange.on_response_chunks([start.to_string(), rest.to_string()]);
        // The answer is held until its end, then sent filtered.
        let sizes: Vec<usize> = sent.chunks.iter().map(|c| c.data.len()).collect();
        assert_eq!(sizes[..2], [0, 0]);
        let filtered: Value = serde_json::from_str(&sent.text()).unwrap();
        assert_eq!(filtered["result"]["tools"], json!([{"name": "add"}]));
    }
}
