//! Unit-testing a plugin without a gateway: build it from a TOML table through its factory, give
//! it a request, run its phases one by one and look at what it decided.
//!
//! The harness calls the phases the way the gateway does on MCP and LLM routes (the body's
//! chunks are not the last, an empty chunk ends the body; on an LLM route a streamed answer's
//! chunks carry the gateway's reading of their events, a JSON answer's last chunk the reading of
//! the whole answer) but it does not parse anything into the gateway's facts: a test sets the
//! parsed request ([`TestRequest::mcp_request`], [`TestRequest::llm_request`]) and the usage or
//! model the gateway would have seen ([`TestExchange::set_usage`]) itself.
//!
//! ```
//! use std::sync::Arc;
//!
//! use tollgate_plugin_api::testing::{block_on, build_plugin, json_body, TestExchange, TestRequest};
//! use tollgate_plugin_api::{
//!     async_trait, Plugin, PluginConfigError, PluginError, PluginFactory, RejectKind, Rejection,
//!     RequestBody, RequestCtx, Verdict,
//! };
//!
//! /// Refuses request bodies longer than `max` bytes.
//! struct MaxBody {
//!     name: String,
//!     max: usize,
//! }
//!
//! struct MaxBodyFactory;
//!
//! impl PluginFactory for MaxBodyFactory {
//!     fn build(&self, name: &str, table: &toml::Table) -> Result<Arc<dyn Plugin>, PluginConfigError> {
//!         let max = table.get("max").and_then(|v| v.as_integer()).unwrap_or(1024);
//!         let max = usize::try_from(max).map_err(|_| PluginConfigError::at("max", "negative"))?;
//!         Ok(Arc::new(MaxBody { name: name.to_string(), max }))
//!     }
//! }
//!
//! #[async_trait]
//! impl Plugin for MaxBody {
//!     fn name(&self) -> &str {
//!         &self.name
//!     }
//!
//!     async fn on_request_body(
//!         &self,
//!         _cx: &mut RequestCtx,
//!         body: &mut RequestBody,
//!     ) -> Result<Verdict, PluginError> {
//!         if body.raw().len() <= self.max {
//!             return Ok(Verdict::Continue);
//!         }
//!         let rejection = Rejection::new(RejectKind::InvalidRequest, "max_body.exceeded", "too long");
//!         Ok(Verdict::Reject(rejection))
//!     }
//! }
//!
//! let plugin = build_plugin(&MaxBodyFactory, "small", "max = 16").unwrap();
//! let mut exchange = TestExchange::new(plugin, TestRequest::llm("/v1/messages"));
//! let mut body = json_body(&serde_json::json!({"messages": ["a long enough prompt"]}));
//! let verdict = block_on(exchange.on_request_body(&mut body)).unwrap();
//! assert_eq!(verdict.rejection().map(|r| r.reason.as_ref()), Some("max_body.exceeded"));
//! ```
//!
//! A plugin whose phases do I/O through tokio runs them in `#[tokio::test]` functions instead of
//! [`block_on`].

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};

use crate::config::PluginConfigError;
use crate::context::{Identity, RequestCtx, RouteInfo, RouteKind};
use crate::json_answer::JsonAnswer;
use crate::plugin::{Plugin, PluginFactory};
use crate::request::{LlmRequest, McpRequest, Usage};
use crate::sse::{complete_events_len, BodyKind};
use crate::stream_events::StreamEvents;
use crate::verdict::{Decision, Outcome, PluginError, Verdict};
use crate::views::{RequestBody, ResponseChunk, ResponseHead};

/// Builds the plugin instance `name` with `factory` from `config`, the keys of its
/// `[plugin.<name>]` table as TOML (a `type` key, which the gateway never hands to a factory, is
/// dropped). A TOML syntax error is returned as a configuration error.
pub fn build_plugin<F: PluginFactory + ?Sized>(
    factory: &F,
    name: &str,
    config: &str,
) -> Result<Arc<dyn Plugin>, PluginConfigError> {
    let mut table: toml::Table = toml::from_str(config)
        .map_err(|e| PluginConfigError::new(format!("not a TOML table: {}", e.message())))?;
    table.remove("type");
    factory.build(name, &table)
}

/// A request body with its JSON, as the gateway hands it to `on_request_body` (serialized
/// compactly).
pub fn json_body(json: &serde_json::Value) -> RequestBody {
    RequestBody::new(Bytes::from(json.to_string()), Some(json.clone()))
}

/// An identity as an authentication plugin sets it; `claims` other than a JSON object give
/// none.
pub fn identity(subject: &str, claims: serde_json::Value) -> Identity {
    let claims = match claims {
        serde_json::Value::Object(claims) => claims,
        _ => serde_json::Map::new(),
    };
    Identity {
        subject: subject.to_string(),
        claims: Arc::new(claims),
    }
}

/// The outcome of an exchange the chain let through and answered with `status`.
pub fn allowed(status: u16) -> Outcome {
    Outcome {
        status,
        decision: Decision::Allowed,
        error: None,
    }
}

/// Runs `future` to completion on this thread, for phases that need no async runtime (no tokio
/// timers or sockets).
pub fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(output) => return output,
            Poll::Pending => thread::park(),
        }
    }
}

/// A request for a plugin under test: its route, head and the gateway's facts about it.
#[derive(Debug, Clone)]
pub struct TestRequest {
    route: RouteInfo,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    client_addr: Option<SocketAddr>,
    identity: Option<Identity>,
    mcp: Option<McpRequest>,
    llm: Option<LlmRequest>,
    usage: Usage,
    response_model: Option<String>,
    first_token_after: Option<Duration>,
}

impl TestRequest {
    fn on(kind: RouteKind, method: Method, path: &str) -> Self {
        let uri = Uri::try_from(path)
            .unwrap_or_else(|e| panic!("test request path `{path}` is not a URI: {e}"));
        Self {
            route: RouteInfo {
                name: "test".into(),
                kind,
                provider: (kind == RouteKind::Llm).then(|| "anthropic".into()),
                path_prefix: "/".into(),
            },
            method,
            uri,
            headers: HeaderMap::new(),
            client_addr: None,
            identity: None,
            mcp: None,
            llm: None,
            usage: Usage::default(),
            response_model: None,
            first_token_after: None,
        }
    }

    /// A `GET` of `path` on a plain `http` route.
    pub fn http(path: &str) -> Self {
        Self::on(RouteKind::Http, Method::GET, path)
    }

    /// A `POST` of `path` on an `mcp` route.
    pub fn mcp(path: &str) -> Self {
        Self::on(RouteKind::Mcp, Method::POST, path)
    }

    /// A `POST` of `path` on an `llm` route of provider `anthropic`.
    pub fn llm(path: &str) -> Self {
        Self::on(RouteKind::Llm, Method::POST, path)
    }

    /// Sets the request method.
    pub fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }

    /// Names the route (`test` by default) and sets its path prefix (`/` by default).
    pub fn route(mut self, name: &str, path_prefix: &str) -> Self {
        self.route.name = name.into();
        self.route.path_prefix = path_prefix.into();
        self
    }

    /// Sets the route's LLM provider.
    pub fn provider(mut self, provider: &str) -> Self {
        self.route.provider = Some(provider.into());
        self
    }

    /// Adds a request header. Panics on a name or value HTTP does not allow.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let (name, value) = header(name, value);
        self.headers.append(name, value);
        self
    }

    /// Sets the client's address.
    pub fn client_addr(mut self, addr: SocketAddr) -> Self {
        self.client_addr = Some(addr);
        self
    }

    /// Sets the caller, as an authentication plugin earlier in the chain would have.
    pub fn identity(mut self, identity: Identity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// Sets the MCP request the gateway would have parsed from the body.
    pub fn mcp_request(mut self, request: McpRequest) -> Self {
        self.mcp = Some(request);
        self
    }

    /// Sets the LLM request the gateway would have parsed from the body.
    pub fn llm_request(mut self, request: LlmRequest) -> Self {
        self.llm = Some(request);
        self
    }

    /// Sets the token usage the gateway saw in the answer (for `on_complete` tests).
    pub fn usage(mut self, input_tokens: u64, output_tokens: u64) -> Self {
        self.usage = Usage {
            input_tokens,
            output_tokens,
            reported: true,
            ..Usage::default()
        };
        self
    }

    /// Sets the model the upstream said answered.
    pub fn response_model(mut self, model: &str) -> Self {
        self.response_model = Some(model.to_string());
        self
    }

    /// Sets when the first generated token passed, `after` the request started.
    pub fn first_token_after(mut self, after: Duration) -> Self {
        self.first_token_after = Some(after);
        self
    }

    /// The request's context, as the gateway would hand it to the first plugin.
    pub fn build(self) -> RequestCtx {
        let mut cx = RequestCtx::new(self.route, self.method, self.uri, self.headers);
        cx.identity = self.identity;
        let facts = cx.facts_mut();
        facts.client_addr = self.client_addr;
        facts.mcp = self.mcp;
        facts.llm = self.llm;
        facts.usage = self.usage;
        facts.response_model = self.response_model;
        facts.first_token_at = self
            .first_token_after
            .and_then(|after| facts.started.checked_add(after));
        cx
    }
}

/// What the plugin sent on for one response chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmittedChunk {
    /// The bytes going to the client.
    pub data: Bytes,
    /// Whether the plugin replaced the chunk's bytes.
    pub changed: bool,
}

/// What the plugin sent on for a run of response chunks, the last (empty) one included.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Emitted {
    /// Per chunk, in order.
    pub chunks: Vec<EmittedChunk>,
}

impl Emitted {
    /// All the bytes sent, joined.
    pub fn bytes(&self) -> Bytes {
        let mut all = BytesMut::new();
        for chunk in &self.chunks {
            all.extend_from_slice(&chunk.data);
        }
        all.freeze()
    }

    /// All the bytes sent, as text (bytes that are not UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }

    /// Whether the plugin replaced the bytes of any chunk.
    pub fn changed(&self) -> bool {
        self.chunks.iter().any(|chunk| chunk.changed)
    }
}

/// One request through one plugin, phase by phase.
#[derive(Debug)]
pub struct TestExchange {
    plugin: Arc<dyn Plugin>,
    cx: RequestCtx,
    /// The answer's framing, from the content type the response phase saw.
    body: BodyKind,
    /// A stream's incomplete event, carried to the next chunk.
    carry: BytesMut,
    /// A JSON answer so far.
    answer: BytesMut,
}

impl TestExchange {
    /// An exchange of `request` through `plugin`.
    pub fn new(plugin: Arc<dyn Plugin>, request: TestRequest) -> Self {
        Self {
            plugin,
            cx: request.build(),
            body: BodyKind::Other,
            carry: BytesMut::new(),
            answer: BytesMut::new(),
        }
    }

    /// The request's context: what the plugin recorded in it so far.
    pub fn cx(&self) -> &RequestCtx {
        &self.cx
    }

    /// The request's context, to change what the plugin would find in it.
    pub fn cx_mut(&mut self) -> &mut RequestCtx {
        &mut self.cx
    }

    /// Sets the token usage the gateway saw in the answer so far.
    pub fn set_usage(&mut self, input_tokens: u64, output_tokens: u64) {
        self.cx.facts_mut().usage = Usage {
            input_tokens,
            output_tokens,
            reported: true,
            ..Usage::default()
        };
    }

    /// Sets the model the upstream said answered.
    pub fn set_response_model(&mut self, model: &str) {
        self.cx.facts_mut().response_model = Some(model.to_string());
    }

    /// The upstream header edits so far, in order: `(name, Some(value))` sets, `(name, None)`
    /// removes (values that are not text are shown lossily).
    pub fn header_edits(&self) -> Vec<(String, Option<String>)> {
        self.cx
            .upstream_headers
            .iter()
            .map(|(name, value)| {
                let value = value.map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
                (name.as_str().to_string(), value)
            })
            .collect()
    }

    /// Runs the request head phase.
    pub async fn on_request(&mut self) -> Result<Verdict, PluginError> {
        self.plugin.on_request(&mut self.cx).await
    }

    /// Runs the request body phase on `body` (see [`json_body`]); the test reads what the
    /// plugin rewrote from `body` afterwards.
    pub async fn on_request_body(
        &mut self,
        body: &mut RequestBody,
    ) -> Result<Verdict, PluginError> {
        self.plugin.on_request_body(&mut self.cx, body).await
    }

    /// Runs the response head phase on an answer with `status` and `headers`; returns the head
    /// as the plugin left it. Its `Content-Type` decides how the body's chunks are read.
    pub async fn on_response(
        &mut self,
        status: StatusCode,
        headers: &[(&str, &str)],
    ) -> Result<ResponseHead, PluginError> {
        let mut head = ResponseHead {
            status,
            headers: headers
                .iter()
                .map(|(name, value)| header(name, value))
                .collect(),
        };
        self.body = match head.headers.get(http::header::CONTENT_TYPE) {
            Some(content_type) if self.cx.route().kind == RouteKind::Llm => {
                BodyKind::from_content_type(content_type.to_str().unwrap_or(""))
            }
            _ => BodyKind::Other,
        };
        self.plugin.on_response(&mut self.cx, &mut head).await?;
        Ok(head)
    }

    /// Runs the chunk phase on one chunk of the body, not its last.
    pub fn on_response_chunk(&mut self, data: impl Into<Bytes>) -> EmittedChunk {
        let data = data.into();
        let chunk = match self.body {
            BodyKind::Sse => self.stream_chunk(data),
            BodyKind::Json => {
                self.answer.extend_from_slice(&data);
                ResponseChunk::new(data, false)
            }
            BodyKind::Other => ResponseChunk::new(data, false),
        };
        self.run_chunk(chunk)
    }

    /// Runs the chunk phase on the body's end: an empty last chunk, with the reading of a whole
    /// JSON answer on an LLM route.
    pub fn end_response(&mut self) -> EmittedChunk {
        let answer = match self.body {
            BodyKind::Json => JsonAnswer::read(self.answer.split().freeze()),
            _ => None,
        };
        let chunk = match answer {
            Some((answer, _)) => ResponseChunk::with_answer(Bytes::new(), answer),
            None => ResponseChunk::new(Bytes::new(), true),
        };
        self.run_chunk(chunk)
    }

    /// Runs the chunk phase on each of `chunks`, then on the body's end.
    pub fn on_response_chunks<B: Into<Bytes>>(
        &mut self,
        chunks: impl IntoIterator<Item = B>,
    ) -> Emitted {
        let mut emitted = Emitted::default();
        for data in chunks {
            emitted.chunks.push(self.on_response_chunk(data));
        }
        emitted.chunks.push(self.end_response());
        emitted
    }

    /// Runs the completion phase.
    pub async fn on_complete(&mut self, outcome: &Outcome) {
        self.plugin.on_complete(&self.cx, outcome).await;
    }

    /// A stream's chunk, with the events read in it when it is exactly a run of complete
    /// events and nothing is carried (as the gateway reads them).
    fn stream_chunk(&mut self, data: Bytes) -> ResponseChunk {
        if self.carry.is_empty() && complete_events_len(&data) == data.len() {
            if let Ok(text) = std::str::from_utf8(&data) {
                let events = StreamEvents::read(text, |_| {});
                return ResponseChunk::with_events(data, false, events);
            }
        }
        self.carry.extend_from_slice(&data);
        let complete = complete_events_len(&self.carry);
        let _ = self.carry.split_to(complete);
        ResponseChunk::new(data, false)
    }

    fn run_chunk(&mut self, mut chunk: ResponseChunk) -> EmittedChunk {
        self.plugin.on_response_chunk(&mut self.cx, &mut chunk);
        let changed = chunk.is_changed();
        EmittedChunk {
            data: chunk.into_parts().0,
            changed,
        }
    }
}

/// A header for a test; panics on a name or value HTTP does not allow.
fn header(name: &str, value: &str) -> (HeaderName, HeaderValue) {
    let name =
        HeaderName::try_from(name).unwrap_or_else(|e| panic!("test header name `{name}`: {e}"));
    let value = HeaderValue::try_from(value)
        .unwrap_or_else(|e| panic!("test header value for `{name}`: {e}"));
    (name, value)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::async_trait;
    use crate::verdict::{RejectKind, Rejection};

    /// Records what it saw and acts on it: rejects a missing `x-user`, sets an upstream header,
    /// upper-cases a JSON body's `text`, stamps responses, upper-cases chunks it has no
    /// reading of, logs the usage and model it is told of at the end.
    struct Probe {
        name: String,
        header: HeaderName,
        completed: Completed,
    }

    type Completed = Arc<Mutex<Vec<(Usage, Option<String>)>>>;

    #[derive(Default)]
    struct ProbeFactory(Completed);

    impl PluginFactory for ProbeFactory {
        fn build(
            &self,
            name: &str,
            table: &toml::Table,
        ) -> Result<Arc<dyn Plugin>, PluginConfigError> {
            let header = table
                .get("header")
                .and_then(|v| v.as_str())
                .ok_or_else(|| PluginConfigError::at("header", "missing"))?;
            let header = HeaderName::try_from(header)
                .map_err(|_| PluginConfigError::at("header", "not a header name"))?;
            Ok(Arc::new(Probe {
                name: name.to_string(),
                header,
                completed: self.0.clone(),
            }))
        }
    }

    #[derive(Default)]
    struct Seen {
        events: usize,
        answer_texts: Vec<String>,
    }

    #[async_trait]
    impl Plugin for Probe {
        fn name(&self) -> &str {
            &self.name
        }

        async fn on_request(&self, cx: &mut RequestCtx) -> Result<Verdict, PluginError> {
            let Some(user) = cx.headers().get("x-user").cloned() else {
                let rejection =
                    Rejection::new(RejectKind::Authentication, "probe.no_user", "who are you?");
                return Ok(Verdict::Reject(rejection));
            };
            cx.upstream_headers.set(self.header.clone(), user);
            cx.extensions.insert(Seen::default());
            Ok(Verdict::Continue)
        }

        async fn on_request_body(
            &self,
            _cx: &mut RequestCtx,
            body: &mut RequestBody,
        ) -> Result<Verdict, PluginError> {
            if let Some(text) = body.json_mut().and_then(|json| json.get_mut("text")) {
                if let Some(upper) = text.as_str().map(str::to_uppercase) {
                    *text = upper.into();
                }
            }
            Ok(Verdict::Continue)
        }

        async fn on_response(
            &self,
            cx: &mut RequestCtx,
            resp: &mut ResponseHead,
        ) -> Result<(), PluginError> {
            let route = HeaderValue::try_from(&*cx.route().name)
                .map_err(|e| PluginError::Internal(e.to_string()))?;
            resp.headers.insert("x-probe", route);
            Ok(())
        }

        fn on_response_chunk(&self, cx: &mut RequestCtx, chunk: &mut ResponseChunk) {
            let events = chunk.stream_events().map_or(0, |e| e.as_slice().len());
            let texts: Vec<String> = chunk
                .json_answer()
                .map(|a| a.texts().map(str::to_string).collect())
                .unwrap_or_default();
            let unread = events == 0 && chunk.json_answer().is_none();
            if unread && !chunk.data().is_empty() {
                let upper = chunk.data().to_ascii_uppercase();
                chunk.set_data(Bytes::from(upper));
            }
            if let Some(seen) = cx.extensions.get_mut::<Seen>() {
                seen.events += events;
                seen.answer_texts.extend(texts);
            }
        }

        async fn on_complete(&self, cx: &RequestCtx, _outcome: &Outcome) {
            if let Ok(mut completed) = self.completed.lock() {
                completed.push((cx.usage(), cx.response_model().map(str::to_string)));
            }
        }
    }

    fn probe_with(factory: &ProbeFactory) -> Arc<dyn Plugin> {
        match build_plugin(factory, "probe", "type = \"probe\"\nheader = \"x-up\"") {
            Ok(plugin) => plugin,
            Err(e) => panic!("probe: {e}"),
        }
    }

    fn probe() -> Arc<dyn Plugin> {
        probe_with(&ProbeFactory::default())
    }

    #[test]
    fn the_factory_gets_the_table_without_its_type() {
        let factory = ProbeFactory::default();
        let err = build_plugin(&factory, "p", "header = 3").unwrap_err();
        assert_eq!(err.key.as_deref(), Some("header"));
        let err = build_plugin(&factory, "p", "header = ").unwrap_err();
        assert!(
            err.message.starts_with("not a TOML table"),
            "{}",
            err.message
        );
    }

    #[test]
    fn the_request_builder_sets_the_gateways_facts() {
        let addr: SocketAddr = "192.0.2.7:4000".parse().unwrap();
        let cx = TestRequest::mcp("/mcp?x=1")
            .route("tools", "/mcp")
            .method(Method::GET)
            .header("x-user", "alice")
            .header("x-user", "bob")
            .client_addr(addr)
            .identity(identity("alice", serde_json::json!({"groups": ["a"]})))
            .mcp_request(McpRequest::default())
            .usage(3, 4)
            .response_model("m")
            .first_token_after(Duration::from_millis(5))
            .build();
        assert_eq!(cx.route().kind, RouteKind::Mcp);
        assert_eq!(
            (&*cx.route().name, &*cx.route().path_prefix),
            ("tools", "/mcp")
        );
        assert_eq!(cx.route().provider, None);
        assert_eq!(cx.method(), Method::GET);
        assert_eq!(cx.uri().query(), Some("x=1"));
        assert_eq!(cx.headers().get_all("x-user").iter().count(), 2);
        assert_eq!(cx.client_addr(), Some(addr));
        assert_eq!(cx.identity.as_ref().unwrap().claims["groups"][0], "a");
        assert!(cx.mcp().is_some() && cx.llm().is_none());
        assert_eq!(cx.usage().output_tokens, 4);
        assert_eq!(cx.response_model(), Some("m"));
        let ttft = cx.first_token_at().unwrap() - cx.started();
        assert_eq!(ttft, Duration::from_millis(5));
        let cx = TestRequest::llm("/v1/messages").build();
        assert_eq!(cx.route().provider.as_deref(), Some("anthropic"));
        assert!(!cx.usage().reported);
    }

    #[test]
    fn a_request_phase_rejects_or_edits_headers() {
        let mut exchange = TestExchange::new(probe(), TestRequest::http("/"));
        let verdict = block_on(exchange.on_request()).unwrap();
        let rejection = verdict.rejection().unwrap();
        assert_eq!(
            (rejection.kind, rejection.status),
            (RejectKind::Authentication, StatusCode::UNAUTHORIZED)
        );
        assert_eq!(rejection.reason, "probe.no_user");

        let request = TestRequest::http("/").header("x-user", "alice");
        let mut exchange = TestExchange::new(probe(), request);
        assert!(block_on(exchange.on_request()).unwrap().is_continue());
        assert_eq!(
            exchange.header_edits(),
            [("x-up".to_string(), Some("alice".to_string()))]
        );
    }

    #[tokio::test]
    async fn the_body_phase_rewrites_json() {
        let mut exchange = TestExchange::new(probe(), TestRequest::mcp("/"));
        let mut body = json_body(&serde_json::json!({"text": "hi", "n": 1}));
        assert!(exchange
            .on_request_body(&mut body)
            .await
            .unwrap()
            .is_continue());
        assert!(body.is_rewritten());
        assert_eq!(body.into_bytes(), r#"{"n":1,"text":"HI"}"#);
    }

    #[tokio::test]
    async fn a_stream_s_chunks_carry_their_events_unless_one_is_split() {
        let request = TestRequest::llm("/")
            .route("chat", "/")
            .header("x-user", "a");
        let mut exchange = TestExchange::new(probe(), request);
        exchange.on_request().await.unwrap();
        let head = exchange
            .on_response(StatusCode::OK, &[("content-type", "text/event-stream")])
            .await
            .unwrap();
        assert_eq!(head.headers["x-probe"], "chat");
        let sent = exchange.on_response_chunks([
            "event: a\ndata: {}\n\nevent: b\ndata: {}\n\n",
            "data: spl",
            "it\n\n",
            "data: {}\n\n",
        ]);
        // Two events read in the first chunk and one in the last: the split one is read by
        // nobody, so the probe upper-cases its two halves.
        assert_eq!(exchange.cx().extensions.get::<Seen>().unwrap().events, 3);
        let changed: Vec<bool> = sent.chunks.iter().map(|c| c.changed).collect();
        assert_eq!(changed, [false, true, true, false, false]);
        assert_eq!(
            sent.text(),
            "event: a\ndata: {}\n\nevent: b\ndata: {}\n\nDATA: SPLIT\n\ndata: {}\n\n"
        );
        assert!(sent.changed());
    }

    #[tokio::test]
    async fn a_json_answer_is_read_whole_at_its_end() {
        let factory = ProbeFactory::default();
        let request = TestRequest::llm("/").header("x-user", "a");
        let mut exchange = TestExchange::new(probe_with(&factory), request);
        exchange.on_request().await.unwrap();
        exchange
            .on_response(StatusCode::OK, &[("content-type", "application/json")])
            .await
            .unwrap();
        let answer = r#"{"content":[{"type":"text","text":"hello"}]}"#;
        let (head, tail) = answer.split_at(10);
        // The chunks before the end carry no reading: the probe upper-cases them.
        let sent = exchange.on_response_chunks([head, tail]);
        assert_eq!(sent.text(), answer.to_ascii_uppercase());
        let seen = exchange.cx().extensions.get::<Seen>().unwrap();
        assert_eq!(seen.answer_texts, ["\"hello\""]);
        exchange.set_usage(10, 2);
        exchange.set_response_model("m");
        exchange.on_complete(&allowed(200)).await;
        let completed = factory.0.lock().unwrap();
        assert_eq!(completed.len(), 1);
        assert_eq!(
            (completed[0].0.input_tokens, completed[0].0.output_tokens),
            (10, 2)
        );
        assert_eq!(completed[0].1.as_deref(), Some("m"));
    }
}
