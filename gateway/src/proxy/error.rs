//! What the gateway itself refuses or fails with (a plugin's refusals are its own `Rejection`s):
//! one type with its status, reason code and class, instead of tuples and sentinel statuses.

use std::borrow::Cow;

use http::StatusCode;
use pingora::{ErrorSource, ErrorType};
use tollgate_plugin_api::{RejectKind, Rejection};

/// A refusal or failure of the gateway's own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// No route's path and host match.
    #[error("no route matches this request")]
    RouteNotFound,
    /// A route matches the path but not the method.
    #[error("this route does not take this method")]
    MethodNotAllowed,
    /// The path cannot be normalised safely.
    #[error("{0}")]
    InvalidPath(#[from] crate::routing::path::PathError),
    /// An `llm` route that does not forward this provider endpoint.
    #[error("this route does not serve this endpoint of the provider's API")]
    EndpointNotServed,
    /// The request body is over the route's `max_body` (`limit` when known before streaming).
    #[error("{}", too_large_message(.limit))]
    TooLarge {
        /// The route's limit in bytes, when the refusal names it.
        limit: Option<usize>,
    },
    /// An MCP body that is not a JSON-RPC message.
    #[error("{message}")]
    InvalidJsonRpc {
        /// The JSON-RPC error code (parse error or invalid request).
        code: i64,
        /// What is wrong with it.
        message: String,
    },
    /// A body on an MCP or LLM request that is not a POST (no plugin would judge it).
    #[error("only POST requests carry a body on this route")]
    UnexpectedBody,
    /// An LLM request body that is not a JSON object.
    #[error("the request body must be a JSON object")]
    InvalidJson,
    /// An LLM request body with an object that names a key twice (readers disagree on which
    /// one counts).
    #[error("the request body names a key twice in one object")]
    DuplicateKey,
    /// A browser request from another site to a loopback listener (DNS rebinding).
    #[error("{0}")]
    CrossOrigin(&'static str),
    /// The upstream's name does not resolve.
    #[error("{0}")]
    UpstreamUnresolved(String),
    /// The upstream did not accept the connection in time.
    #[error("the upstream did not accept the connection in time")]
    UpstreamConnectTimeout,
    /// The upstream did not answer in time.
    #[error("the upstream did not answer in time")]
    UpstreamTimeout,
    /// The upstream refused or dropped the connection.
    #[error("the upstream cannot be reached")]
    UpstreamUnavailable,
    /// The TLS handshake with the upstream failed.
    #[error("TLS with the upstream failed")]
    UpstreamTls,
    /// The upstream answered an encoded (compressed) body although asked for `identity`.
    #[error("the upstream answered compressed content, which the gateway cannot inspect")]
    UpstreamEncoded,
    /// The upstream answered with something unusable or hung up.
    #[error("the upstream failed")]
    UpstreamFailed,
    /// The client did not send its request (body) in time.
    #[error("the request did not arrive in time")]
    ClientTimeout,
    /// The client's request is not valid HTTP (a bad chunk, a bad trailer).
    #[error("the request is not valid HTTP")]
    MalformedRequest,
    /// The client went away: there is no one to answer.
    #[error("the client went away")]
    ClientGone,
    /// A fault of the gateway's own.
    #[error("internal gateway error")]
    Internal,
}

fn too_large_message(limit: &Option<usize>) -> Cow<'static, str> {
    match limit {
        Some(limit) => {
            format!("request body is larger than this route's limit of {limit} bytes").into()
        }
        None => "request body is larger than this route's limit".into(),
    }
}

/// Pingora's names for a request body that breaks HTTP/1.1 framing.
const MALFORMED_BODY: [&str; 2] = ["InvalidChunk", "InvalidTrailerEnd"];

impl GatewayError {
    /// The machine-readable reason (`x-tollgate-reason`, audit, metrics).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::RouteNotFound => "route.not_found",
            Self::MethodNotAllowed => "route.method_not_allowed",
            Self::InvalidPath(_) => "request.invalid_path",
            Self::EndpointNotServed => "route.endpoint_not_served",
            Self::TooLarge { .. } => "request.too_large",
            Self::InvalidJsonRpc { code, .. }
                if *code == crate::protocol::mcp_headers::HEADER_MISMATCH =>
            {
                "request.header_mismatch"
            }
            Self::InvalidJsonRpc { .. } => "request.invalid_jsonrpc",
            Self::InvalidJson => "request.invalid_json",
            Self::DuplicateKey => "request.duplicate_key",
            Self::UnexpectedBody => "request.unexpected_body",
            Self::CrossOrigin(_) => "request.cross_origin",
            Self::UpstreamUnresolved(_) | Self::UpstreamUnavailable => "upstream.unavailable",
            Self::UpstreamConnectTimeout => "upstream.connect_timeout",
            Self::UpstreamTimeout => "upstream.timeout",
            Self::UpstreamTls => "upstream.tls",
            Self::UpstreamFailed => "upstream.error",
            Self::UpstreamEncoded => "upstream.encoded_answer",
            Self::ClientTimeout => "request.timeout",
            Self::MalformedRequest => "request.malformed",
            Self::ClientGone => "client.disconnected",
            Self::Internal => "gateway.error",
        }
    }

    /// The HTTP status answered; `None` when there is no one to answer.
    pub fn status(&self) -> Option<StatusCode> {
        Some(match self {
            Self::RouteNotFound | Self::EndpointNotServed => StatusCode::NOT_FOUND,
            Self::InvalidPath(_) => StatusCode::BAD_REQUEST,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::InvalidJsonRpc { .. }
            | Self::InvalidJson
            | Self::DuplicateKey
            | Self::MalformedRequest
            | Self::UnexpectedBody => StatusCode::BAD_REQUEST,
            Self::ClientTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::CrossOrigin(_) => StatusCode::FORBIDDEN,
            Self::UpstreamConnectTimeout | Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::UpstreamUnresolved(_)
            | Self::UpstreamUnavailable
            | Self::UpstreamTls
            | Self::UpstreamEncoded
            | Self::UpstreamFailed => StatusCode::BAD_GATEWAY,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::ClientGone => return None,
        })
    }

    /// The class of the refusal, which picks each protocol's error type.
    pub fn kind(&self) -> RejectKind {
        match self {
            Self::RouteNotFound
            | Self::MethodNotAllowed
            | Self::InvalidPath(_)
            | Self::EndpointNotServed
            | Self::TooLarge { .. }
            | Self::InvalidJsonRpc { .. }
            | Self::InvalidJson
            | Self::DuplicateKey
            | Self::MalformedRequest
            | Self::ClientTimeout
            | Self::UnexpectedBody => RejectKind::InvalidRequest,
            Self::CrossOrigin(_) => RejectKind::Permission,
            _ => RejectKind::Api,
        }
    }

    /// The refusal to render in the caller's protocol; `None` when there is no one to answer.
    pub fn rejection(&self) -> Option<Rejection> {
        let status = self.status()?;
        let rejection = Rejection::new(self.kind(), self.reason(), self.to_string());
        Some(match self {
            Self::InvalidJsonRpc { code, .. } => rejection.with_jsonrpc_code(*code),
            _ => rejection.with_status(status),
        })
    }

    /// What a Pingora error of a failed exchange means for the client.
    pub fn from_pingora(e: &pingora::Error) -> Self {
        if e.esource() == &ErrorSource::Downstream {
            return Self::from_client(e);
        }
        match e.etype() {
            ErrorType::HTTPStatus(413) => Self::TooLarge { limit: None },
            ErrorType::ConnectTimedout | ErrorType::TLSHandshakeTimedout => {
                Self::UpstreamConnectTimeout
            }
            ErrorType::ReadTimedout | ErrorType::WriteTimedout => Self::UpstreamTimeout,
            ErrorType::ConnectRefused
            | ErrorType::ConnectNoRoute
            | ErrorType::ConnectError
            | ErrorType::SocketError => Self::UpstreamUnavailable,
            ErrorType::TLSHandshakeFailure | ErrorType::InvalidCert | ErrorType::HandshakeError => {
                Self::UpstreamTls
            }
            _ => match e.esource() {
                ErrorSource::Upstream => Self::UpstreamFailed,
                _ => Self::Internal,
            },
        }
    }

    /// What an error on the client's side of the exchange means: a slow or malformed request
    /// is the client's to hear about (408, 400), not a gateway fault (500) or an upstream's
    /// (504).
    fn from_client(e: &pingora::Error) -> Self {
        match e.etype() {
            ErrorType::HTTPStatus(413) => Self::TooLarge { limit: None },
            ErrorType::ReadTimedout => Self::ClientTimeout,
            ErrorType::InvalidHTTPHeader => Self::MalformedRequest,
            ErrorType::Custom(name) if MALFORMED_BODY.contains(name) => Self::MalformedRequest,
            _ => Self::ClientGone,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pingora_errors_map_to_the_client_facing_error() {
        let cases = [
            (
                ErrorType::ConnectTimedout,
                "upstream.connect_timeout",
                Some(504),
            ),
            (ErrorType::ReadTimedout, "upstream.timeout", Some(504)),
            (ErrorType::ConnectRefused, "upstream.unavailable", Some(502)),
            (ErrorType::InvalidCert, "upstream.tls", Some(502)),
            (ErrorType::HTTPStatus(413), "request.too_large", Some(413)),
        ];
        for (etype, reason, status) in cases {
            let error = GatewayError::from_pingora(&pingora::Error::new(etype.clone()));
            assert_eq!(error.reason(), reason, "{etype:?}");
            assert_eq!(error.status().map(|s| s.as_u16()), status, "{etype:?}");
        }
        let mut gone = pingora::Error::new(ErrorType::ReadError);
        gone.esource = ErrorSource::Downstream;
        assert_eq!(GatewayError::from_pingora(&gone), GatewayError::ClientGone);
        assert_eq!(GatewayError::ClientGone.rejection().map(|r| r.status), None);
        for (etype, reason, status) in [
            (ErrorType::ReadTimedout, "request.timeout", 408),
            (ErrorType::new("InvalidChunk"), "request.malformed", 400),
            (ErrorType::InvalidHTTPHeader, "request.malformed", 400),
            (ErrorType::HTTPStatus(413), "request.too_large", 413),
        ] {
            let mut client = pingora::Error::new(etype.clone());
            client.esource = ErrorSource::Downstream;
            let error = GatewayError::from_pingora(&client);
            assert_eq!(error.reason(), reason, "{etype:?} from the client");
            assert_eq!(error.status().map(|s| s.as_u16()), Some(status));
        }
        let mut upstream = pingora::Error::new(ErrorType::ReadError);
        upstream.esource = ErrorSource::Upstream;
        assert_eq!(
            GatewayError::from_pingora(&upstream).status(),
            Some(StatusCode::BAD_GATEWAY)
        );
    }

    #[test]
    fn invalid_jsonrpc_keeps_its_code_and_the_default_status() {
        let error = GatewayError::InvalidJsonRpc {
            code: -32700,
            message: "parse error".into(),
        };
        let rejection = error.rejection().expect("answered");
        assert_eq!(rejection.jsonrpc_code, Some(-32700));
        assert_eq!(rejection.status, StatusCode::BAD_REQUEST);
        assert_eq!(rejection.reason, "request.invalid_jsonrpc");
        assert_eq!(rejection.message, "parse error");
    }

    #[test]
    fn too_large_names_the_limit_when_known() {
        assert_eq!(
            GatewayError::TooLarge { limit: Some(10) }.to_string(),
            "request body is larger than this route's limit of 10 bytes"
        );
        assert_eq!(
            GatewayError::TooLarge { limit: None }.to_string(),
            "request body is larger than this route's limit"
        );
    }
}
