//! MCP over Streamable HTTP from the client's side: JSON-RPC messages, a POST with the headers a
//! client sends, and the messages of an answer whether it came as JSON or as an SSE stream.

use reqwest::header::HeaderMap;
use serde_json::{json, Value};

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

/// The data of each event of an SSE text (its `data:` lines joined with `\n`).
fn sse_data(text: &str) -> Vec<String> {
    let mut events = Vec::new();
    let mut data: Option<String> = None;
    for line in text.lines() {
        if line.is_empty() {
            events.extend(data.take());
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
    events.extend(data);
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
        let stream = "event: message\r\ndata: {\"id\":1,\r\ndata: \"x\":2}\r\n\r\n: comment\n\ndata: {\"id\":2}\n\n";
        assert_eq!(
            messages(stream),
            [json!({"id": 1, "x": 2}), json!({"id": 2})]
        );
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
