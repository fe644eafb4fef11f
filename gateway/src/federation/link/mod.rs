//! The gateway as a client of one MCP server: requests in either era, the answer as JSON or as
//! a stream of messages, the era found by probing, and the gateway's own session on a 2025-era
//! server (for stateless clients). The server is reached over HTTP (`http`) or runs as processes
//! the gateway supervises (`super::stdio`).

mod events;
mod http;

use std::time::Duration;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use serde_json::{json, Value};
use std::sync::Arc;

pub use self::events::EventStream;
pub(crate) use self::events::{Delivery, MAX_ANSWER};
use self::http::HttpTransport;
use super::jsonrpc;
use super::spec::{Endpoint, ServerSpec, Sharing};
use super::stdio::StdioTransport;
use crate::protocol::mcp_headers::{
    META_CLIENT_CAPABILITIES, META_CLIENT_INFO, META_PROTOCOL_VERSION, MODERN_VERSION,
};
use ::http::{HeaderValue, StatusCode};

/// The newest handshake-era protocol version, offered when the gateway opens a session itself.
pub const LATEST_HANDSHAKE_VERSION: &str = "2025-11-25";
/// Handshake-era versions, oldest first.
pub const HANDSHAKE_VERSIONS: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];
/// How a server speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Era {
    /// 2026-07-28: stateless, `_meta` envelope and routing headers.
    Modern,
    /// The handshake era: `initialize` and sessions.
    Legacy,
}

/// What probing a server found.
#[derive(Debug)]
pub struct Probed {
    /// It speaks 2026-07-28.
    pub modern: bool,
    /// It speaks the handshake era.
    pub legacy: bool,
    /// Its capabilities.
    pub capabilities: Value,
    /// Its instructions, if it gave any.
    pub instructions: Option<String>,
}

impl Probed {
    /// The era to speak with the server for a client of the given era: the client's own when
    /// the server speaks it too (nothing is lost in translation), else the server's.
    pub fn era_for(&self, modern_client: bool) -> Era {
        match (modern_client, self.modern, self.legacy) {
            (true, true, _) | (false, true, false) => Era::Modern,
            _ => Era::Legacy,
        }
    }
}

/// Why a request to a server failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LinkError {
    /// It could not be reached or the connection failed.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// It did not answer within its timeout.
    #[error("did not answer within {0:?}")]
    Timeout(Duration),
    /// It no longer knows the session (HTTP 404 to a request with a session id).
    #[error("session expired")]
    SessionGone,
    /// It answered with an HTTP error and no JSON-RPC message.
    #[error("answered HTTP {0}")]
    Status(u16),
    /// Its answer is not what MCP says it should be.
    #[error("invalid answer: {0}")]
    Protocol(String),
    /// A stdio server already runs `max_processes` processes.
    #[error("already runs its {0} processes (max_processes)")]
    AtCapacity(usize),
}

impl LinkError {
    /// The `x-tollgate-reason`-style reason of the failure.
    pub fn reason(&self) -> &'static str {
        match self {
            LinkError::Unavailable(_) | LinkError::Status(_) | LinkError::SessionGone => {
                "upstream.unavailable"
            }
            LinkError::Timeout(_) => "upstream.timeout",
            LinkError::Protocol(_) => "upstream.error",
            LinkError::AtCapacity(_) => "upstream.at_capacity",
        }
    }
}

/// The era-specific headers of one request.
#[derive(Debug, Clone, Copy)]
pub enum Envelope<'a> {
    /// 2026-07-28: routing headers; the `_meta` envelope is in the body.
    Modern {
        /// The JSON-RPC method.
        method: &'a str,
        /// The server's own name of the tool, prompt or resource, for `Mcp-Name`.
        name: Option<&'a str>,
        /// The client's `Mcp-Param-*` headers (tool arguments mirrored in headers).
        params: Option<&'a ::http::HeaderMap>,
    },
    /// Handshake era: the session and its version, once there is one.
    Legacy {
        /// `Mcp-Session-Id`.
        session: Option<&'a str>,
        /// `MCP-Protocol-Version` (after `initialize`).
        version: Option<&'a str>,
    },
}

/// A server's answer to one POST.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: StatusCode,
    /// `Mcp-Session-Id` of the answer.
    pub session: Option<String>,
    /// The body.
    pub body: ReplyBody,
}

/// The body of a [`Reply`].
#[derive(Debug)]
pub enum ReplyBody {
    /// No body (202 to a notification or a response).
    Empty,
    /// One JSON document.
    Json(Bytes),
    /// An SSE stream, read as it comes.
    Stream(EventStream),
}

/// One MCP server as the gateway reaches it.
pub struct ServerLink {
    /// Its configuration.
    pub spec: ServerSpec,
    transport: Transport,
    probed: ArcSwapOption<Probed>,
    probing: tokio::sync::Mutex<()>,
    /// The gateway's own session on a 2025-era server, for 2026-era (stateless) clients.
    shared_session: ArcSwapOption<SessionRef>,
    opening_shared: tokio::sync::Mutex<()>,
    /// The messages of the shared session's GET stream, for every 2026-era client listening;
    /// the stream is open while anyone listens.
    shared_events: Arc<std::sync::Mutex<Option<tokio::sync::broadcast::Sender<Value>>>>,
}

/// How a link reaches its server.
enum Transport {
    Http(HttpTransport),
    Stdio(StdioTransport),
}

impl std::fmt::Debug for ServerLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerLink")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl ServerLink {
    /// A link to the server of `spec`; fails only when its CA bundle is not PEM.
    pub fn new(spec: ServerSpec, connect_timeout: Duration) -> Result<Self, String> {
        let transport = match &spec.endpoint {
            Endpoint::Http(endpoint) => {
                Transport::Http(HttpTransport::new(endpoint, spec.timeout, connect_timeout)?)
            }
            Endpoint::Stdio(stdio) => Transport::Stdio(StdioTransport::new(
                spec.name.clone(),
                stdio.clone(),
                spec.timeout,
            )),
        };
        Ok(Self {
            spec,
            transport,
            probed: ArcSwapOption::empty(),
            probing: tokio::sync::Mutex::new(()),
            shared_session: ArcSwapOption::empty(),
            opening_shared: tokio::sync::Mutex::new(()),
            shared_events: Arc::default(),
        })
    }

    /// Whether the server is one process for all, in one era.
    fn one_era_only(&self) -> bool {
        matches!(&self.transport, Transport::Stdio(stdio) if stdio.sharing() == Sharing::Shared)
    }

    /// Whether the server runs as the gateway's own processes.
    pub fn is_stdio(&self) -> bool {
        matches!(self.transport, Transport::Stdio(_))
    }

    /// Ends every process of a stdio server (its table changed or went away); no-op for HTTP.
    pub fn retire(&self) {
        if let Transport::Stdio(stdio) = &self.transport {
            stdio.retire();
        }
    }

    /// The server's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Sends one message and reads the answer's head (and a JSON body whole).
    pub async fn post(
        &self,
        body: Bytes,
        envelope: Envelope<'_>,
        traceparent: Option<&HeaderValue>,
    ) -> Result<Reply, LinkError> {
        match &self.transport {
            Transport::Http(http) => http.post(body, envelope, traceparent).await,
            Transport::Stdio(stdio) => stdio.post(body, envelope).await,
        }
    }

    /// Sends a request and waits for its response (JSON or the response event of a stream);
    /// other messages on the stream are dropped.
    pub async fn call(
        &self,
        id: &Value,
        method: &str,
        params: &Value,
        envelope: Envelope<'_>,
    ) -> Result<(Value, Option<String>), LinkError> {
        let reply = self
            .post(jsonrpc::request(id, method, params), envelope, None)
            .await?;
        let session = reply.session.clone();
        Ok((reply.into_response(id).await?, session))
    }

    /// What probing found, probing now if no request has yet.
    pub async fn probed(&self) -> Result<Arc<Probed>, LinkError> {
        if let Some(probed) = self.probed.load_full() {
            return Ok(probed);
        }
        let _probing = self.probing.lock().await;
        if let Some(probed) = self.probed.load_full() {
            return Ok(probed);
        }
        let probed = Arc::new(self.probe().await?);
        tracing::info!(server = %self.spec.name, modern = probed.modern, legacy = probed.legacy, "MCP server probed");
        self.probed.store(Some(probed.clone()));
        Ok(probed)
    }

    /// `server/discover` first; anything but a 2026-07-28 answer means the handshake era, whose
    /// capabilities come from opening the gateway's own session.
    async fn probe(&self) -> Result<Probed, LinkError> {
        let params = json!({"_meta": gateway_envelope(&json!({}))});
        let id = jsonrpc::fresh_id();
        let envelope = Envelope::Modern {
            method: "server/discover",
            name: None,
            params: None,
        };
        match self.call(&id, "server/discover", &params, envelope).await {
            Ok((answer, _)) => {
                let result = answer.get("result");
                let versions = result
                    .and_then(|r| r.get("supportedVersions"))
                    .and_then(Value::as_array);
                let speaks = |wanted: &[&str]| {
                    versions.is_some_and(|v| {
                        v.iter()
                            .any(|v| v.as_str().is_some_and(|v| wanted.contains(&v)))
                    })
                };
                if let (true, Some(result)) = (speaks(&[MODERN_VERSION]), result) {
                    // A server that speaks both eras names only the modern one in `discover`:
                    // whether it takes the handshake too is found by opening the gateway's own
                    // session, which then serves stateless clients if ever needed.
                    // One stdio process has one era: a `shared` server's is now the modern one.
                    let legacy = !self.one_era_only()
                        && (speaks(&HANDSHAKE_VERSIONS)
                            || match self.open_own_session().await {
                                Ok(Some((session, _))) => {
                                    self.shared_session.store(Some(Arc::new(session)));
                                    true
                                }
                                Ok(None) | Err(_) => false,
                            });
                    return Ok(Probed {
                        modern: true,
                        legacy,
                        capabilities: result.get("capabilities").cloned().unwrap_or(json!({})),
                        instructions: instructions(result),
                    });
                }
            }
            // A stdio server that ignores, or dies of, a request before `initialize` (as a
            // 2025-only one may) still gets its handshake, on a fresh process.
            Err(LinkError::Unavailable(_) | LinkError::Timeout(_)) if self.is_stdio() => {}
            Err(
                e @ (LinkError::Unavailable(_) | LinkError::Timeout(_) | LinkError::AtCapacity(_)),
            ) => return Err(e),
            Err(_) => {}
        }
        if let Transport::Stdio(stdio) = &self.transport {
            // The process that was asked is of no era the gateway can use now.
            stdio.discard_unopened();
        }
        let Some((session, result)) = self.open_own_session().await? else {
            return Err(LinkError::Protocol(
                "the server speaks neither protocol era".into(),
            ));
        };
        self.shared_session.store(Some(Arc::new(session)));
        Ok(Probed {
            modern: false,
            legacy: true,
            capabilities: result.get("capabilities").cloned().unwrap_or(json!({})),
            instructions: instructions(&result),
        })
    }

    /// Opens the gateway's own handshake-era session, with its `initialize` result: on a stdio
    /// server in `per-session` sharing, the pool of processes stateless calls share; `None` for a
    /// `shared` stdio server that already serves the 2026 era (its one process has one era).
    async fn open_own_session(&self) -> Result<Option<(SessionRef, Value)>, LinkError> {
        if let Transport::Stdio(stdio) = &self.transport {
            match stdio.sharing() {
                Sharing::PerSession => return stdio.pool_session().await.map(Some),
                Sharing::Shared if stdio.serves_modern() => return Ok(None),
                Sharing::Shared => {}
            }
        }
        let opened = self.open_session(&json!({}), None).await?;
        Ok(Some((opened.session_ref(), opened.result)))
    }

    /// Opens a handshake-era session for a client with `capabilities` and `client_info` (the
    /// gateway's own when `None`): `initialize`, then `notifications/initialized`.
    pub async fn open_session(
        &self,
        capabilities: &Value,
        client_info: Option<&Value>,
    ) -> Result<OpenedSession, LinkError> {
        self.open_session_at(LATEST_HANDSHAKE_VERSION, capabilities, client_info)
            .await
    }

    /// [`open_session`](Self::open_session), offering `version`.
    pub async fn open_session_at(
        &self,
        version: &str,
        capabilities: &Value,
        client_info: Option<&Value>,
    ) -> Result<OpenedSession, LinkError> {
        let info = client_info.cloned().unwrap_or_else(gateway_info);
        let params = json!({
            "protocolVersion": version,
            "capabilities": capabilities,
            "clientInfo": info,
        });
        let id = jsonrpc::fresh_id();
        let envelope = Envelope::Legacy {
            session: None,
            version: None,
        };
        let (answer, session) = self.call(&id, "initialize", &params, envelope).await?;
        let Some(result) = answer.get("result").cloned() else {
            let message = answer
                .pointer("/error/message")
                .and_then(Value::as_str)
                .unwrap_or("no result");
            return Err(LinkError::Protocol(format!("initialize failed: {message}")));
        };
        let version = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .unwrap_or(version)
            .to_string();
        let initialized = jsonrpc::notification("notifications/initialized", None);
        let envelope = Envelope::Legacy {
            session: session.as_deref(),
            version: Some(&version),
        };
        self.post(initialized, envelope, None).await?;
        Ok(OpenedSession {
            session,
            version,
            result,
        })
    }

    /// The gateway's own session on this (2025-era) server, opened if there is none.
    pub async fn shared_session(&self) -> Result<Arc<SessionRef>, LinkError> {
        if let Some(session) = self.shared_session.load_full() {
            return Ok(session);
        }
        let _opening = self.opening_shared.lock().await;
        if let Some(session) = self.shared_session.load_full() {
            return Ok(session);
        }
        let Some((session, _)) = self.open_own_session().await? else {
            return Err(LinkError::Protocol(
                "the server serves only the 2026 era".into(),
            ));
        };
        let opened = Arc::new(session);
        self.shared_session.store(Some(opened.clone()));
        Ok(opened)
    }

    /// Drops the gateway's own session when the server says it expired (`stale` is the one
    /// that failed: a session another request already replaced stays).
    pub fn drop_shared_session(&self, stale: &Arc<SessionRef>) {
        let current = self.shared_session.load_full();
        if current.is_some_and(|c| Arc::ptr_eq(&c, stale)) {
            self.shared_session.store(None);
        }
    }

    /// The messages of the gateway's own session's GET stream (2025-era server), opened for the
    /// first listener and closed when the last one has gone.
    pub async fn shared_events(
        &self,
    ) -> Result<tokio::sync::broadcast::Receiver<Value>, LinkError> {
        if let Some(sender) = self.shared_events.lock().ok().and_then(|s| s.clone()) {
            return Ok(sender.subscribe());
        }
        let mut session = self.shared_session().await?;
        let mut events = None;
        for _ in 0..2 {
            let Some(id) = session.id.as_deref() else {
                return Err(LinkError::Status(405));
            };
            match self.listen(id, &session.version).await {
                Err(LinkError::SessionGone) => {
                    self.drop_shared_session(&session);
                    session = self.shared_session().await?;
                }
                other => {
                    events = Some(other?);
                    break;
                }
            }
        }
        let Some(mut events) = events else {
            return Err(LinkError::SessionGone);
        };
        let Ok(mut slot) = self.shared_events.lock() else {
            return Err(LinkError::Protocol("poisoned lock".into()));
        };
        if let Some(sender) = slot.as_ref() {
            // Another listener opened it meanwhile: this stream is not needed.
            return Ok(sender.subscribe());
        }
        let (sender, receiver) = tokio::sync::broadcast::channel(64);
        *slot = Some(sender.clone());
        drop(slot);
        let slot = self.shared_events.clone();
        let server = self.spec.name.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    message = events.next_message() => match message {
                        Ok(Some(message)) => {
                            if sender.send(message).is_err() {
                                break;
                            }
                        }
                        Ok(None) | Err(_) => break,
                    },
                    () = tokio::time::sleep(Duration::from_secs(30)) => {
                        if sender.receiver_count() == 0 {
                            break;
                        }
                    }
                }
            }
            tracing::debug!(%server, "shared session stream closed");
            if let Ok(mut slot) = slot.lock() {
                if slot.as_ref().is_some_and(|s| s.same_channel(&sender)) {
                    *slot = None;
                }
            }
        });
        Ok(receiver)
    }

    /// Ends a session on the server (DELETE, or ending its process); failures are only logged.
    pub async fn end_session(&self, session: &str, version: &str) {
        match &self.transport {
            Transport::Http(http) => http.end_session(&self.spec.name, session, version).await,
            Transport::Stdio(stdio) => stdio.end_session(session),
        }
    }

    /// Opens the server's stream of messages outside requests (GET) on `session`.
    pub async fn listen(&self, session: &str, version: &str) -> Result<EventStream, LinkError> {
        match &self.transport {
            Transport::Http(http) => http.listen(session, version).await,
            Transport::Stdio(stdio) => stdio.listen(session),
        }
    }
}

/// A server session as requests use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRef {
    /// Its `Mcp-Session-Id`; `None` for a server that keeps no sessions.
    pub id: Option<String>,
    /// The protocol version the server agreed to.
    pub version: String,
}

impl SessionRef {
    /// The headers that carry it.
    pub fn envelope(&self) -> Envelope<'_> {
        Envelope::Legacy {
            session: self.id.as_deref(),
            version: Some(&self.version),
        }
    }
}

/// A session the gateway opened on a server.
#[derive(Debug)]
pub struct OpenedSession {
    /// Its `Mcp-Session-Id`, if the server gave one.
    pub session: Option<String>,
    /// The protocol version the server agreed to.
    pub version: String,
    /// The server's `initialize` result.
    pub result: Value,
}

impl OpenedSession {
    /// The session as requests use it.
    pub fn session_ref(&self) -> SessionRef {
        SessionRef {
            id: self.session.clone(),
            version: self.version.clone(),
        }
    }
}

impl Reply {
    /// The JSON-RPC response to request `id` in this reply, as text (for a caller that reads
    /// only part of it).
    pub async fn into_response_text(self, id: &Value) -> Result<String, LinkError> {
        match self.body {
            ReplyBody::Json(bytes) => String::from_utf8(bytes.to_vec())
                .map_err(|_| LinkError::Protocol("the answer is not UTF-8".into())),
            ReplyBody::Stream(mut stream) => {
                #[derive(serde::Deserialize)]
                struct Head {
                    id: Option<Value>,
                    method: Option<serde::de::IgnoredAny>,
                }
                while let Some(data) = stream.next_data().await? {
                    let Ok(head) = serde_json::from_str::<Head>(&data) else {
                        continue;
                    };
                    if head.method.is_none() && head.id.as_ref() == Some(id) {
                        stream.drain_in_background();
                        return Ok(data);
                    }
                }
                Err(LinkError::Protocol(
                    "the stream ended without a response".into(),
                ))
            }
            ReplyBody::Empty => Err(LinkError::Status(self.status.as_u16())),
        }
    }

    /// The JSON-RPC response to request `id` in this reply.
    pub async fn into_response(self, id: &Value) -> Result<Value, LinkError> {
        let text = self.into_response_text(id).await?;
        serde_json::from_str(&text)
            .map_err(|e| LinkError::Protocol(format!("the answer is not JSON: {e}")))
    }
}

/// The gateway as a client: its `clientInfo`.
pub fn gateway_info() -> Value {
    json!({"name": "tollgate", "version": env!("CARGO_PKG_VERSION")})
}

/// The `_meta` envelope of a 2026-07-28 request the gateway makes for itself.
pub fn gateway_envelope(capabilities: &Value) -> Value {
    json!({
        META_PROTOCOL_VERSION: MODERN_VERSION,
        META_CLIENT_CAPABILITIES: capabilities,
        META_CLIENT_INFO: gateway_info(),
    })
}

fn instructions(result: &Value) -> Option<String> {
    result
        .get("instructions")
        .and_then(Value::as_str)
        .map(str::to_string)
}
