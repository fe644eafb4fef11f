//! Stdio MCP servers: programs the gateway runs and speaks MCP with over their stdin and stdout,
//! behind the same link as HTTP servers. docs/stdio-servers.md describes what operators see.
//!
//! Which process a message goes to:
//! - `per-session` sharing: a 2025-era client session's `initialize` starts a process of its own,
//!   whose token is the session id the federation seals; stateless (2026-era) calls go to a pool,
//!   and so does the gateway's own 2025-era session (a pool of processes the gateway has done the
//!   handshake with) when the server speaks only that era.
//! - `shared`: one process for all; the gateway does its handshake once and answers every
//!   client's `initialize` from it.
//!
//! Processes are capped (`max_processes`), ended when idle, restarted with backoff when they
//! keep dying, and ended with their server's configuration.

pub mod groups;
mod hardening;
mod log_budget;
pub mod metrics;
mod process;
mod wire;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use self::process::{ExitCause, Process, Role};
use super::jsonrpc;
use super::link::{
    gateway_envelope, gateway_info, Envelope, EventStream, LinkError, Reply, ReplyBody, SessionRef,
    LATEST_HANDSHAKE_VERSION,
};
use super::spec::{Sharing, StdioSpec};
use crate::protocol::mcp_headers;
use crate::protocol::mcp_param_headers::{self, ParamHeader};

/// The session id of the gateway's own session on a `per-session` server: its pool.
const POOL_SESSION: &str = "pool";
/// The first wait before starting again a server whose processes keep dying; it doubles.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest such wait.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Longest wait for `ping` when a process let a call time out.
const PING_LIMIT: Duration = Duration::from_secs(5);
/// Pages of `tools/list` the gateway reads for the tools' schemas.
const MAX_TOOL_PAGES: usize = 100;
/// Messages outside calls held for a slow listener before it misses some.
const EVENTS_BACKLOG: usize = 64;

/// The stdio side of a link: the processes of one server.
pub(crate) struct StdioTransport {
    inner: Arc<Inner>,
}

struct Inner {
    server: Arc<str>,
    spec: Arc<StdioSpec>,
    timeout: Duration,
    state: Mutex<State>,
    /// The gateway's own handshake result (`LegacyPool` and `Shared` processes): the version
    /// agreed and the `initialize` result.
    handshake: Mutex<Option<Arc<(String, Value)>>>,
    next_number: AtomicU64,
    /// Messages outside calls of the `LegacyPool` processes (the gateway's own session).
    pool_events: broadcast::Sender<Value>,
    reaping: AtomicBool,
    retired: AtomicBool,
    /// The `Mcp-Param-*` headers of each tool (the server's own name), from its listings;
    /// `None`: its schema's annotations are invalid, nothing to check.
    param_headers: Mutex<HashMap<String, Option<Arc<Vec<ParamHeader>>>>>,
    /// Held while the `shared` process is looked up or started, so that there is one.
    starting_shared: Mutex<()>,
}

#[derive(Default)]
struct State {
    processes: Vec<Arc<Process>>,
    /// Processes being started (counted against the cap).
    starting: usize,
    /// Consecutive processes that died young.
    failures: u32,
    /// No process is started before this (backoff).
    not_before: Option<Instant>,
}

impl StdioTransport {
    /// The processes of server `server`, none started yet.
    pub(crate) fn new(server: Arc<str>, spec: Arc<StdioSpec>, timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                server,
                spec,
                timeout,
                state: Mutex::default(),
                handshake: Mutex::default(),
                next_number: AtomicU64::new(1),
                pool_events: broadcast::channel(EVENTS_BACKLOG).0,
                reaping: AtomicBool::new(false),
                retired: AtomicBool::new(false),
                param_headers: Mutex::default(),
                starting_shared: Mutex::default(),
            }),
        }
    }

    /// Which callers share a process.
    pub(crate) fn sharing(&self) -> Sharing {
        self.inner.spec.sharing
    }

    /// Whether the `shared` process serves the 2026 era (one process has one era).
    pub(crate) fn serves_modern(&self) -> bool {
        self.inner
            .live(|p| p.role == Role::Shared)
            .is_some_and(|p| p.modern.load(Ordering::Relaxed))
    }

    /// Sends one message: a request's answer is its JSON response, or a stream when the
    /// process sends more for it first.
    pub(crate) async fn post(
        &self,
        body: Bytes,
        envelope: Envelope<'_>,
    ) -> Result<Reply, LinkError> {
        let inner = &self.inner;
        let message: Value = serde_json::from_slice(&body)
            .map_err(|e| LinkError::Protocol(format!("not JSON: {e}")))?;
        if jsonrpc::is_response(&message) {
            return inner.answer_process(message, envelope).await;
        }
        let method = message
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let process = match envelope {
            Envelope::Modern { name, params, .. } => {
                if let (Some(headers), "tools/call") = (params, method.as_str()) {
                    // The gateway takes the client's HTTP request: it checks what the server
                    // would, had it been asked over HTTP.
                    if let Err(mismatch) = inner.check_param_headers(&message, name, headers).await
                    {
                        return Ok(refusal(&message, mcp_headers::HEADER_MISMATCH, &mismatch));
                    }
                }
                let process = match inner.spec.sharing {
                    Sharing::PerSession => inner.pick(Role::ModernPool)?,
                    Sharing::Shared => inner.shared()?,
                };
                process.modern.store(true, Ordering::Relaxed);
                let reply = inner.send(&process, message, true).await?;
                if method == "tools/list" {
                    return Ok(inner.learn_param_headers(reply));
                }
                return Ok(reply);
            }
            Envelope::Legacy { session: None, .. } if method == "initialize" => {
                return inner.initialize(message).await;
            }
            Envelope::Legacy { session: None, .. } => return Err(LinkError::Status(400)),
            Envelope::Legacy {
                session: Some(POOL_SESSION),
                ..
            } => {
                let process = inner.pick(Role::LegacyPool)?;
                inner.handshake(&process).await?;
                process
            }
            Envelope::Legacy {
                session: Some(token),
                ..
            } => inner
                .live(|p| &*p.token == token && matches!(p.role, Role::Session | Role::Shared))
                .ok_or(LinkError::SessionGone)?,
        };
        if method == "notifications/initialized" && process.handshake.initialized() {
            // The gateway did this process's handshake itself.
            return Ok(accepted());
        }
        inner.send(&process, message, false).await
    }

    /// The gateway's own 2025-era session on a `per-session` server: its pool, with the
    /// `initialize` result of the handshake.
    pub(crate) async fn pool_session(&self) -> Result<(SessionRef, Value), LinkError> {
        let process = self.inner.pick(Role::LegacyPool)?;
        let (version, result) = self.inner.handshake(&process).await?.as_ref().clone();
        Ok((
            SessionRef {
                id: Some(POOL_SESSION.to_string()),
                version,
            },
            result,
        ))
    }

    /// Ends the processes no handshake opened yet (a failed `server/discover` may have left
    /// them in no era the gateway can use).
    pub(crate) fn discard_unopened(&self) {
        self.inner.end_where(
            |p| matches!(p.role, Role::ModernPool | Role::Shared) && !p.handshake.initialized(),
            ExitCause::Retired,
        );
    }

    /// Ends the process of a 2025-era client session (DELETE); pool and shared processes stay.
    pub(crate) fn end_session(&self, session: &str) {
        self.inner.end_where(
            |p| p.role == Role::Session && &*p.token == session,
            ExitCause::SessionEnded,
        );
    }

    /// The messages a session's process sends outside calls (a 2025-era GET stream).
    pub(crate) fn listen(&self, session: &str) -> Result<EventStream, LinkError> {
        let events = if session == POOL_SESSION {
            self.inner.pool_events.subscribe()
        } else {
            self.inner
                .live(|p| &*p.token == session && matches!(p.role, Role::Session | Role::Shared))
                .ok_or(LinkError::SessionGone)?
                .subscribe()
        };
        Ok(EventStream::messages(None, forward(events), None))
    }

    /// Ends every process, now and from now on (the server's table changed or went away).
    pub(crate) fn retire(&self) {
        self.inner.retired.store(true, Ordering::Release);
        self.inner.end_where(|_| true, ExitCause::Retired);
    }
}

impl Drop for StdioTransport {
    fn drop(&mut self) {
        self.retire();
    }
}

impl Inner {
    /// The first live process that `wanted` picks.
    fn live(&self, wanted: impl Fn(&Process) -> bool) -> Option<Arc<Process>> {
        let state = self.state.lock().ok()?;
        state
            .processes
            .iter()
            .find(|p| !p.is_ending() && wanted(p))
            .cloned()
    }

    /// Gives up the calls whose callers have gone, on every process.
    fn prune_abandoned(&self) {
        let processes = match self.state.lock() {
            Ok(state) => state.processes.clone(),
            Err(_) => return,
        };
        for process in &processes {
            process.prune_abandoned();
        }
    }

    fn end_where(&self, wanted: impl Fn(&Process) -> bool, cause: ExitCause) {
        let Ok(state) = self.state.lock() else {
            return;
        };
        for process in state.processes.iter().filter(|p| wanted(p)) {
            process.end(cause);
        }
    }

    /// The `shared` process, started if there is none.
    fn shared(self: &Arc<Self>) -> Result<Arc<Process>, LinkError> {
        let _one_at_a_time = self.starting_shared.lock().map_err(|_| poisoned())?;
        match self.live(|p| p.role == Role::Shared) {
            Some(process) => Ok(process),
            None => self.start(Role::Shared, None),
        }
    }

    /// A pool process for one more call: an idle one, else a new one while under the cap,
    /// else the least busy.
    fn pick(self: &Arc<Self>, role: Role) -> Result<Arc<Process>, LinkError> {
        let least_busy = {
            let state = self.state.lock().map_err(|_| poisoned())?;
            state
                .processes
                .iter()
                .filter(|p| p.role == role && !p.is_ending())
                .map(|p| (p.in_flight(), p))
                .min_by_key(|(load, _)| *load)
                .map(|(load, p)| (load, p.clone()))
        };
        let process = match least_busy {
            Some((0, process)) => process,
            Some((_, busy)) => self.start(role, None).unwrap_or(busy),
            None => self.start(role, None)?,
        };
        // Not idle from now: the reaper leaves it to the call.
        process.touch();
        Ok(process)
    }

    /// Starts a process for `role`, unless the server is at its cap or backing off.
    fn start(
        self: &Arc<Self>,
        role: Role,
        token: Option<Arc<str>>,
    ) -> Result<Arc<Process>, LinkError> {
        {
            let mut state = self.state.lock().map_err(|_| poisoned())?;
            // Under the lock: `retire` ends what is in the state under it too.
            if self.retired.load(Ordering::Acquire) {
                return Err(LinkError::Unavailable(
                    "the server's configuration changed".into(),
                ));
            }
            if let Some(not_before) = state.not_before.filter(|t| *t > Instant::now()) {
                return Err(LinkError::Unavailable(format!(
                    "its process keeps exiting; next start in {} ms",
                    not_before.duration_since(Instant::now()).as_millis()
                )));
            }
            // A process being ended no longer counts; an idle pool process makes room for a
            // session's.
            let live = state.processes.iter().filter(|p| !p.is_ending()).count() + state.starting;
            if live >= self.spec.max_processes {
                let spare = state.processes.iter().find(|p| {
                    matches!(p.role, Role::ModernPool | Role::LegacyPool)
                        && p.role != role
                        && !p.is_ending()
                        && p.idle_for(Duration::ZERO)
                });
                match spare {
                    Some(spare) => spare.end(ExitCause::Idle),
                    None => return Err(LinkError::AtCapacity(self.spec.max_processes)),
                }
            }
            state.starting += 1;
        }
        let number = self.next_number.fetch_add(1, Ordering::Relaxed);
        let token = token.unwrap_or_else(|| Arc::from(session_token(number)));
        let events = match role {
            Role::LegacyPool => self.pool_events.clone(),
            _ => broadcast::channel(EVENTS_BACKLOG).0,
        };
        let weak = Arc::downgrade(self);
        let on_exit: process::OnExit = Box::new(move |process, cause| {
            if let Some(inner) = weak.upgrade() {
                inner.ended(process, cause);
            }
        });
        let spawned = Process::spawn(
            self.server.clone(),
            &self.spec,
            number,
            role,
            token,
            events,
            on_exit,
        );
        let mut state = self.state.lock().map_err(|_| poisoned())?;
        state.starting -= 1;
        match spawned {
            Ok(process) => {
                metrics::started(&self.server);
                state.processes.push(process.clone());
                drop(state);
                self.reap_idle();
                Ok(process)
            }
            Err(e) => {
                tracing::warn!(server = %self.server, error = %e, "stdio MCP server process did not start");
                metrics::ended(&self.server, ExitCause::SpawnFailed, false);
                back_off(&mut state);
                Err(e)
            }
        }
    }

    /// A process has ended and been reaped: it leaves the server's processes.
    fn ended(&self, process: &Process, cause: ExitCause) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        state.processes.retain(|p| p.number != process.number);
        // A process that never answered failed to start: the next start waits once that
        // keeps happening. Restarts are driven by calls, so a process that served and then
        // died is simply replaced by the next call.
        if process.never_answered() {
            if cause.on_its_own() {
                back_off(&mut state);
            }
        } else {
            state.failures = 0;
            state.not_before = None;
        }
    }

    /// A 2025-era client session's `initialize`: a process of its own (`per-session`), or the
    /// shared process's handshake answered again.
    async fn initialize(self: &Arc<Self>, message: Value) -> Result<Reply, LinkError> {
        if self.spec.sharing == Sharing::Shared {
            let process = self.shared()?;
            let handshake = self.handshake(&process).await?;
            let id = message.get("id").cloned().unwrap_or(Value::Null);
            let answer = jsonrpc::result(&id, handshake.1.clone());
            return Ok(Reply {
                status: StatusCode::OK,
                session: Some(process.token.to_string()),
                body: ReplyBody::Json(Bytes::from(answer.to_string())),
            });
        }
        let process = self.start(Role::Session, None)?;
        let mut reply = self.send(&process, message, false).await;
        match &mut reply {
            Ok(reply) => reply.session = Some(process.token.to_string()),
            Err(_) => process.end(ExitCause::SessionEnded),
        }
        reply
    }

    /// The gateway's own handshake with `process`, done once: `initialize` with no client
    /// capabilities, then `notifications/initialized`.
    async fn handshake(&self, process: &Arc<Process>) -> Result<Arc<(String, Value)>, LinkError> {
        process
            .handshake
            .get_or_try_init(|| async {
                let params = json!({
                    "protocolVersion": LATEST_HANDSHAKE_VERSION,
                    "capabilities": {},
                    "clientInfo": gateway_info(),
                });
                let request =
                    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params});
                let reply = self.send(process, request, false).await?;
                let answer = reply.into_response(&json!(0)).await?;
                let Some(result) = answer.get("result").cloned() else {
                    process.end(ExitCause::Retired);
                    return Err(LinkError::Protocol("initialize failed".into()));
                };
                let version = result
                    .get("protocolVersion")
                    .and_then(Value::as_str)
                    .unwrap_or(LATEST_HANDSHAKE_VERSION)
                    .to_string();
                process
                    .notify(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
                    .await?;
                if let Ok(mut slot) = self.handshake.lock() {
                    *slot = Some(Arc::new((version, result)));
                }
                Ok(())
            })
            .await?;
        self.handshake
            .lock()
            .ok()
            .and_then(|h| h.clone())
            .ok_or_else(|| LinkError::Protocol("no handshake".into()))
    }

    /// Sends `message` to `process` and reads the head of its answer; a `modern` request's
    /// error answer gets the HTTP status a 2026-07-28 server gives it.
    async fn send(
        &self,
        process: &Arc<Process>,
        message: Value,
        modern: bool,
    ) -> Result<Reply, LinkError> {
        if !jsonrpc::is_request(&message) {
            process.notify(message).await?;
            return Ok(accepted());
        }
        let session =
            matches!(process.role, Role::Session | Role::Shared).then(|| process.token.to_string());
        let (id, mut receiver) = process.request(message).await?;
        // A caller that goes away before the answer comes gives the call up.
        let mut waiting = Waiting {
            process: Some(process.clone()),
            id,
        };
        let first = tokio::time::timeout(self.timeout, receiver.recv()).await;
        waiting.process = None;
        let first = match first {
            Ok(Some(first)) => first?,
            Ok(None) => return Err(LinkError::Unavailable("the server's process ended".into())),
            Err(_) => {
                process.abandon(id).await;
                process.check_alive(PING_LIMIT.min(self.timeout));
                return Err(LinkError::Timeout(self.timeout));
            }
        };
        let mut status = StatusCode::OK;
        let body = if jsonrpc::is_response(&first) {
            if modern {
                status = error_status(&first);
            }
            ReplyBody::Json(Bytes::from(first.to_string()))
        } else {
            ReplyBody::Stream(EventStream::messages(
                Some(first),
                receiver,
                Some(self.timeout),
            ))
        };
        Ok(Reply {
            status,
            session,
            body,
        })
    }

    /// A caller's answer to a request of one of the processes: to the process that asked, if
    /// the caller's session is that process's and the request is still waiting for an answer
    /// (a caller cannot answer for another); anything else is dropped.
    async fn answer_process(
        &self,
        mut message: Value,
        envelope: Envelope<'_>,
    ) -> Result<Reply, LinkError> {
        let scoped = message
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string);
        let Some((number, id)) = message.get("id").and_then(wire::unscope_server_id) else {
            return Err(LinkError::Status(400));
        };
        let session = match envelope {
            Envelope::Legacy { session, .. } => session,
            Envelope::Modern { .. } => None,
        };
        let process = self.live(|p| {
            p.number == number
                && match (p.role, session) {
                    (Role::LegacyPool, Some(session)) => session == POOL_SESSION,
                    (Role::Session | Role::Shared, Some(session)) => *p.token == *session,
                    _ => false,
                }
        });
        let waiting = process
            .as_ref()
            .zip(scoped.as_deref())
            .is_some_and(|(p, scoped)| p.take_outstanding(scoped));
        match process {
            Some(process) if waiting => {
                message["id"] = id;
                process.answer(&message).await?;
            }
            _ => {
                tracing::debug!(server = %self.server, "an answer to no request waiting for one: dropped")
            }
        }
        Ok(accepted())
    }

    /// Starts, once, the task that ends processes unused for `idle_timeout`.
    fn reap_idle(self: &Arc<Self>) {
        if self.reaping.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak: Weak<Self> = Arc::downgrade(self);
        let limit = self.spec.idle_timeout;
        let tick = (limit / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(tick).await;
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                inner.prune_abandoned();
                inner.end_where(|p| p.idle_for(limit), ExitCause::Idle);
            }
        });
    }
}

impl Inner {
    /// Checks a 2026-era `tools/call`'s `Mcp-Param-*` headers against its arguments and the
    /// tool's schema (listed now if the gateway has not seen it yet).
    async fn check_param_headers(
        self: &Arc<Self>,
        message: &Value,
        name: Option<&str>,
        headers: &http::HeaderMap,
    ) -> Result<(), String> {
        let params = message.get("params");
        let Some(tool) = name.or_else(|| params?.get("name")?.as_str()) else {
            return Ok(());
        };
        if self.param_headers_of(tool).is_none() {
            self.list_tools().await;
            if let Ok(mut known) = self.param_headers.lock() {
                // Not listed: nothing to check, and no listing again for it.
                known.entry(tool.to_string()).or_insert(None);
            }
        }
        let Some(Some(annotated)) = self.param_headers_of(tool) else {
            return Ok(());
        };
        let none = Value::Null;
        let arguments = params.and_then(|p| p.get("arguments")).unwrap_or(&none);
        mcp_param_headers::check(&annotated, arguments, headers)
    }

    fn param_headers_of(&self, tool: &str) -> Option<Option<Arc<Vec<ParamHeader>>>> {
        self.param_headers.lock().ok()?.get(tool).cloned()
    }

    /// Lists the server's tools (every page) for their schemas.
    async fn list_tools(self: &Arc<Self>) {
        let mut cursor: Option<Value> = None;
        for _ in 0..MAX_TOOL_PAGES {
            let mut params = json!({"_meta": gateway_envelope(&json!({}))});
            if let Some(cursor) = cursor.take() {
                params["cursor"] = cursor;
            }
            let request =
                json!({"jsonrpc": "2.0", "id": 0, "method": "tools/list", "params": params});
            let process = match self.spec.sharing {
                Sharing::PerSession => self.pick(Role::ModernPool),
                Sharing::Shared => self.shared(),
            };
            let Ok(process) = process else { return };
            let Ok(reply) = self.send(&process, request, true).await else {
                return;
            };
            let Ok(answer) = reply.into_response(&json!(0)).await else {
                return;
            };
            self.record_tools(&answer);
            match answer.pointer("/result/nextCursor") {
                Some(next) if !next.is_null() => cursor = Some(next.clone()),
                _ => return,
            }
        }
    }

    /// Records the `Mcp-Param-*` headers of the tools a `tools/list` answer lists, and gives the
    /// answer back.
    fn learn_param_headers(&self, reply: Reply) -> Reply {
        if let ReplyBody::Json(body) = &reply.body {
            if let Ok(answer) = serde_json::from_slice::<Value>(body) {
                self.record_tools(&answer);
            }
        }
        reply
    }

    fn record_tools(&self, answer: &Value) {
        let Some(tools) = answer.pointer("/result/tools").and_then(Value::as_array) else {
            return;
        };
        let Ok(mut known) = self.param_headers.lock() else {
            return;
        };
        for tool in tools {
            let Some(name) = tool.get("name").and_then(Value::as_str) else {
                continue;
            };
            let schema = tool.get("inputSchema").unwrap_or(&Value::Null);
            let annotated = mcp_param_headers::annotations(schema).map(Arc::new);
            known.insert(name.to_string(), annotated);
        }
    }
}

/// The HTTP status a 2026-07-28 server gives a JSON-RPC error answer (as the reference SDK
/// does; other errors, and results, are 200).
fn error_status(answer: &Value) -> StatusCode {
    match answer.pointer("/error/code").and_then(Value::as_i64) {
        Some(-32700 | -32600 | -32602 | -32020 | -32021 | -32022) => StatusCode::BAD_REQUEST,
        Some(-32601) => StatusCode::NOT_FOUND,
        _ => StatusCode::OK,
    }
}

/// An error the gateway answers for the server: HTTP 400, the request's id.
fn refusal(message: &Value, code: i64, text: &str) -> Reply {
    let id = message.get("id").cloned().unwrap_or(Value::Null);
    let answer = jsonrpc::error(&id, code, text, None);
    Reply {
        status: StatusCode::BAD_REQUEST,
        session: None,
        body: ReplyBody::Json(Bytes::from(answer.to_string())),
    }
}

/// Counts one more process that died young and sets when the next may start: at once after
/// the first, then after a wait that doubles.
fn back_off(state: &mut State) {
    state.failures = state.failures.saturating_add(1);
    if state.failures < 2 {
        return;
    }
    let wait = FIRST_BACKOFF
        .saturating_mul(1 << (state.failures - 2).min(16))
        .min(MAX_BACKOFF);
    state.not_before = Some(Instant::now() + wait);
}

/// A random session id for a process (sealed into clients' session ids, never shown bare).
fn session_token(number: u64) -> String {
    let mut random = [0u8; 12];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random);
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    format!("{number}-{hex}")
}

/// A call whose first answer is awaited; dropped before that (its caller gone), it is given up.
struct Waiting {
    process: Option<Arc<Process>>,
    id: u64,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(process) = self.process.take() {
            process.abandon_soon(self.id);
        }
    }
}

/// `202 Accepted` with no body: what a notification or a response gets.
fn accepted() -> Reply {
    Reply {
        status: StatusCode::ACCEPTED,
        session: None,
        body: ReplyBody::Empty,
    }
}

fn poisoned() -> LinkError {
    LinkError::Protocol("poisoned lock".into())
}

/// A listener's stream of a process's messages outside calls; it ends with the process.
fn forward(mut events: broadcast::Receiver<Value>) -> mpsc::Receiver<super::link::Delivery> {
    let (sender, receiver) = mpsc::channel(EVENTS_BACKLOG);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Ok(message) => {
                        if sender.send(Ok(message)).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, "a listener missed messages of a stdio server");
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                () = sender.closed() => return,
            }
        }
    });
    receiver
}
