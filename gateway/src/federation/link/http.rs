//! Streamable HTTP toward a server: POST a message, GET its stream, DELETE a session.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};

use super::events::{failed, read_whole, EventStream};
use super::{Envelope, LinkError, Reply, ReplyBody};
use crate::federation::spec::HttpEndpoint;
use crate::protocol::mcp_headers::{self, MODERN_VERSION};

/// The HTTP side of a link.
pub(super) struct HttpTransport {
    client: reqwest::Client,
    url: reqwest::Url,
    headers: HeaderMap,
    timeout: Duration,
}

impl HttpTransport {
    /// A client of `endpoint`; fails only when its CA bundle is not PEM.
    pub(super) fn new(
        endpoint: &HttpEndpoint,
        timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            // The gateway decides about every answer: redirects are not followed.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = &endpoint.ca_pem {
            for cert in reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| format!("the CA file is not PEM: {e}"))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder
            .build()
            .map_err(|e| format!("cannot make the HTTP client: {e}"))?;
        Ok(Self {
            client,
            url: endpoint.url.clone(),
            headers: endpoint.headers.clone(),
            timeout,
        })
    }

    /// POSTs one message and reads the answer's head (and a JSON body whole).
    pub(super) async fn post(
        &self,
        body: Bytes,
        envelope: Envelope<'_>,
        traceparent: Option<&HeaderValue>,
    ) -> Result<Reply, LinkError> {
        let mut request = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json, text/event-stream");
        if let Some(traceparent) = traceparent {
            request = request.header("traceparent", traceparent.clone());
        }
        let sent_session = match envelope {
            Envelope::Modern {
                method,
                name,
                params,
            } => {
                request = request
                    .header(mcp_headers::PROTOCOL_VERSION, MODERN_VERSION)
                    .header(mcp_headers::METHOD, method);
                if let Some(params) = params {
                    request = request.headers(params.clone());
                }
                if let Some(name) = name {
                    request = request.header(mcp_headers::NAME, mcp_headers::encode_value(name));
                }
                false
            }
            Envelope::Legacy { session, version } => {
                if let Some(session) = session {
                    request = request.header(mcp_headers::SESSION_ID, session);
                }
                if let Some(version) = version {
                    request = request.header(mcp_headers::PROTOCOL_VERSION, version);
                }
                session.is_some()
            }
        };
        let timeout = self.timeout;
        let response = tokio::time::timeout(timeout, request.body(body).send())
            .await
            .map_err(|_| LinkError::Timeout(timeout))?
            .map_err(failed)?;
        let status = response.status();
        let session = response
            .headers()
            .get(mcp_headers::SESSION_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if status == StatusCode::NOT_FOUND && sent_session {
            return Err(LinkError::SessionGone);
        }
        let content_type = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let body = if content_type.starts_with("text/event-stream") && status.is_success() {
            ReplyBody::Stream(EventStream::sse(response, Some(timeout)))
        } else if content_type.starts_with("application/json") {
            ReplyBody::Json(read_whole(response, timeout).await?)
        } else if status.is_success() {
            ReplyBody::Empty
        } else {
            return Err(LinkError::Status(status.as_u16()));
        };
        Ok(Reply {
            status,
            session,
            body,
        })
    }

    /// Ends a session on the server (DELETE); failures are only logged.
    pub(super) async fn end_session(&self, server: &str, session: &str, version: &str) {
        let request = self
            .client
            .delete(self.url.clone())
            .headers(self.headers.clone())
            .header(mcp_headers::SESSION_ID, session)
            .header(mcp_headers::PROTOCOL_VERSION, version)
            .send();
        match tokio::time::timeout(self.timeout, request).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                let e = e.without_url();
                tracing::debug!(%server, error = %e, "DELETE failed");
            }
            Err(_) => tracing::debug!(%server, "DELETE timed out"),
        }
    }

    /// Opens the server's stream of messages outside requests (GET) on `session`.
    pub(super) async fn listen(
        &self,
        session: &str,
        version: &str,
    ) -> Result<EventStream, LinkError> {
        let request = self
            .client
            .get(self.url.clone())
            .headers(self.headers.clone())
            .header(http::header::ACCEPT, "text/event-stream")
            .header(mcp_headers::SESSION_ID, session)
            .header(mcp_headers::PROTOCOL_VERSION, version)
            .send();
        let timeout = self.timeout;
        let response = tokio::time::timeout(timeout, request)
            .await
            .map_err(|_| LinkError::Timeout(timeout))?
            .map_err(failed)?;
        match response.status() {
            StatusCode::OK => Ok(EventStream::sse(response, None)),
            StatusCode::NOT_FOUND => Err(LinkError::SessionGone),
            other => Err(LinkError::Status(other.as_u16())),
        }
    }
}
