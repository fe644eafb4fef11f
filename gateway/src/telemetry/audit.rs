//! The audit log: one JSON line per exchange (who, what, which tool or model, tokens, decision),
//! written by its own thread from a bounded queue so that a slow disk never holds a request;
//! records that do not fit are dropped and counted. Tokens, keys and bodies are never written.

use std::io::Write;
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender, TrySendError};
use std::time::Duration;

use serde_json::{json, Map, Value};
use tollgate_plugins::{Decision, RequestCtx, RouteKind};

/// Records waiting for the writer at most.
pub const QUEUE_CAPACITY: usize = 16_384;

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
    Record(Value),
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
                let mut buffered = std::io::BufWriter::new(&mut out);
                loop {
                    match receiver.recv_timeout(Duration::from_millis(200)) {
                        Ok(Message::Record(record)) => {
                            let line = record.to_string();
                            if writeln!(buffered, "{line}").is_err() {
                                tracing::warn!("cannot write the audit log");
                            }
                        }
                        Ok(Message::Flush(done)) => {
                            let _ = buffered.flush();
                            let _ = done.send(());
                        }
                        // Idle: make what was written visible.
                        Err(RecvTimeoutError::Timeout) => {
                            let _ = buffered.flush();
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
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

    /// Queues a record; returns false if it was dropped because the queue is full.
    pub fn submit(&self, record: Value) -> bool {
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

/// The audit record of one exchange.
pub fn record(cx: &RequestCtx, facts: &AuditFacts<'_>) -> Value {
    let mut r = Map::new();
    let now = time::OffsetDateTime::now_utc();
    let stamp = now
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    r.insert("time".into(), json!(stamp));
    r.insert("trace_id".into(), json!(trace_id(cx)));
    r.insert("route".into(), json!(&*cx.route.name));
    r.insert(
        "subject".into(),
        json!(cx.identity.as_ref().map(|i| i.subject.as_str())),
    );
    r.insert(
        "client".into(),
        json!(cx.client_addr.map(|a| a.ip().to_string())),
    );
    r.insert("method".into(), json!(cx.method.as_str()));
    r.insert("path".into(), json!(cx.uri.path()));
    if let Some(mcp) = &cx.mcp {
        let calls: Vec<Value> = mcp
            .messages
            .iter()
            .filter_map(|m| Some(json!({"method": m.method.as_deref()?, "target": m.target})))
            .collect();
        r.insert("mcp".into(), json!(calls));
    }
    if let Some(llm) = &cx.llm {
        r.insert(
            "llm".into(),
            json!({
                "provider": cx.route.provider.as_deref(),
                "model": cx.response_model.as_deref().or(llm.model.as_deref()),
                "stream": llm.stream,
                "input_tokens": cx.usage.reported.then_some(cx.usage.input_tokens),
                "output_tokens": cx.usage.reported.then_some(cx.usage.output_tokens),
            }),
        );
    }
    r.insert("status".into(), json!(facts.status));
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
    r.insert("decision".into(), json!(decision));
    r.insert("plugin".into(), json!(plugin));
    r.insert("reason".into(), json!(reason));
    r.insert("detail".into(), json!(detail));
    r.insert("error".into(), json!(facts.error));
    r.insert("duration_ms".into(), json!(millis(cx.started.elapsed())));
    r.insert("upstream_ms".into(), json!(facts.upstream.map(millis)));
    if let Some(body) = facts.body {
        r.insert("body".into(), body.clone());
    }
    Value::Object(r)
}

fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// The trace id: the request span's when tracing is on, else the client's `traceparent`'s.
fn trace_id(cx: &RequestCtx) -> Option<String> {
    if let Some(id) = cx.trace.trace_id() {
        return Some(id);
    }
    let header = cx.headers.get("traceparent")?.to_str().ok()?;
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
