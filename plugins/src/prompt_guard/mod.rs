//! `prompt-guard`: rejects or masks prompt injection, secrets and personal data in what goes to a
//! model (every string of an Anthropic request the model reads: system prompt, message blocks of
//! every type, tool definitions) or to a tool (MCP `tools/call` arguments), before the upstream
//! sees it, and masks what comes back. See docs/guard.md.

pub mod detectors;
mod request_texts;
pub mod response;
mod results;
pub mod webhook;

use std::sync::Arc;

use async_trait::async_trait;
use http::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use crate::list_filter::{ListFilter, PendingList};
use detectors::Detector;
use request_texts::for_each_guarded_text;
use response::ResponseMasker;
use results::{ResultFilter, ResultJudge};
use tollgate_plugin_api::config::FailureMode;
use tollgate_plugin_api::config::{parse, PluginConfigError};
use tollgate_plugin_api::units::DurationStr;
use tollgate_plugin_api::{McpMethod, ResponseChunk, ResponseHead};
use tollgate_plugin_api::{
    Plugin, PluginError, PluginFactory, RejectKind, Rejection, RequestBody, RequestCtx, RouteKind,
    Verdict,
};
use webhook::{Classification, Webhook};

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
    /// URL of an external classifier.
    webhook: Option<String>,
    /// Longest wait for the classifier (default 1s).
    timeout: Option<DurationStr>,
    /// Classifier down or slow: `closed` (refuse, default) or `open`.
    #[serde(default)]
    failure_mode: FailureMode,
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
    /// Classifier rules, asked after the pattern rules.
    webhooks: Vec<Webhook>,
}

/// Factory for `type = "prompt-guard"`.
pub struct PromptGuardFactory;

impl PluginFactory for PromptGuardFactory {
    fn build(&self, name: &str, table: &toml::Table) -> Result<Arc<dyn Plugin>, PluginConfigError> {
        let cfg: GuardConfig = parse(table)?;
        let mut rules = Vec::with_capacity(cfg.rules.len());
        let mut webhooks = Vec::new();
        for (i, rule) in cfg.rules.into_iter().enumerate() {
            let err = |m: String| PluginConfigError::at("rules", format!("rule #{}: {m}", i + 1));
            if let Some(url) = &rule.webhook {
                if rule.regex.is_some() || rule.builtin.is_some() {
                    return Err(err("a webhook rule has no `regex` or `builtin`".into()));
                }
                if rule.action != Action::Reject {
                    return Err(err("webhook rules can only `reject`".into()));
                }
                let timeout = rule
                    .timeout
                    .map_or(std::time::Duration::from_secs(1), |d| d.0);
                webhooks.push(Webhook::new(url.clone(), timeout, rule.failure_mode).map_err(err)?);
                continue;
            }
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
                _ => {
                    return Err(err(
                        "give exactly one of `regex`, `builtin`, `webhook`".into()
                    ))
                }
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
            webhooks,
        }))
    }
}

impl PromptGuard {
    /// Asks each classifier about the (already masked) texts; a refusal if one flags them or
    /// fails closed.
    async fn ask_webhooks(&self, cx: &mut RequestCtx, json: &mut Value) -> Option<Rejection> {
        if self.webhooks.is_empty() {
            return None;
        }
        let mut texts = Vec::new();
        for_each_guarded_text(json, cx.route().kind, &mut |text: &mut String| {
            texts.push(text.clone())
        });
        if texts.is_empty() {
            return None;
        }
        let kind = if cx.route().kind == RouteKind::Mcp {
            "mcp"
        } else {
            "llm"
        };
        for webhook in &self.webhooks {
            let mut span = cx.trace().io_span("guard webhook");
            let verdict = webhook.classify(&cx.route().name, kind, &texts).await;
            if verdict.is_err() {
                span.fail("webhook.unavailable");
            }
            drop(span);
            match verdict {
                Ok(Classification::Clean) => {}
                Ok(Classification::Flagged(category)) => {
                    let detail = format!("webhook {}", category.as_deref().unwrap_or("flagged"));
                    let what = category
                        .map_or_else(|| "flagged".to_string(), |c| format!("flagged as `{c}`"));
                    let message = format!("the request was {what} by the guard classifier");
                    return Some(
                        Rejection::new(RejectKind::Permission, "guard.rejected", message)
                            .with_detail(detail)
                            .with_status(StatusCode::FORBIDDEN)
                            .in_band(),
                    );
                }
                Err(error) if webhook.failure_mode == FailureMode::Open => {
                    cx.warnings.push("guard.classifier_unavailable");
                    tracing::warn!(plugin = %self.name, url = %webhook.url, %error, "guard classifier failed; letting the request through");
                }
                Err(error) => {
                    tracing::warn!(plugin = %self.name, url = %webhook.url, %error, "guard classifier failed; refusing the request");
                    return Some(
                        Rejection::new(
                            RejectKind::Api,
                            "guard.unavailable",
                            "the request cannot be checked right now",
                        )
                        .with_status(StatusCode::SERVICE_UNAVAILABLE),
                    );
                }
            }
        }
        None
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
        let route = cx.route().kind;
        // Masks are applied while deciding; a rejected request is never forwarded, so a
        // half-masked document does not matter and no copy of it is needed.
        let Some(mut probe) = body.take_json() else {
            return Ok(Verdict::Continue);
        };
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
                .with_detail(format!("rule {rule}"))
                .with_status(StatusCode::FORBIDDEN)
                .in_band();
            return Ok(Verdict::Reject(rejection));
        }
        if let Some(rejection) = self.ask_webhooks(cx, &mut probe).await {
            return Ok(Verdict::Reject(rejection));
        }
        body.put_json(probe, masked);
        // Mask rules also apply to the model's answer.
        if route == RouteKind::Llm && !self.maskers.is_empty() {
            cx.extensions.insert(ResponseMasker::default());
        }
        // And every rule to what the tools answer.
        if route == RouteKind::Mcp && !self.rules.is_empty() {
            if let Some(request) = cx.mcp() {
                let calls: Vec<PendingList<()>> = request
                    .messages
                    .iter()
                    .filter(|m| m.method.as_ref() == Some(&McpMethod::ToolsCall))
                    .filter_map(|m| {
                        Some(PendingList {
                            id: m.id.clone()?,
                            target: (),
                        })
                    })
                    .collect();
                if !calls.is_empty() {
                    let filter = ListFilter::new(calls, request.batch, results::OWNER);
                    cx.extensions.insert(ResultFilter(filter));
                }
            }
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
        let changes = if let Some(masker) = cx.extensions.get_mut::<ResponseMasker>() {
            masker.start(&content_type)
        } else if let Some(ResultFilter(filter)) = cx.extensions.get_mut::<ResultFilter>() {
            filter.start(&content_type)
        } else {
            false
        };
        if changes {
            resp.headers.remove(http::header::CONTENT_LENGTH);
        }
        Ok(())
    }

    fn on_response_chunk(&self, cx: &mut RequestCtx, chunk: &mut ResponseChunk) {
        if let Some(ResultFilter(filter)) = cx.extensions.get_mut::<ResultFilter>() {
            let mut judge = ResultJudge {
                rules: &self.rules,
                warnings: Vec::new(),
                notes: Vec::new(),
            };
            let sent = filter.chunk(chunk.data(), chunk.end_of_stream(), &mut judge);
            chunk.set_data(sent);
            let stopped = filter.stopped();
            let replaced = filter.take_warnings();
            cx.warnings.extend(replaced);
            cx.warnings.extend(judge.warnings);
            cx.notes.extend(judge.notes);
            if stopped {
                cx.end_answer();
            }
            return;
        }
        if let Some(masker) = cx.extensions.get_mut::<ResponseMasker>() {
            let known = chunk.stream_events();
            let was_stopped = masker.stopped().is_some();
            let answer = chunk.json_answer();
            let masked = masker.chunk(
                chunk.data(),
                chunk.end_of_stream(),
                known,
                answer,
                &self.maskers,
            );
            chunk.set_data(masked);
            if let Some(reason) = masker.stopped().filter(|_| !was_stopped) {
                cx.warnings.push(reason);
                cx.end_answer();
            }
        }
    }
}
