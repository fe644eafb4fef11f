//! `prompt-guard` on MCP `tools/call` results: every text a tool answers (text content, the
//! text of embedded resources, every string of structured content), in JSON answers and SSE
//! streams, through the same rules as prompts: `mask` rewrites the result, `reject` replaces it
//! with a JSON-RPC error. The answers are filtered by the shared list filter, which holds an
//! answer (or one event) until it can be read whole.

use serde_json::{Map, Value};

use super::{Action, Rule};
use crate::list_filter::{Judged, ListFilter, ListJudge, Owner};
use tollgate_plugin_api::protocol_error;
use tollgate_plugin_api::RejectKind;

/// How the filter names `prompt-guard`.
pub const OWNER: Owner = Owner {
    plugin: "prompt-guard",
    too_long: super::response::ANSWER_TOO_LONG,
    unreadable: super::response::ANSWER_UNREADABLE,
};

/// Warning reason of a tool result masked.
pub const RESULT_MASKED: &str = "guard.result_masked";
/// Warning reason of a tool result refused.
pub const RESULT_REJECTED: &str = "guard.result_rejected";

/// The filter of this exchange's `tools/call` answers, in the request's extensions.
#[derive(Debug)]
pub struct ResultFilter(pub ListFilter<()>);

/// The rules, applied to one exchange's tool results.
pub struct ResultJudge<'a> {
    /// The rules (reject and mask).
    pub rules: &'a [Rule],
    /// The reasons to report (masked, rejected).
    pub warnings: Vec<&'static str>,
    /// The rules that masked or refused, for the audit record.
    pub notes: Vec<String>,
}

impl ListJudge<()> for ResultJudge<'_> {
    fn judge(&mut self, _: (), result: &mut Map<String, Value>) -> Judged {
        let mut rejected_by: Option<&str> = None;
        let mut masked_by: Vec<&str> = Vec::new();
        let mut visit = |text: &mut String| {
            for rule in self.rules {
                match rule.action {
                    Action::Reject if rejected_by.is_none() && rule.detector.found_in(text) => {
                        rejected_by = Some(&rule.detector.name);
                    }
                    Action::Mask => {
                        if let Some(replaced) = rule.detector.mask(text) {
                            *text = replaced;
                            if !masked_by.contains(&rule.detector.name.as_str()) {
                                masked_by.push(&rule.detector.name);
                            }
                        }
                    }
                    Action::Reject => {}
                }
            }
        };
        if let Some(Value::Array(content)) = result.get_mut("content") {
            for block in content {
                if let Some(Value::String(text)) = block.get_mut("text") {
                    visit(text);
                }
                if let Some(Value::String(text)) =
                    block.get_mut("resource").and_then(|r| r.get_mut("text"))
                {
                    visit(text);
                }
                // A resource link's words reach the model too.
                for field in ["name", "title", "description"] {
                    if let Some(Value::String(text)) = block.get_mut(field) {
                        visit(text);
                    }
                }
            }
        }
        if let Some(structured) = result.get_mut("structuredContent") {
            visit_strings(structured, &mut visit);
        }
        if let Some(rule) = rejected_by {
            tracing::warn!(rule, "prompt-guard refused a tool result");
            self.warnings.push(RESULT_REJECTED);
            self.notes.push(format!("{RESULT_REJECTED} rule {rule}"));
            return Judged::Refused {
                code: protocol_error::default_jsonrpc_code(RejectKind::Permission),
                message: format!("the tool result was blocked by prompt-guard rule `{rule}`"),
                reason: "guard.rejected",
            };
        }
        let masked = !masked_by.is_empty();
        if masked {
            self.warnings.push(RESULT_MASKED);
            self.notes
                .push(format!("{RESULT_MASKED} rules {}", masked_by.join(", ")));
        }
        masked.into()
    }
}

fn visit_strings(value: &mut Value, f: &mut dyn FnMut(&mut String)) {
    match value {
        Value::String(text) => f(text),
        Value::Array(items) => items.iter_mut().for_each(|v| visit_strings(v, f)),
        Value::Object(map) => map.values_mut().for_each(|v| visit_strings(v, f)),
        _ => {}
    }
}
