//! Trace collection: the `rotel` OTLP collector (from the PyPI wheel in the test venv) receiving
//! from the gateway over gRPC or HTTP, and forwarding over OTLP/HTTP to a receiver in the test
//! that decodes the spans; or a receiver that takes every batch and throws it away, for
//! benchmarks that pay for the export but look at no span.

use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;
use tempfile::TempDir;

use crate::eventually;
use crate::net::{free_addr, wait_listening};
use crate::python::python;

/// One received span, flattened.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// Span name.
    pub name: String,
    /// Trace id, hex.
    pub trace_id: String,
    /// Span id, hex.
    pub span_id: String,
    /// Parent span id, hex (empty for a root).
    pub parent_span_id: String,
    /// OTLP span kind (2 server, 3 client).
    pub kind: i32,
    /// Attributes as strings (ints and doubles formatted).
    pub attributes: HashMap<String, String>,
    /// The `service.name` resource attribute.
    pub service: String,
    /// Status code (2 = error).
    pub status_code: i32,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        other => format!("{other:?}"),
    }
}

#[derive(Default)]
struct Received {
    /// Decode and keep what arrives; otherwise drop it unread.
    keep: bool,
    spans: Vec<ReceivedSpan>,
    raw: Vec<u8>,
}

/// An OTLP/HTTP (protobuf) trace receiver on loopback.
pub struct OtlpReceiver {
    /// Where it listens.
    pub addr: SocketAddr,
    received: Arc<Mutex<Received>>,
}

async fn export(
    State(received): State<Arc<Mutex<Received>>>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Vec<u8> {
    if !received.lock().expect("lock").keep {
        return Vec::new();
    }
    let gzipped = headers
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes() == b"gzip");
    let body = if gzipped {
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(body.as_ref())
            .read_to_end(&mut plain)
            .expect("gunzip");
        Bytes::from(plain)
    } else {
        body
    };
    let request = ExportTraceServiceRequest::decode(body.as_ref()).expect("OTLP protobuf");
    let mut received = received.lock().expect("lock");
    received.raw.extend_from_slice(&body);
    for resource in request.resource_spans {
        let service = resource
            .resource
            .as_ref()
            .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
            .map(|a| text(a.value.as_ref()))
            .unwrap_or_default();
        for scope in resource.scope_spans {
            for span in scope.spans {
                received.spans.push(ReceivedSpan {
                    name: span.name.clone(),
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    kind: span.kind,
                    attributes: span
                        .attributes
                        .iter()
                        .map(|a| (a.key.clone(), text(a.value.as_ref())))
                        .collect(),
                    service: service.clone(),
                    status_code: span.status.as_ref().map_or(0, |s| s.code),
                });
            }
        }
    }
    // An empty ExportTraceServiceResponse.
    Vec::new()
}

impl OtlpReceiver {
    /// Starts the receiver (`POST /v1/traces`).
    pub async fn start() -> Self {
        Self::serve(true).await
    }

    /// A receiver that answers every export and keeps nothing: [`OtlpReceiver::spans`] and
    /// [`OtlpReceiver::raw`] stay empty.
    pub async fn sink() -> Self {
        Self::serve(false).await
    }

    async fn serve(keep: bool) -> Self {
        let received = Arc::new(Mutex::new(Received {
            keep,
            ..Received::default()
        }));
        let app = Router::new()
            .route("/v1/traces", post(export))
            .with_state(received.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind OTLP receiver");
        let addr = listener.local_addr().expect("receiver addr");
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        Self { addr, received }
    }

    /// The spans received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.received.lock().expect("lock").spans.clone()
    }

    /// Every byte received (protobuf), to search for strings that must never be exported.
    pub fn raw(&self) -> Vec<u8> {
        self.received.lock().expect("lock").raw.clone()
    }

    /// Waits (15 s at most) until a span satisfies `want`; `what` names it in the failure.
    pub async fn wait_for(&self, what: &str, want: impl Fn(&ReceivedSpan) -> bool) -> ReceivedSpan {
        let awaited = format!("span {what} received");
        eventually(&awaited, Duration::from_secs(15), async || {
            let spans = self.spans();
            match spans.iter().find(|s| want(s)) {
                Some(span) => Ok(span.clone()),
                None => Err(format!("{spans:#?}")),
            }
        })
        .await
    }
}

/// The `rotel` collector: OTLP gRPC and HTTP in, OTLP/HTTP out to a receiver.
pub struct Rotel {
    child: Child,
    /// Holds its pid file.
    _dir: TempDir,
    /// OTLP/gRPC listener.
    pub grpc: SocketAddr,
    /// OTLP/HTTP listener.
    pub http: SocketAddr,
}

fn rotel_bin() -> PathBuf {
    let python = python();
    let venv = python.parent().and_then(|p| p.parent()).expect("venv");
    let found = std::fs::read_dir(venv.join("lib"))
        .ok()
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|d| d.path().join("site-packages/rotel/rotel-agent"))
        .find(|p| p.exists());
    found.unwrap_or_else(|| panic!("rotel not installed in {}: run tests/run", venv.display()))
}

impl Rotel {
    /// Starts the collector forwarding to `receiver`.
    pub async fn start(receiver: &OtlpReceiver) -> Self {
        let (grpc, http) = (free_addr(), free_addr());
        let dir = tempfile::Builder::new()
            .prefix("tollgate-rotel-")
            .tempdir()
            .expect("rotel directory");
        let child = Command::new(rotel_bin())
            .arg("start")
            .args(["--otlp-grpc-endpoint", &grpc.to_string()])
            .args(["--otlp-http-endpoint", &http.to_string()])
            .args(["--exporter", "otlp", "--otlp-exporter-protocol", "http"])
            .args([
                "--otlp-exporter-endpoint",
                &format!("http://{}", receiver.addr),
            ])
            .args(["--batch-timeout", "100ms"])
            .arg("--pid-file")
            .arg(dir.path().join("rotel.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rotel");
        let rotel = Self {
            child,
            _dir: dir,
            grpc,
            http,
        };
        wait_listening("rotel (gRPC)", grpc, Duration::from_secs(10)).await;
        wait_listening("rotel (HTTP)", http, Duration::from_secs(10)).await;
        rotel
    }
}

impl Drop for Rotel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
