//! One process of a stdio server: started with only the environment it is given, in its own
//! process group; its stdout read as JSON-RPC lines and each message taken to the call it
//! belongs to; its stderr logged within a budget; ended (group and all) when asked or when it
//! dies, failing the calls it still had.

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{broadcast, mpsc, watch};

use super::groups;
use super::log_budget::LogBudget;
use super::wire;
use crate::federation::jsonrpc;
use crate::federation::link::{Delivery, LinkError, MAX_ANSWER};
use crate::federation::spec::StdioSpec;

/// Messages one call may have waiting for its reader before the process is held back.
const CALL_BACKLOG: usize = 64;
/// Longest stderr line logged; the rest is cut.
const MAX_STDERR_LINE: usize = 2048;
/// Requests of its own a process may have waiting for answers; past it they are not answerable.
const MAX_OUTSTANDING: usize = 1024;
/// Longest wait for a call's reader to take a message; a reader that slow is dropped, so that
/// one stuck caller does not hold back the process's other calls.
const DELIVERY_LIMIT: Duration = Duration::from_secs(10);
/// Longest wait for a process to take one message on its stdin; a process that does not read
/// it is ended.
const WRITE_LIMIT: Duration = Duration::from_secs(10);
/// How long a process asked to end gets after its stdin closes, and again after SIGTERM.
const END_GRACE: Duration = Duration::from_secs(1);

/// What a process is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// One 2025-era client session's own.
    Session,
    /// One of the processes stateless (2026-era) calls share.
    ModernPool,
    /// One of the processes serving the gateway's own 2025-era session, for stateless clients
    /// of a 2025-only server.
    LegacyPool,
    /// The one process of a `shared` server.
    Shared,
}

/// Why a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ExitCause {
    /// It exited with status 0 on its own.
    Exited,
    /// It exited otherwise on its own (a status, a signal, closing its stdout).
    Crashed,
    /// It could not be started.
    SpawnFailed,
    /// Nobody used it for `idle_timeout`.
    Idle,
    /// Its client session ended (DELETE).
    SessionEnded,
    /// It stopped answering, even `ping`.
    Unresponsive,
    /// Its server's configuration changed or went away, or the gateway had no use for it.
    Retired,
    /// The gateway is exiting.
    Shutdown,
}

impl ExitCause {
    /// The `cause` label of `tollgate_mcp_process_exits_total`.
    pub(super) fn label(self) -> &'static str {
        match self {
            ExitCause::Exited => "exited",
            ExitCause::Crashed => "crashed",
            ExitCause::SpawnFailed => "spawn_failed",
            ExitCause::Idle => "idle",
            ExitCause::SessionEnded => "session_ended",
            ExitCause::Unresponsive => "unresponsive",
            ExitCause::Retired => "retired",
            ExitCause::Shutdown => "shutdown",
        }
    }

    /// Whether the process ended on its own (counts toward restart backoff).
    pub(super) fn on_its_own(self) -> bool {
        matches!(
            self,
            ExitCause::Exited | ExitCause::Crashed | ExitCause::SpawnFailed
        )
    }
}

/// A call in flight on a process.
struct Call {
    /// The id the caller gave it.
    original_id: Value,
    sender: mpsc::Sender<Delivery>,
    /// The caller's progress token, when the call asked for progress.
    progress: Option<(String, Value)>,
    /// A `subscriptions/listen`: not a call in flight for idleness and routing.
    listen: bool,
}

#[derive(Default)]
struct Calls {
    by_id: HashMap<u64, Call>,
    /// Progress tokens the gateway gave the process, to its id of the call.
    progress: HashMap<String, u64>,
}

/// One running process.
pub(super) struct Process {
    /// Its number among its server's processes (in the ids of its own requests).
    pub number: u64,
    /// The session id the gateway gives callers of a `Session` or `Shared` process.
    pub token: Arc<str>,
    /// What it is for.
    pub role: Role,
    server: Arc<str>,
    pid: u32,
    stdin: tokio::sync::Mutex<Option<ChildStdin>>,
    calls: Mutex<Calls>,
    next_id: AtomicU64,
    last_active: Mutex<Instant>,
    /// Messages not part of any call (GET streams and the gateway's listeners).
    events: broadcast::Sender<Value>,
    /// The process's own requests sent on to a caller and not yet answered (their ids as the
    /// caller got them): only those are taken as answers.
    outstanding: Mutex<HashSet<String>>,
    stop: watch::Sender<Option<ExitCause>>,
    /// It answered at least once.
    answered: AtomicBool,
    checking: AtomicBool,
    /// The gateway's own handshake on it is done (`LegacyPool` and `Shared`).
    pub handshake: tokio::sync::OnceCell<()>,
    /// It serves the 2026 era (its first request had the envelope).
    pub modern: AtomicBool,
}

/// What to run when a process has ended and been reaped.
pub(super) type OnExit = Box<dyn FnOnce(&Process, ExitCause) + Send>;

impl Process {
    /// Starts a process of `spec`; `events` receives what it sends outside calls.
    pub(super) fn spawn(
        server: Arc<str>,
        spec: &StdioSpec,
        number: u64,
        role: Role,
        token: Arc<str>,
        events: broadcast::Sender<Value>,
        on_exit: OnExit,
    ) -> Result<Arc<Self>, LinkError> {
        super::hardening::hide_gateway_from_children();
        let mut child = command(spec).spawn().map_err(|e| {
            LinkError::Unavailable(format!("cannot start `{}`: {e}", spec.command[0]))
        })?;
        let pid = child.id().unwrap_or(0);
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(LinkError::Unavailable("the process has no pipes".into()));
        };
        let group = i32::try_from(pid).unwrap_or(0);
        groups::add(group);
        let (stop, stop_requested) = watch::channel(None);
        let process = Arc::new(Self {
            number,
            token,
            role,
            server: server.clone(),
            pid,
            stdin: tokio::sync::Mutex::new(Some(stdin)),
            calls: Mutex::default(),
            next_id: AtomicU64::new(1),
            last_active: Mutex::new(Instant::now()),
            events,
            outstanding: Mutex::default(),
            stop,
            answered: AtomicBool::new(false),
            checking: AtomicBool::new(false),
            handshake: tokio::sync::OnceCell::new(),
            modern: AtomicBool::new(false),
        });
        tracing::info!(%server, pid, ?role, "stdio MCP server process started");
        tokio::spawn(read_stdout(process.clone(), BufReader::new(stdout)));
        tokio::spawn(log_stderr(server, pid, BufReader::new(stderr)));
        tokio::spawn(supervise(child, process.clone(), stop_requested, on_exit));
        Ok(process)
    }

    /// Whether it has been asked to end or has ended.
    pub(super) fn is_ending(&self) -> bool {
        self.stop.borrow().is_some()
    }

    /// Asks it to end (the first cause given is the one counted).
    pub(super) fn end(&self, cause: ExitCause) {
        self.stop.send_if_modified(|slot| {
            if slot.is_none() {
                *slot = Some(cause);
                true
            } else {
                false
            }
        });
    }

    /// Calls in flight (listen streams aside).
    pub(super) fn in_flight(&self) -> usize {
        self.calls
            .lock()
            .map(|c| c.by_id.values().filter(|c| !c.listen).count())
            .unwrap_or(0)
    }

    /// Whether it has been unused for `limit`: no call, no listener, no message.
    pub(super) fn idle_for(&self, limit: Duration) -> bool {
        let quiet = self
            .last_active
            .lock()
            .map(|t| t.elapsed() >= limit)
            .unwrap_or(false);
        // The pool's listeners listen to the pool, not to one of its processes.
        let listened =
            self.events.receiver_count() > 0 && matches!(self.role, Role::Session | Role::Shared);
        quiet && !listened && self.calls_empty()
    }

    /// Gives up the calls whose callers have gone (their streams dropped), telling the process.
    pub(super) fn prune_abandoned(self: &Arc<Self>) {
        let gone: Vec<u64> = match self.calls.lock() {
            Ok(calls) => calls
                .by_id
                .iter()
                .filter(|(_, call)| call.sender.is_closed())
                .map(|(&id, _)| id)
                .collect(),
            Err(_) => return,
        };
        for id in gone {
            self.abandon_soon(id);
        }
    }

    fn calls_empty(&self) -> bool {
        self.calls
            .lock()
            .map(|c| c.by_id.is_empty())
            .unwrap_or(true)
    }

    /// Marks it used now (picked for a call: not idle).
    pub(super) fn touch(&self) {
        if let Ok(mut last) = self.last_active.lock() {
            *last = Instant::now();
        }
    }

    /// Its messages outside calls, from now on.
    pub(super) fn subscribe(&self) -> broadcast::Receiver<Value> {
        self.events.subscribe()
    }

    /// Sends request `message` (any id: the process gets one of its own); the process's id of
    /// it and where its messages will come.
    pub(super) async fn request(
        &self,
        mut message: Value,
    ) -> Result<(u64, mpsc::Receiver<Delivery>), LinkError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let original_id = std::mem::replace(&mut message["id"], Value::from(id));
        let progress = wire::progress_token(&message).cloned().map(|original| {
            let token = format!("tg{}-{id}", self.number);
            wire::set_progress_token(&mut message, Value::String(token.clone()));
            (token, original)
        });
        let listen = message.get("method").and_then(Value::as_str) == Some("subscriptions/listen");
        let (sender, receiver) = mpsc::channel(CALL_BACKLOG);
        if let Ok(mut calls) = self.calls.lock() {
            if let Some((token, _)) = &progress {
                calls.progress.insert(token.clone(), id);
            }
            calls.by_id.insert(
                id,
                Call {
                    original_id,
                    sender,
                    progress,
                    listen,
                },
            );
        }
        if let Err(e) = self.write(&message).await {
            self.forget(id);
            return Err(e);
        }
        Ok((id, receiver))
    }

    /// Sends a notification; a client's `notifications/cancelled` names the process's id.
    pub(super) async fn notify(&self, mut message: Value) -> Result<(), LinkError> {
        if message.get("method").and_then(Value::as_str) == Some("notifications/cancelled") {
            let Some(slot) = message.pointer_mut("/params/requestId") else {
                return Ok(());
            };
            // A cancellation that names no call of this process (answered meanwhile, or
            // ambiguous between callers) is dropped: it must not cancel another call.
            let Some(id) = self.id_of(slot) else {
                return Ok(());
            };
            *slot = Value::from(id);
        }
        self.write(&message).await
    }

    /// Takes back a request of the process's own that a caller answers (`scoped`: its id as
    /// the caller got it): whether it was sent on and not yet answered.
    pub(super) fn take_outstanding(&self, scoped: &str) -> bool {
        self.outstanding
            .lock()
            .map(|mut o| o.remove(scoped))
            .unwrap_or(false)
    }

    /// Sends a caller's answer to one of the process's requests (its id already the process's).
    pub(super) async fn answer(&self, message: &Value) -> Result<(), LinkError> {
        self.write(message).await
    }

    /// Gives up call `id` (its caller stopped waiting) and tells the process so, in the
    /// background (whoever gives up may not wait for the process to read).
    pub(super) fn abandon_soon(self: &Arc<Self>, id: u64) {
        let process = self.clone();
        tokio::spawn(async move { process.abandon(id).await });
    }

    /// Gives up call `id` (its caller stopped waiting) and tells the process so.
    pub(super) async fn abandon(&self, id: u64) {
        self.forget(id);
        let cancelled = serde_json::json!({
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": {"requestId": id, "reason": "the gateway stopped waiting"},
        });
        let _ = self.write(&cancelled).await;
    }

    /// The process's id of the call the caller knows as `original`.
    fn id_of(&self, original: &Value) -> Option<u64> {
        let calls = self.calls.lock().ok()?;
        let mut matching = calls
            .by_id
            .iter()
            .filter(|(_, call)| &call.original_id == original);
        let (&id, _) = matching.next()?;
        matching.next().is_none().then_some(id)
    }

    fn forget(&self, id: u64) {
        if let Ok(mut calls) = self.calls.lock() {
            if let Some(Call {
                progress: Some((token, _)),
                ..
            }) = calls.by_id.remove(&id)
            {
                calls.progress.remove(&token);
            }
        }
    }

    async fn write(&self, message: &Value) -> Result<(), LinkError> {
        let mut line = message.to_string().into_bytes();
        line.push(b'\n');
        self.touch();
        let written = tokio::time::timeout(WRITE_LIMIT, async {
            let mut stdin = self.stdin.lock().await;
            let Some(pipe) = stdin.as_mut() else {
                return Err(LinkError::Unavailable("the process is ending".into()));
            };
            pipe.write_all(&line)
                .await
                .map_err(|e| LinkError::Unavailable(format!("cannot write to the process: {e}")))
        })
        .await;
        match written {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!(server = %self.server, pid = self.pid, "stdio MCP server process does not read its stdin: ending it");
                self.end(ExitCause::Unresponsive);
                Err(LinkError::Unavailable(
                    "the process does not read its input".into(),
                ))
            }
        }
    }

    /// Checks that a process that let a call time out still answers `ping`; ends it if not.
    pub(super) fn check_alive(self: &Arc<Self>, limit: Duration) {
        if self.checking.swap(true, Ordering::AcqRel) {
            return;
        }
        let process = self.clone();
        tokio::spawn(async move {
            let ping = jsonrpc::request(&Value::from(0), "ping", &serde_json::json!({}));
            let answered = match serde_json::from_slice::<Value>(&ping) {
                Ok(ping) => match process.request(ping).await {
                    Ok((id, mut receiver)) => {
                        let got = tokio::time::timeout(limit, receiver.recv()).await;
                        process.forget(id);
                        matches!(got, Ok(Some(Ok(_))))
                    }
                    Err(_) => false,
                },
                Err(_) => true,
            };
            if !answered {
                tracing::warn!(server = %process.server, pid = process.pid, "stdio MCP server process does not answer ping: ending it");
                process.end(ExitCause::Unresponsive);
            }
            process.checking.store(false, Ordering::Release);
        });
    }

    /// Takes one message the process wrote to the call or stream it belongs to.
    async fn route(self: &Arc<Self>, mut message: Value) {
        self.touch();
        if jsonrpc::is_response(&message) {
            let Some(call) = message
                .get("id")
                .and_then(Value::as_u64)
                .and_then(|id| self.take_call(id))
            else {
                tracing::debug!(server = %self.server, "a response to no call in flight: dropped");
                return;
            };
            self.answered.store(true, Ordering::Relaxed);
            message["id"] = call.original_id;
            let _ = tokio::time::timeout(DELIVERY_LIMIT, call.sender.send(Ok(message))).await;
            return;
        }
        let method = message
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if let Some(id) = message.get("id").cloned() {
            let scoped = wire::scope_server_id(self.number, &id);
            if let (Some(text), Ok(mut outstanding)) = (scoped.as_str(), self.outstanding.lock()) {
                if outstanding.len() < MAX_OUTSTANDING {
                    outstanding.insert(text.to_string());
                }
            }
            message["id"] = scoped;
        }
        let target = self.call_for(&mut message, &method);
        match target {
            Some((id, sender)) => {
                let delivered =
                    tokio::time::timeout(DELIVERY_LIMIT, sender.send(Ok(message))).await;
                if !matches!(delivered, Ok(Ok(()))) {
                    self.abandon_soon(id);
                }
            }
            None => {
                let _ = self.events.send(message);
            }
        }
    }

    fn take_call(&self, id: u64) -> Option<Call> {
        let mut calls = self.calls.lock().ok()?;
        let call = calls.by_id.remove(&id)?;
        if let Some((token, _)) = &call.progress {
            calls.progress.remove(token);
        }
        Some(call)
    }

    /// The call a message of the process belongs to (its progress token or subscription names
    /// it; else the call in flight, when there is exactly one, or the oldest for a request);
    /// `None`: a message for every caller.
    fn call_for(&self, message: &mut Value, method: &str) -> Option<(u64, mpsc::Sender<Delivery>)> {
        let calls = self.calls.lock().ok()?;
        if let Some(&id) =
            wire::notified_progress_token(message).and_then(|t| calls.progress.get(t))
        {
            let call = calls.by_id.get(&id)?;
            if let (Some((_, original)), Some(slot)) =
                (&call.progress, message.pointer_mut("/params/progressToken"))
            {
                *slot = original.clone();
            }
            return Some((id, call.sender.clone()));
        }
        if let Some(id) = wire::subscription_of(message) {
            let call = calls.by_id.get(&id)?;
            if let Some(slot) = message
                .pointer_mut("/params/_meta")
                .and_then(|m| m.get_mut(wire::SUBSCRIPTION_ID))
            {
                *slot = call.original_id.clone();
            }
            return Some((id, call.sender.clone()));
        }
        if wire::is_broadcast(method) {
            return None;
        }
        let mut in_flight = calls.by_id.iter().filter(|(_, c)| !c.listen);
        let first = in_flight.next();
        let only = in_flight.next().is_none();
        let is_request = message.get("id").is_some();
        match first {
            Some(_) if is_request || only => calls
                .by_id
                .iter()
                .filter(|(_, c)| !c.listen)
                .min_by_key(|(&id, _)| id)
                .map(|(&id, c)| (id, c.sender.clone())),
            _ => None,
        }
    }

    /// Fails every call still in flight: the process has ended.
    fn fail_calls(&self, cause: ExitCause) {
        let calls = match self.calls.lock() {
            Ok(mut calls) => std::mem::take(&mut *calls),
            Err(_) => return,
        };
        for call in calls.by_id.into_values() {
            let _ = call.sender.try_send(Err(LinkError::Unavailable(format!(
                "the server's process ended ({})",
                cause.label()
            ))));
        }
    }

    /// Whether it ended before answering any request (it fails to start).
    pub(super) fn never_answered(&self) -> bool {
        !self.answered.load(Ordering::Relaxed)
    }
}

/// The command for `spec`: its own process group, only the environment it is given.
fn command(spec: &StdioSpec) -> Command {
    let mut command = Command::new(&spec.command[0]);
    command
        .args(&spec.command[1..])
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    for inherited in ["PATH", "HOME"] {
        if let Some(value) = std::env::var_os(inherited) {
            command.env(inherited, value);
        }
    }
    for (name, value) in &spec.env {
        command.env(name, value.0.expose_secret());
    }
    if let Some(cwd) = &spec.cwd {
        command.current_dir(cwd);
    }
    command
}

/// Waits for the process to end on its own or for a request to end it; then ends its group,
/// fails its calls and reports.
async fn supervise(
    mut child: Child,
    process: Arc<Process>,
    mut stop_requested: watch::Receiver<Option<ExitCause>>,
    on_exit: OnExit,
) {
    let group = i32::try_from(process.pid).unwrap_or(0);
    let (cause, requested) = tokio::select! {
        status = child.wait() => match status {
            _ if groups::ending_all() => (ExitCause::Shutdown, false),
            Ok(status) if status.success() => (ExitCause::Exited, false),
            _ => (ExitCause::Crashed, false),
        },
        requested = stop_requested.wait_for(Option::is_some) => {
            (requested.ok().and_then(|c| *c).unwrap_or(ExitCause::Retired), true)
        }
    };
    if requested {
        end_child(&mut child, &process, group, cause).await;
    }
    // Whatever it started in its group goes with it.
    groups::signal(group, libc::SIGKILL);
    groups::remove(group);
    process.end(cause);
    process.fail_calls(cause);
    tracing::info!(server = %process.server, pid = process.pid, cause = cause.label(), "stdio MCP server process ended");
    super::metrics::ended(&process.server, cause, true);
    on_exit(&process, cause);
}

/// Ends a child the gateway no longer wants: stdin closed (MCP's way to ask), then SIGTERM,
/// then SIGKILL, each after a grace; a process that stopped answering gets SIGKILL at once.
async fn end_child(child: &mut Child, process: &Process, group: i32, cause: ExitCause) {
    if cause != ExitCause::Unresponsive {
        // A writer stuck on a full pipe holds the lock: then the signals come at once.
        if let Ok(mut stdin) = tokio::time::timeout(END_GRACE, process.stdin.lock()).await {
            drop(stdin.take());
        }
        if tokio::time::timeout(END_GRACE, child.wait()).await.is_ok() {
            return;
        }
        groups::signal(group, libc::SIGTERM);
        if tokio::time::timeout(END_GRACE, child.wait()).await.is_ok() {
            return;
        }
    }
    groups::signal(group, libc::SIGKILL);
    let _ = child.wait().await;
}

/// Reads the process's stdout line by line: JSON-RPC messages are routed, anything else is
/// logged (within a budget) and dropped.
async fn read_stdout(process: Arc<Process>, mut stdout: impl AsyncBufRead + Unpin) {
    let mut budget = LogBudget::default();
    let mut line = Vec::new();
    loop {
        match read_line(&mut stdout, &mut line, MAX_ANSWER).await {
            Ok(Line::Complete) => {}
            Ok(Line::TooLong) => {
                if budget.allow() {
                    tracing::warn!(server = %process.server, pid = process.pid, "stdio MCP server wrote a line longer than {MAX_ANSWER} bytes: dropped");
                }
                continue;
            }
            Ok(Line::End) | Err(_) => break,
        }
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        match serde_json::from_slice::<Value>(text) {
            Ok(Value::Array(batch)) => {
                for message in batch {
                    process.route(message).await;
                }
            }
            Ok(message @ Value::Object(_)) if message.get("jsonrpc").is_some() => {
                process.route(message).await;
            }
            _ => {
                if budget.allow() {
                    let shown = String::from_utf8_lossy(&text[..text.len().min(200)]).into_owned();
                    tracing::warn!(server = %process.server, pid = process.pid, line = %shown, "stdio MCP server wrote something that is not JSON-RPC to stdout: dropped");
                }
            }
        }
        if let Some(dropped) = budget.take_dropped() {
            tracing::warn!(server = %process.server, pid = process.pid, dropped, "stdout lines not logged (over budget)");
        }
    }
    // A process that closed its stdout cannot answer any more: unless it is exiting anyway,
    // it is ended (the pause lets its own exit be the cause when it is).
    tokio::time::sleep(Duration::from_millis(500)).await;
    process.end(ExitCause::Crashed);
}

/// Logs the process's stderr, line by line, within a budget.
async fn log_stderr(server: Arc<str>, pid: u32, mut stderr: impl AsyncBufRead + Unpin) {
    let mut budget = LogBudget::default();
    let mut line = Vec::new();
    loop {
        match read_line(&mut stderr, &mut line, MAX_STDERR_LINE).await {
            Ok(Line::Complete | Line::TooLong) => {}
            Ok(Line::End) | Err(_) => return,
        }
        if let Some(dropped) = budget.take_dropped() {
            tracing::warn!(%server, pid, dropped, "stderr lines not logged (over budget)");
        }
        if budget.allow() {
            let text = String::from_utf8_lossy(line.trim_ascii_end());
            tracing::info!(%server, pid, stderr = %text, "stdio MCP server");
        }
    }
}

/// The outcome of reading one line.
enum Line {
    /// A line is in the buffer (without its newline).
    Complete,
    /// The line was longer than allowed: the buffer holds its first part, the rest is skipped.
    TooLong,
    /// The stream ended.
    End,
}

/// Reads one line into `line` (cleared first), keeping at most `max` bytes of it.
async fn read_line(
    reader: &mut (impl AsyncBufRead + Unpin),
    line: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Line> {
    line.clear();
    let mut too_long = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(if line.is_empty() && !too_long {
                Line::End
            } else if too_long {
                Line::TooLong
            } else {
                Line::Complete
            });
        }
        let (chunk, used, done) = match memchr::memchr(b'\n', available) {
            Some(end) => (&available[..end], end + 1, true),
            None => (available, available.len(), false),
        };
        let room = max.saturating_sub(line.len());
        if chunk.len() > room {
            too_long = true;
        }
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        reader.consume(used);
        if done {
            return Ok(if too_long {
                Line::TooLong
            } else {
                Line::Complete
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_cut_at_the_limit_and_the_rest_skipped() {
        let input: &[u8] = b"short\nthis one is long\n\nlast";
        let mut reader = BufReader::with_capacity(4, input);
        let mut line = Vec::new();
        let mut seen = Vec::new();
        loop {
            let outcome = read_line(&mut reader, &mut line, 8).await.unwrap();
            let tag = match outcome {
                Line::Complete => "ok",
                Line::TooLong => "long",
                Line::End => break,
            };
            seen.push(format!("{tag}:{}", String::from_utf8_lossy(&line)));
        }
        assert_eq!(seen, ["ok:short", "long:this one", "ok:", "ok:last"]);
    }
}
