//! Span names and attributes of an exchange, after the OpenTelemetry HTTP, GenAI and MCP semantic
//! conventions (`gen_ai.*`, `mcp.*`) plus `tollgate.*`. Never a header value, token or body.

use opentelemetry::KeyValue;
use tollgate_plugin_api::{Decision, McpMethod, RequestCtx, RouteKind};

use crate::ip_text::ip_text;

/// The server span's name and attributes for a finished exchange.
pub fn server_span(cx: &RequestCtx, status: u16, decision: &Decision) -> (String, Vec<KeyValue>) {
    // Room for every attribute an LLM or MCP span gets: no re-allocation while adding them.
    let mut attributes = Vec::with_capacity(20);
    attributes.extend([
        KeyValue::new("http.request.method", cx.method().as_str().to_string()),
        KeyValue::new("url.path", cx.uri().path().to_string()),
        KeyValue::new("http.route", cx.route().path_prefix.to_string()),
        KeyValue::new("tollgate.route", cx.route().name.to_string()),
    ]);
    if status != 0 {
        attributes.push(KeyValue::new(
            "http.response.status_code",
            i64::from(status),
        ));
    }
    if let Some(addr) = cx.client_addr() {
        attributes.push(KeyValue::new("client.address", ip_text(addr.ip())));
    }
    if let Some(identity) = &cx.identity {
        attributes.push(KeyValue::new("enduser.id", identity.subject.clone()));
    }
    decision_attributes(decision, &mut attributes);
    let name = match cx.route().kind {
        RouteKind::Mcp => mcp_attributes(cx, &mut attributes),
        RouteKind::Llm => llm_attributes(cx, &mut attributes),
        RouteKind::Http => None,
    };
    let name = name.unwrap_or_else(|| format!("{} {}", cx.method(), cx.route().path_prefix));
    (name, attributes)
}

fn decision_attributes(decision: &Decision, out: &mut Vec<KeyValue>) {
    match decision {
        Decision::Allowed => out.push(KeyValue::new("tollgate.decision", "allowed")),
        Decision::Rejected { plugin, reason, .. } => {
            out.push(KeyValue::new("tollgate.decision", "rejected"));
            out.push(KeyValue::new("tollgate.plugin", plugin.clone()));
            out.push(KeyValue::new("tollgate.reason", reason.clone()));
        }
        Decision::Invalid { reason } => {
            out.push(KeyValue::new("tollgate.decision", "invalid"));
            out.push(KeyValue::new("tollgate.reason", reason.clone()));
        }
    }
}

/// MCP: `{mcp.method.name} {target}` (e.g. `tools/call multiply`).
fn mcp_attributes(cx: &RequestCtx, out: &mut Vec<KeyValue>) -> Option<String> {
    if let Some(session) = cx
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
    {
        out.push(KeyValue::new("mcp.session.id", session.to_string()));
    }
    if let Some(version) = cx
        .headers()
        .get("mcp-protocol-version")
        .and_then(|v| v.to_str().ok())
    {
        out.push(KeyValue::new("mcp.protocol.version", version.to_string()));
    }
    if let Some(server) = cx.mcp_server() {
        out.push(KeyValue::new("tollgate.mcp.server", server.to_string()));
    }
    let mcp = cx.mcp()?;
    if mcp.batch {
        out.push(KeyValue::new(
            "jsonrpc.batch.size",
            mcp.messages.len() as i64,
        ));
    }
    let first = mcp.first()?;
    let method = first.method.as_ref()?;
    out.push(KeyValue::new(
        "mcp.method.name",
        method.as_str().to_string(),
    ));
    if let Some(id) = &first.id {
        out.push(KeyValue::new("jsonrpc.request.id", id.to_string()));
    }
    let target = first.target.as_deref();
    if let Some(target) = target {
        let key = match method {
            McpMethod::ToolsCall => "gen_ai.tool.name",
            McpMethod::PromptsGet => "gen_ai.prompt.name",
            _ => "mcp.resource.uri",
        };
        out.push(KeyValue::new(key, target.to_string()));
        if method.is_tool_call() {
            out.push(KeyValue::new("gen_ai.operation.name", "execute_tool"));
        }
    }
    Some(match target {
        Some(target) => format!("{method} {target}"),
        None => method.as_str().to_string(),
    })
}

/// LLM: `chat {gen_ai.request.model}`.
fn llm_attributes(cx: &RequestCtx, out: &mut Vec<KeyValue>) -> Option<String> {
    out.push(KeyValue::new("gen_ai.operation.name", "chat"));
    if let Some(provider) = &cx.route().provider {
        out.push(KeyValue::new("gen_ai.provider.name", provider.to_string()));
    }
    let llm = cx.llm()?;
    if let Some(model) = cx.response_model() {
        out.push(KeyValue::new("gen_ai.response.model", model.to_string()));
    }
    if let Some(max) = llm.max_tokens {
        out.push(KeyValue::new("gen_ai.request.max_tokens", max as i64));
    }
    if cx.usage().reported {
        out.push(KeyValue::new(
            "gen_ai.usage.input_tokens",
            cx.usage().input_tokens as i64,
        ));
        out.push(KeyValue::new(
            "gen_ai.usage.output_tokens",
            cx.usage().output_tokens as i64,
        ));
    }
    if let Some(first) = cx.first_token_at() {
        let ttft = first.saturating_duration_since(cx.started()).as_secs_f64();
        out.push(KeyValue::new("gen_ai.response.time_to_first_chunk", ttft));
    }
    let model = llm.model.as_deref()?;
    out.push(KeyValue::new("gen_ai.request.model", model.to_string()));
    Some(format!("chat {model}"))
}
