//! The audit log: one JSON line per exchange (who, what, which tool or model, tokens, decision),
//! written by its own thread from a bounded queue so that a slow disk never holds a request;
//! records that do not fit are dropped and counted. Tokens, keys and bodies are never written.

use std::io::Write;
use std::sync::mpsc::{sync_channel, SyncSender, TryRecvError, TrySendError};
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Map, Value};
use tollgate_plugin_api::{Decision, RequestCtx, RouteKind};

use crate::ip_text::ip_text;

/// Records waiting for the writer at most.
pub const QUEUE_CAPACITY: usize = 16_384;

/// Bytes of records the writer gathers before a `write` call.
const WRITE_BUFFER: usize = 64 * 1024;

/// How long the idle writer sleeps before looking at the queue again.
const WRITE_INTERVAL: Duration = Duration::from_millis(20);

/// Where audit records go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditSink {
    /// No audit log.
    Off,
    /// Standard output.
    Stdout,
    /// A file, appended to.
    File(String),
}

impl AuditSink {
    /// Parses `"stdout"`, `"off"` or a file path.
    pub fn parse(text: &str) -> Self {
        match text {
            "off" | "" => AuditSink::Off,
            "stdout" | "-" => AuditSink::Stdout,
            path => AuditSink::File(path.to_string()),
        }
    }
}

/// The sending side of the audit log.
#[derive(Debug, Clone)]
pub struct AuditLog {
    sender: Option<SyncSender<Message>>,
}

/// What the writer thread receives.
#[derive(Debug)]
enum Message {
    /// One serialized record (without its newline).
    Record(String),
    /// Flush the file, then answer.
    Flush(SyncSender<()>),
}

/// Errors opening the audit log.
pub type AuditError = std::io::Error;

impl AuditLog {
    /// Starts the writer thread for `sink`.
    pub fn start(sink: &AuditSink) -> Result<Self, AuditError> {
        let mut out: Box<dyn Write + Send> = match sink {
            AuditSink::Off => return Ok(Self { sender: None }),
            AuditSink::Stdout => Box::new(std::io::stdout()),
            AuditSink::File(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
        };
        let (sender, receiver) = sync_channel::<Message>(QUEUE_CAPACITY);
        std::thread::Builder::new()
            .name("tollgate-audit".into())
            .spawn(move || {
                // 64 KiB: at thousands of records a second, one write per ~150 records.
                let mut buffered = std::io::BufWriter::with_capacity(WRITE_BUFFER, &mut out);
                // Polls instead of blocking on the queue: a blocked reader would have to be woken
                // by every request (a futex wake and a context switch each); a sleeping one is
                // not, and records are written in batches at most WRITE_INTERVAL late.
                loop {
                    match receiver.try_recv() {
                        Ok(Message::Record(line)) => {
                            let written = buffered
                                .write_all(line.as_bytes())
                                .and_then(|()| buffered.write_all(b"\n"));
                            if written.is_err() {
                                tracing::warn!("cannot write the audit log");
                            }
                        }
                        Ok(Message::Flush(done)) => {
                            let _ = buffered.flush();
                            let _ = done.send(());
                        }
                        Err(TryRecvError::Empty) => {
                            let _ = buffered.flush();
                            std::thread::sleep(WRITE_INTERVAL);
                        }
                        Err(TryRecvError::Disconnected) => break,
                    }
                }
                let _ = buffered.flush();
            })?;
        Ok(Self {
            sender: Some(sender),
        })
    }

    /// Writes out everything queued so far, waiting at most `timeout` (used before exiting).
    pub fn flush(&self, timeout: Duration) {
        let Some(sender) = &self.sender else {
            return;
        };
        let (done, finished) = sync_channel(1);
        if sender.send(Message::Flush(done)).is_ok() {
            let _ = finished.recv_timeout(timeout);
        }
    }

    /// Whether records are written at all.
    pub fn enabled(&self) -> bool {
        self.sender.is_some()
    }

    /// Queues a serialized record; returns false if it was dropped because the queue is full.
    pub fn submit(&self, record: String) -> bool {
        match &self.sender {
            None => true,
            Some(sender) => match sender.try_send(Message::Record(record)) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => false,
            },
        }
    }
}

/// What the gateway knows about an exchange besides the request context.
#[derive(Debug)]
pub struct AuditFacts<'a> {
    /// Status sent to the client (0: none).
    pub status: u16,
    /// The chain's decision.
    pub decision: &'a Decision,
    /// What went wrong, if anything.
    pub error: Option<&'a str>,
    /// Time spent on the upstream, if contacted.
    pub upstream: Option<Duration>,
    /// Prompt or tool arguments as forwarded (`audit_bodies`).
    pub body: Option<&'a Value>,
}

/// The audit record of one exchange, serialized (one JSON line without the newline). Built from
/// borrowed fields straight into the output string: no intermediate JSON tree.
pub fn record(cx: &RequestCtx, facts: &AuditFacts<'_>) -> String {
    let time = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let (decision, plugin, reason, detail) = match facts.decision {
        Decision::Allowed => ("allowed", None, None, None),
        Decision::Rejected {
            plugin,
            reason,
            detail,
        } => (
            "rejected",
            Some(plugin.as_str()),
            Some(reason.as_str()),
            detail.as_deref(),
        ),
        Decision::Invalid { reason } => ("invalid", None, Some(reason.as_str()), None),
    };
    let record = Record {
        time,
        trace_id: trace_id(cx),
        route: &cx.route().name,
        subject: cx.identity.as_ref().map(|i| i.subject.as_str()),
        client: cx.client_addr().map(|a| ip_text(a.ip())),
        method: cx.method().as_str(),
        path: cx.uri().path(),
        mcp: cx.mcp().map(|mcp| {
            mcp.messages
                .iter()
                .filter_map(|m| {
                    Some(McpCall {
                        method: m.method.as_ref()?.as_str(),
                        target: m.target.as_deref(),
                    })
                })
                .collect()
        }),
        mcp_server: cx.mcp_server(),
        llm: cx.llm().map(|llm| LlmFacts {
            provider: cx.route().provider.as_deref(),
            model: cx.response_model().or(llm.model.as_deref()),
            stream: llm.stream,
            input_tokens: cx.usage().reported.then_some(cx.usage().input_tokens),
            output_tokens: cx.usage().reported.then_some(cx.usage().output_tokens),
        }),
        status: facts.status,
        decision,
        plugin,
        reason,
        detail,
        error: facts.error,
        warnings: &cx.warnings,
        notes: &cx.notes,
        duration_ms: millis(cx.started().elapsed()),
        upstream_ms: facts.upstream.map(millis),
        body: facts.body,
    };
    // Sized for a usual record, so that serializing does not grow the buffer two or three times.
    let mut out = Vec::with_capacity(512);
    if serde_json::to_writer(&mut out, &record).is_err() {
        return String::new();
    }
    String::from_utf8(out).unwrap_or_default()
}

/// The fields of an audit line, in output order (docs/observability.md).
#[derive(Serialize)]
struct Record<'a> {
    time: String,
    trace_id: Option<String>,
    route: &'a str,
    subject: Option<&'a str>,
    client: Option<String>,
    method: &'a str,
    path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    mcp: Option<Vec<McpCall<'a>>>,
    /// The server of a federated MCP route that served the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    mcp_server: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    llm: Option<LlmFacts<'a>>,
    status: u16,
    decision: &'static str,
    plugin: Option<&'a str>,
    reason: Option<&'a str>,
    detail: Option<&'a str>,
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    warnings: &'a [&'static str],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    notes: &'a [String],
    duration_ms: f64,
    upstream_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<&'a Value>,
}

#[derive(Serialize)]
struct McpCall<'a> {
    method: &'a str,
    target: Option<&'a str>,
}

#[derive(Serialize)]
struct LlmFacts<'a> {
    provider: Option<&'a str>,
    model: Option<&'a str>,
    stream: bool,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
}

fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// The trace id: the request span's when tracing is on, else the client's `traceparent`'s.
fn trace_id(cx: &RequestCtx) -> Option<String> {
    if let Some(id) = cx.trace().trace_id() {
        return Some(id);
    }
    let header = cx.headers().get("traceparent")?.to_str().ok()?;
    let mut parts = header.split('-');
    let (_version, id) = (parts.next()?, parts.next()?);
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_string())
}

/// What `audit_bodies` records of a forwarded body: an LLM request's system prompt and
/// messages; the `params` of each MCP request (tool arguments, prompt arguments, URIs).
pub fn body_excerpt(kind: RouteKind, json: &Value) -> Option<Value> {
    match kind {
        RouteKind::Llm => {
            let mut excerpt = Map::new();
            for key in ["system", "messages"] {
                if let Some(value) = json.get(key) {
                    excerpt.insert(key.into(), value.clone());
                }
            }
            Some(Value::Object(excerpt))
        }
        RouteKind::Mcp => {
            let params = |m: &Value| json!({"method": m.get("method"), "params": m.get("params")});
            match json {
                Value::Array(batch) => Some(Value::Array(batch.iter().map(params).collect())),
                single => Some(params(single)),
            }
        }
        RouteKind::Http => None,
    }
}
