//! Which strings of a request `prompt-guard` inspects: every string the model (or, on MCP
//! routes, the tool) reads, and none that only steer the API, whose change would break the
//! request (ids, signatures, media types, base64 payloads).

use serde_json::{Map, Value};
use tollgate_plugin_api::{McpMethod, RouteKind};

/// Calls `f` on every string the guard inspects in `json`; `f` may replace it.
pub fn for_each_guarded_text(json: &mut Value, route: RouteKind, f: &mut dyn FnMut(&mut String)) {
    match route {
        RouteKind::Llm => anthropic_request(json, f),
        RouteKind::Mcp => {
            let calls: Vec<&mut Value> = match json {
                Value::Array(items) => items.iter_mut().collect(),
                single => vec![single],
            };
            for call in calls {
                let method = call.get("method").and_then(Value::as_str);
                if method == Some(McpMethod::ToolsCall.as_str()) {
                    if let Some(arguments) =
                        call.get_mut("params").and_then(|p| p.get_mut("arguments"))
                    {
                        every_string(arguments, f);
                    }
                }
            }
        }
        RouteKind::Http => {}
    }
}

/// An Anthropic Messages request: the system prompt, every message's content, the tools'
/// descriptions (the model reads them to decide what to call) and `metadata.user_id` (sent to
/// the provider, where personal data has no business).
fn anthropic_request(json: &mut Value, f: &mut dyn FnMut(&mut String)) {
    let Value::Object(request) = json else {
        return;
    };
    if let Some(system) = request.get_mut("system") {
        content(system, f);
    }
    if let Some(Value::Array(messages)) = request.get_mut("messages") {
        for message in messages {
            if let Some(body) = message.get_mut("content") {
                content(body, f);
            }
        }
    }
    if let Some(Value::Array(tools)) = request.get_mut("tools") {
        tools.iter_mut().for_each(|tool| descriptions(tool, f));
    }
    if let Some(Value::String(user)) = request
        .get_mut("metadata")
        .and_then(|m| m.get_mut("user_id"))
    {
        f(user);
    }
}

/// A content: a string, or a list of blocks.
fn content(value: &mut Value, f: &mut dyn FnMut(&mut String)) {
    match value {
        Value::String(text) => f(text),
        Value::Array(blocks) => blocks.iter_mut().for_each(|b| block(b, f)),
        Value::Object(_) => block(value, f),
        _ => {}
    }
}

/// Block types whose text must come back exactly as the API gave it (signed), and which are
/// the model's own output anyway.
const SIGNED_BLOCKS: [&str; 2] = ["thinking", "redacted_thinking"];

/// Keys that steer the API rather than carry text the model reads; changing them breaks the
/// request (or, for `name`, the match between a tool call and its tool).
const STRUCTURAL_KEYS: [&str; 10] = [
    "type",
    "id",
    "tool_use_id",
    "signature",
    "media_type",
    "cache_control",
    "name",
    "file_id",
    "url",
    "encrypted_content",
];

/// One content block, of any type: text, tool calls and results, documents (text sources and
/// content sources, their titles and context), search results, citations, and block types
/// this gateway does not know yet, walked the same way.
fn block(value: &mut Value, f: &mut dyn FnMut(&mut String)) {
    let Value::Object(fields) = value else {
        return;
    };
    if fields
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| SIGNED_BLOCKS.contains(&t))
    {
        return;
    }
    // A base64 source's `data` is an image or a PDF, not text: a pattern could match inside
    // the encoding and a mask would corrupt it.
    let encoded = fields.get("type").and_then(Value::as_str) == Some("base64");
    for (key, field) in fields.iter_mut() {
        match key.as_str() {
            k if STRUCTURAL_KEYS.contains(&k) => {}
            "data" if encoded => {}
            // A tool call's arguments: every string, whatever its key.
            "input" => every_string(field, f),
            _ => match field {
                Value::String(text) => f(text),
                Value::Array(items) => items.iter_mut().for_each(|item| match item {
                    Value::String(text) => f(text),
                    other => block(other, f),
                }),
                Value::Object(_) => block(field, f),
                _ => {}
            },
        }
    }
}

/// A tool definition: its `description` and those of its input schema's properties (not the
/// schema's other strings: a `pattern` or an `enum` value is the tool's contract).
fn descriptions(value: &mut Value, f: &mut dyn FnMut(&mut String)) {
    match value {
        Value::Object(fields) => described(fields, f),
        Value::Array(items) => items.iter_mut().for_each(|v| descriptions(v, f)),
        _ => {}
    }
}

fn described(fields: &mut Map<String, Value>, f: &mut dyn FnMut(&mut String)) {
    for (key, field) in fields.iter_mut() {
        match (key.as_str(), field) {
            ("description", Value::String(text)) => f(text),
            (_, nested @ (Value::Object(_) | Value::Array(_))) => descriptions(nested, f),
            _ => {}
        }
    }
}

/// Every string of `value`, keys excepted.
fn every_string(value: &mut Value, f: &mut dyn FnMut(&mut String)) {
    match value {
        Value::String(text) => f(text),
        Value::Array(items) => items.iter_mut().for_each(|v| every_string(v, f)),
        Value::Object(map) => map.values_mut().for_each(|v| every_string(v, f)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn seen(mut request: Value) -> Vec<String> {
        let mut texts = Vec::new();
        for_each_guarded_text(&mut request, RouteKind::Llm, &mut |t: &mut String| {
            texts.push(t.clone())
        });
        texts
    }

    #[test]
    fn every_string_the_model_reads_is_walked() {
        let request = json!({
            "model": "claude-x",
            "system": [{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}],
            "metadata": {"user_id": "meta-user"},
            "tools": [{"name": "lookup", "description": "tool-desc", "input_schema": {
                "type": "object",
                "properties": {"q": {"type": "string", "description": "prop-desc", "pattern": "^[a-z]+$"}}
            }}],
            "messages": [
                {"role": "user", "content": [
                    {"type": "document", "title": "doc-title", "context": "doc-context",
                     "source": {"type": "text", "media_type": "text/plain", "data": "doc-text"}},
                    {"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": "doc-block"}]}},
                    {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "QUtJQQ=="}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/x.png"}},
                    {"type": "search_result", "title": "sr-title", "source": "sr-source",
                     "content": [{"type": "text", "text": "sr-text"}]},
                ]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "signed-thought", "signature": "sig"},
                    {"type": "text", "text": "answer", "citations": [{"type": "char_location", "cited_text": "cited"}]},
                    {"type": "tool_use", "id": "t1", "name": "lookup", "input": {"name": "input-name", "q": ["input-q"]}},
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": [
                        {"type": "text", "text": "result-text"},
                        {"type": "search_result", "title": "nested-title", "source": "nested-source",
                         "content": [{"type": "text", "text": "nested-text"}]},
                        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "nested-doc"}},
                    ]},
                ]},
            ],
        });
        let texts = seen(request);
        for want in [
            "sys",
            "meta-user",
            "tool-desc",
            "prop-desc",
            "doc-title",
            "doc-context",
            "doc-text",
            "doc-block",
            "sr-title",
            "sr-source",
            "sr-text",
            "answer",
            "cited",
            "input-name",
            "input-q",
            "result-text",
            "nested-title",
            "nested-source",
            "nested-text",
            "nested-doc",
        ] {
            assert!(
                texts.iter().any(|t| t == want),
                "{want} not walked: {texts:?}"
            );
        }
        for never in [
            "claude-x",
            "ephemeral",
            "lookup",
            "^[a-z]+$",
            "text/plain",
            "QUtJQQ==",
            "https://example.com/x.png",
            "signed-thought",
            "sig",
            "t1",
            "char_location",
        ] {
            assert!(
                !texts.iter().any(|t| t == never),
                "{never} walked: {texts:?}"
            );
        }
    }

    #[test]
    fn a_plain_string_content_and_an_mcp_call_are_walked() {
        assert_eq!(
            seen(json!({"system": "s", "messages": [{"role": "user", "content": "hi"}]})),
            ["s", "hi"]
        );
        let mut call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "add", "arguments": {"name": "n", "nested": [{"k": "v"}]}}});
        let mut texts = Vec::new();
        for_each_guarded_text(&mut call, RouteKind::Mcp, &mut |t: &mut String| {
            texts.push(t.clone())
        });
        assert_eq!(texts, ["n", "v"]);
    }
}
