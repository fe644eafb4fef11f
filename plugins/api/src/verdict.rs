//! What a plugin decides about a request, and how the exchange ended.

use std::borrow::Cow;

use http::{HeaderName, HeaderValue, StatusCode};

/// What a request phase decided.
#[derive(Debug)]
pub enum Verdict {
    /// Go on with the next plugin, then the upstream.
    Continue,
    /// Answer the client now; the upstream sees nothing.
    Reject(Rejection),
}

impl Verdict {
    /// Whether the request goes on.
    pub fn is_continue(&self) -> bool {
        matches!(self, Verdict::Continue)
    }

    /// The rejection, if the phase refused the request.
    pub fn rejection(&self) -> Option<&Rejection> {
        match self {
            Verdict::Continue => None,
            Verdict::Reject(rejection) => Some(rejection),
        }
    }
}

/// The broad class of a rejection; the gateway maps it to each protocol's error vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectKind {
    /// Missing or bad credentials (401, Anthropic `authentication_error`).
    Authentication,
    /// Authenticated but not allowed (403, `permission_error`).
    Permission,
    /// A limit was hit (429, `rate_limit_error`).
    RateLimit,
    /// The request itself is unacceptable (400/413, `invalid_request_error`).
    InvalidRequest,
    /// The gateway or upstream failed (5xx, `api_error`).
    Api,
}

/// A refusal, rendered by the gateway in the caller's protocol.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// Error class.
    pub kind: RejectKind,
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable reason, sent as `x-tollgate-reason` (`jwt.expired`, `rbac.denied`).
    pub reason: Cow<'static, str>,
    /// Human-readable message. Must not contain secrets.
    pub message: String,
    /// JSON-RPC error code on MCP routes; defaults by kind when `None`.
    pub jsonrpc_code: Option<i64>,
    /// On MCP routes, answer with HTTP 200 and a JSON-RPC error (per-call denials).
    pub in_band: bool,
    /// Extra response headers (`retry-after`, `www-authenticate`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// What the audit log records besides the reason (a rule name); never sent to the client,
    /// never a secret or matched text.
    pub detail: Option<String>,
}

impl Rejection {
    /// A rejection with the default status of `kind`.
    pub fn new(
        kind: RejectKind,
        reason: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        let status = match kind {
            RejectKind::Authentication => StatusCode::UNAUTHORIZED,
            RejectKind::Permission => StatusCode::FORBIDDEN,
            RejectKind::RateLimit => StatusCode::TOO_MANY_REQUESTS,
            RejectKind::InvalidRequest => StatusCode::BAD_REQUEST,
            RejectKind::Api => StatusCode::BAD_GATEWAY,
        };
        Self {
            kind,
            status,
            reason: reason.into(),
            message: message.into(),
            jsonrpc_code: None,
            in_band: false,
            headers: Vec::new(),
            detail: None,
        }
    }

    /// Overrides the HTTP status.
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Sets the JSON-RPC error code used on MCP routes.
    pub fn with_jsonrpc_code(mut self, code: i64) -> Self {
        self.jsonrpc_code = Some(code);
        self
    }

    /// Sets the audit detail (e.g. the rule that matched).
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Marks a per-call denial: on MCP routes HTTP 200 with a JSON-RPC error.
    pub fn in_band(mut self) -> Self {
        self.in_band = true;
        self
    }
}

/// A plugin failure (not a refusal): the gateway answers 500 and logs it.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The plugin could not do its job (a store down, a key unreadable).
    #[error("{0}")]
    Internal(String),
}

/// How an exchange ended, given to `on_complete`.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Status sent to the client (0 if none was sent).
    pub status: u16,
    /// Allowed, or which plugin refused and why.
    pub decision: Decision,
    /// What went wrong, if anything (`upstream.timeout`, `client.disconnected`).
    pub error: Option<Cow<'static, str>>,
}

/// The chain's decision about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Every plugin let it through.
    Allowed,
    /// `plugin` refused it with `reason`.
    Rejected {
        /// The refusing plugin instance.
        plugin: String,
        /// Its reason code.
        reason: String,
        /// The rejection's audit detail (a rule name), if any.
        detail: Option<String>,
    },
    /// The gateway refused it before the chain (bad JSON, too large).
    Invalid {
        /// The reason code.
        reason: String,
    },
}
