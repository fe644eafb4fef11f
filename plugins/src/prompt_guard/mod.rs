//! `prompt-guard`: rejects or masks prompt injection, secrets and personal data in what goes to a
//! model (the Anthropic request's system prompt, message text and tool results) or to a tool (MCP
//! `tools/call` arguments), before the upstream sees it. See docs/guard.md.

pub mod detectors;
pub mod response;

use std::sync::Arc;

use async_trait::async_trait;
use http::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use crate::api::{
    Plugin, PluginError, PluginFactory, RejectKind, Rejection, RequestBody, RequestCtx, RouteKind,
    Verdict,
};
use crate::api::{ResponseChunk, ResponseHead};
use crate::config::{parse, PluginConfigError};
use detectors::Detector;
use response::ResponseMasker;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GuardConfig {
    rules: Vec<RuleConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleConfig {
    regex: Option<String>,
    builtin: Option<String>,
    action: Action,
    /// Name in messages and masks; defaults to the builtin's name or `rule<N>`.
    name: Option<String>,
}

/// What a rule does with a match.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Refuse the request.
    Reject,
    /// Replace the match with `<REDACTED:name>`.
    Mask,
}

#[derive(Debug)]
struct Rule {
    detector: Detector,
    action: Action,
}

/// The `prompt-guard` plugin instance.
#[derive(Debug)]
pub struct PromptGuard {
    name: String,
    rules: Vec<Rule>,
    /// The detectors of the `mask` rules, for answers.
    maskers: Vec<Detector>,
}

/// Factory for `type = "prompt-guard"`.
pub struct PromptGuardFactory;

impl PluginFactory for PromptGuardFactory {
    fn build(&self, name: &str, table: &toml::Table) -> Result<Arc<dyn Plugin>, PluginConfigError> {
        let cfg: GuardConfig = parse(table)?;
        let mut rules = Vec::with_capacity(cfg.rules.len());
        for (i, rule) in cfg.rules.into_iter().enumerate() {
            let err = |m: String| PluginConfigError::at("rules", format!("rule #{}: {m}", i + 1));
            let detector = match (&rule.regex, &rule.builtin) {
                (Some(regex), None) => Detector::custom(
                    rule.name.as_deref().unwrap_or(&format!("rule{}", i + 1)),
                    regex,
                )
                .map_err(err)?,
                (None, Some(builtin)) => {
                    let mut detector = Detector::builtin(builtin).map_err(err)?;
                    if let Some(name) = &rule.name {
                        detector.name = name.clone();
                    }
                    detector
                }
                _ => return Err(err("give exactly one of `regex`, `builtin`".into())),
            };
            rules.push(Rule {
                detector,
                action: rule.action,
            });
        }
        let maskers = rules
            .iter()
            .filter(|r| r.action == Action::Mask)
            .map(|r| r.detector.clone())
            .collect();
        Ok(Arc::new(PromptGuard {
            name: name.to_string(),
            rules,
            maskers,
        }))
    }
}

/// Calls `f` on every string the guard inspects; `f` may replace it.
fn for_each_guarded_text(json: &mut Value, route: RouteKind, f: &mut dyn FnMut(&mut String)) {
    match route {
        RouteKind::Llm => {
            if let Some(system) = json.get_mut("system") {
                visit_content(system, f);
            }
            if let Some(Value::Array(messages)) = json.get_mut("messages") {
                for message in messages {
                    if let Some(content) = message.get_mut("content") {
                        visit_content(content, f);
                    }
                }
            }
        }
        RouteKind::Mcp => {
            let calls: Vec<&mut Value> = match json {
                Value::Array(items) => items.iter_mut().collect(),
                single => vec![single],
            };
            for call in calls {
                if call.get("method").and_then(Value::as_str) == Some("tools/call") {
                    if let Some(arguments) =
                        call.get_mut("params").and_then(|p| p.get_mut("arguments"))
                    {
                        visit_all_strings(arguments, f);
                    }
                }
            }
        }
        RouteKind::Http => {}
    }
}

/// A message's content: a string, or blocks whose `text` (text blocks) and `content` (tool
/// results) are inspected.
fn visit_content(content: &mut Value, f: &mut dyn FnMut(&mut String)) {
    match content {
        Value::String(text) => f(text),
        Value::Array(blocks) => {
            for block in blocks {
                if let Some(Value::String(text)) = block.get_mut("text") {
                    f(text);
                }
                if block.get("type").and_then(Value::as_str) == Some("tool_result") {
                    if let Some(inner) = block.get_mut("content") {
                        visit_content(inner, f);
                    }
                }
            }
        }
        _ => {}
    }
}

fn visit_all_strings(value: &mut Value, f: &mut dyn FnMut(&mut String)) {
    match value {
        Value::String(text) => f(text),
        Value::Array(items) => items.iter_mut().for_each(|v| visit_all_strings(v, f)),
        Value::Object(map) => map.values_mut().for_each(|v| visit_all_strings(v, f)),
        _ => {}
    }
}

#[async_trait]
impl Plugin for PromptGuard {
    fn name(&self) -> &str {
        &self.name
    }

    fn inspects_body(&self) -> bool {
        true
    }

    async fn on_request_body(
        &self,
        cx: &mut RequestCtx,
        body: &mut RequestBody,
    ) -> Result<Verdict, PluginError> {
        let route = cx.route.kind;
        // Decide on a copy first: a rejected request must not be half-masked.
        let Some(json) = body.json() else {
            return Ok(Verdict::Continue);
        };
        let mut probe = json.clone();
        let mut rejected_by: Option<&str> = None;
        let mut masked = false;
        for_each_guarded_text(&mut probe, route, &mut |text: &mut String| {
            for rule in &self.rules {
                match rule.action {
                    Action::Reject if rejected_by.is_none() && rule.detector.found_in(text) => {
                        rejected_by = Some(&rule.detector.name)
                    }
                    Action::Mask => {
                        if let Some(replaced) = rule.detector.mask(text) {
                            *text = replaced;
                            masked = true;
                        }
                    }
                    Action::Reject => {}
                }
            }
        });
        if let Some(rule) = rejected_by {
            // The rule's name, never the matched text.
            let message = format!("the request was blocked by prompt-guard rule `{rule}`");
            let rejection = Rejection::new(RejectKind::Permission, "guard.rejected", message)
                .with_status(StatusCode::FORBIDDEN)
                .in_band();
            return Ok(Verdict::Reject(rejection));
        }
        if masked {
            if let Some(target) = body.json_mut() {
                *target = probe;
            }
        }
        // Mask rules also apply to the model's answer.
        if route == RouteKind::Llm && !self.maskers.is_empty() {
            cx.extensions.insert(ResponseMasker::default());
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
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if let Some(masker) = cx.extensions.get_mut::<ResponseMasker>() {
            if masker.start(&content_type) {
                resp.headers.remove(http::header::CONTENT_LENGTH);
            }
        }
        Ok(())
    }

    fn on_response_chunk(&self, cx: &mut RequestCtx, chunk: &mut ResponseChunk) {
        if let Some(masker) = cx.extensions.get_mut::<ResponseMasker>() {
            chunk.data = masker.chunk(&chunk.data, chunk.end_of_stream, &self.maskers);
        }
    }
}
