//! MCP over Streamable HTTP from the client's side: JSON-RPC messages, a POST with the headers a
//! client sends (in a handshake-era session, or stateless as 2026-07-28 has it), and the
//! messages of an answer whether it came as JSON or as an SSE stream.

use base64::Engine;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{json, Value};

/// The handshake-era protocol version the helpers offer at `initialize`.
pub const HANDSHAKE_VERSION: &str = "2025-11-25";
/// The stateless protocol version.
pub const MODERN_VERSION: &str = "2026-07-28";
/// What the helpers' requests say of their client.
const CLIENT_INFO: (&str, &str) = ("tollgate-testkit", "1.0.0");

/// A JSON-RPC request.
pub fn request(id: impl Into<Value>, method: &str, params: Option<Value>) -> Value {
    let mut message = json!({"jsonrpc": "2.0", "id": id.into(), "method": method});
    if let Some(params) = params {
        message["params"] = params;
    }
    message
}

/// A `tools/call` request for `tool` with `arguments`.
pub fn tool_call(id: impl Into<Value>, tool: &str, arguments: Value) -> Value {
    request(
        id,
        "tools/call",
        Some(json!({"name": tool, "arguments": arguments})),
    )
}

/// A POST of `message` to `url` as a Streamable HTTP client sends it: a JSON body, and an
/// `Accept` for both a JSON and an SSE answer.
pub fn post(client: &reqwest::Client, url: &str, message: &Value) -> reqwest::RequestBuilder {
    client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(message.to_string())
}

/// A handshake-era session a client opened: `initialize`, then `notifications/initialized`.
#[derive(Debug, Clone)]
pub struct Session {
    /// The `Mcp-Session-Id` the server gave.
    pub id: String,
    /// The protocol version it agreed to.
    pub version: String,
}

impl Session {
    /// Opens a session at `url` for a client without capabilities.
    pub async fn open(client: &reqwest::Client, url: &str) -> Result<Self, String> {
        let (name, version) = CLIENT_INFO;
        let params = json!({"protocolVersion": HANDSHAKE_VERSION, "capabilities": {},
                            "clientInfo": {"name": name, "version": version}});
        let initialize = request(1, "initialize", Some(params));
        let response = post(client, url, &initialize)
            .send()
            .await
            .map_err(|e| format!("initialize: {e}"))?;
        let answer = Answer::read(response)
            .await
            .map_err(|e| format!("initialize: {e}"))?;
        let id = answer
            .headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                format!(
                    "initialize: no session id ({}: {})",
                    answer.status, answer.text
                )
            })?;
        let version = answer
            .messages()
            .first()
            .and_then(|m| {
                m.pointer("/result/protocolVersion")?
                    .as_str()
                    .map(str::to_string)
            })
            .ok_or_else(|| format!("initialize: no result ({})", answer.text))?;
        let session = Self {
            id: id.to_string(),
            version,
        };
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let status = session
            .post(client, url, &initialized)
            .send()
            .await
            .map_err(|e| format!("notifications/initialized: {e}"))?
            .status();
        if status != 202 {
            return Err(format!("notifications/initialized: HTTP {status}"));
        }
        Ok(session)
    }

    /// A POST of `message` within the session.
    pub fn post(
        &self,
        client: &reqwest::Client,
        url: &str,
        message: &Value,
    ) -> reqwest::RequestBuilder {
        post(client, url, message)
            .header("mcp-session-id", &self.id)
            .header("mcp-protocol-version", &self.version)
    }
}

/// The `_meta` envelope of a stateless request from a client without capabilities.
fn envelope() -> Value {
    let (name, version) = CLIENT_INFO;
    json!({
        "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": name, "version": version},
    })
}

/// A 2026-07-28 request: `params._meta` carries the protocol version and the client's (empty)
/// capabilities, as every stateless request must.
pub fn modern_request(id: impl Into<Value>, method: &str, params: Option<Value>) -> Value {
    let mut message = request(id, method, Some(params.unwrap_or_else(|| json!({}))));
    message["params"]["_meta"] = envelope();
    message
}

/// The routing headers a 2026-07-28 client sends with `message`: `MCP-Protocol-Version`,
/// `Mcp-Method`, and `Mcp-Name` (`params.name` of `tools/call` and `prompts/get`, `params.uri`
/// of `resources/read`, encoded when not plain ASCII). A test that wants a header to lie
/// replaces it in the map (`insert`), then sends the map.
pub fn modern_headers(message: &Value) -> HeaderMap {
    let value = |text: &str| HeaderValue::from_str(text).expect("a printable ASCII header value");
    let method = message["method"].as_str().unwrap_or_default();
    let mut headers = HeaderMap::new();
    headers.insert("mcp-protocol-version", value(MODERN_VERSION));
    headers.insert("mcp-method", value(method));
    let name = match method {
        "tools/call" | "prompts/get" => message["params"]["name"].as_str(),
        "resources/read" => message["params"]["uri"].as_str(),
        _ => None,
    };
    if let Some(name) = name {
        headers.insert("mcp-name", value(&header_value(name)));
    }
    headers
}

/// [`post`] of a 2026-07-28 `message` with its routing headers ([`modern_headers`]).
pub fn modern_post(
    client: &reqwest::Client,
    url: &str,
    message: &Value,
) -> reqwest::RequestBuilder {
    post(client, url, message).headers(modern_headers(message))
}

/// [`modern_post`] of `message` (a request) after giving it the stateless `_meta` envelope.
pub fn post_modern(
    client: &reqwest::Client,
    url: &str,
    mut message: Value,
) -> reqwest::RequestBuilder {
    if message.get("params").is_none() {
        message["params"] = json!({});
    }
    message["params"]["_meta"] = envelope();
    modern_post(client, url, &message)
}

/// A value for an MCP routing header: as it is when it is plain printable ASCII without edge
/// spaces, else `=?base64?<UTF-8 in base64>?=`.
fn header_value(value: &str) -> String {
    let plain = value.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !value.starts_with(' ')
        && !value.ends_with(' ')
        && !value.starts_with("=?base64?");
    if plain {
        value.to_string()
    } else {
        let encoded = base64::engine::general_purpose::STANDARD.encode(value);
        format!("=?base64?{encoded}?=")
    }
}

/// An answer, read whole.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// The body.
    pub text: String,
}

impl Answer {
    /// Reads `response` to its end.
    pub async fn read(response: reqwest::Response) -> Result<Self, reqwest::Error> {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await?;
        Ok(Self {
            status,
            headers,
            text,
        })
    }

    /// The gateway's `x-tollgate-reason`, if it set one.
    pub fn reason(&self) -> Option<&str> {
        self.headers
            .get("x-tollgate-reason")
            .and_then(|v| v.to_str().ok())
    }

    /// The JSON-RPC messages of the body (see [`messages`]).
    pub fn messages(&self) -> Vec<Value> {
        messages(&self.text)
    }
}

/// The JSON-RPC messages in an answer body: each SSE event's data if it is a stream, else the
/// JSON body (a batch's elements one by one). The test fails on a message that is not JSON.
pub fn messages(text: &str) -> Vec<Value> {
    let is_stream = text.lines().any(|l| l.starts_with("data:"));
    let documents: Vec<String> = if is_stream {
        sse_data(text)
    } else {
        vec![text.to_string()]
    };
    documents
        .iter()
        .flat_map(|document| match serde_json::from_str(document) {
            Ok(Value::Array(batch)) => batch,
            Ok(message) => vec![message],
            Err(e) => panic!("not a JSON-RPC message ({e}): {document}"),
        })
        .collect()
}

/// The data of each event of an SSE text (its `data:` lines joined with `\n`). An event whose
/// data is empty is not dispatched (as the SSE specification has it): MCP servers send one to
/// prime a stream for resumption (`data: ` with an `id:`).
fn sse_data(text: &str) -> Vec<String> {
    let mut events = Vec::new();
    let mut data: Option<String> = None;
    for line in text.lines() {
        if line.is_empty() {
            events.extend(data.take().filter(|d| !d.is_empty()));
        } else if let Some(value) = line.strip_prefix("data:") {
            let value = value.strip_prefix(' ').unwrap_or(value);
            match &mut data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => data = Some(value.to_string()),
            }
        }
    }
    events.extend(data.filter(|d| !d.is_empty()));
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_of_json_batch_and_sse_answers() {
        let one = r#"{"jsonrpc":"2.0","id":1,"result":{}}"#;
        assert_eq!(
            messages(one),
            [json!({"jsonrpc": "2.0", "id": 1, "result": {}})]
        );
        assert_eq!(messages(&format!("[{one},{one}]")).len(), 2);
        let stream = "data: \nid: 0\nretry: 3000\n\nevent: message\r\ndata: {\"id\":1,\r\ndata: \"x\":2}\r\n\r\n: comment\n\ndata: {\"id\":2}\n\n";
        assert_eq!(
            messages(stream),
            [json!({"id": 1, "x": 2}), json!({"id": 2})]
        );
    }

    #[test]
    fn modern_requests_carry_the_envelope_and_the_routing_headers() {
        let call = modern_request(3, "tools/call", Some(json!({"name": "a__echo"})));
        assert_eq!(
            call["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"],
            MODERN_VERSION
        );
        assert_eq!(call["params"]["name"], "a__echo");
        let headers = modern_headers(&call);
        assert_eq!(headers["mcp-method"], "tools/call");
        assert_eq!(headers["mcp-name"], "a__echo");
        assert_eq!(headers["mcp-protocol-version"], MODERN_VERSION);
        let read = modern_request(4, "resources/read", Some(json!({"uri": "res://a/info"})));
        assert_eq!(modern_headers(&read)["mcp-name"], "res://a/info");
        let list = modern_headers(&modern_request(5, "tools/list", None));
        assert!(!list.contains_key("mcp-name"));
    }

    #[test]
    fn routing_header_values_are_encoded_when_not_plain() {
        assert_eq!(header_value("math__add"), "math__add");
        assert_eq!(header_value("café"), "=?base64?Y2Fmw6k=?=");
        assert_eq!(header_value(" x"), "=?base64?IHg=?=");
    }

    #[test]
    fn requests_carry_their_params_only_when_given() {
        assert_eq!(
            request(7, "ping", None),
            json!({"jsonrpc": "2.0", "id": 7, "method": "ping"})
        );
        assert_eq!(
            tool_call("a", "add", json!({"a": 1}))["params"],
            json!({"name": "add", "arguments": {"a": 1}})
        );
    }
}
