//! Upstream request and downstream response header handling: path rewriting, `Host`,
//! `X-Forwarded-For`, hop-by-hop headers, and the plugins' header edits.
//!
//! Two shapes of head go through here. Pingora's own proxy loop (`http` routes) hands us its
//! `RequestHeader`/`ResponseHeader`, which keep the client's header-name case in a second map
//! beside the header map; those are edited in place through Pingora's API. The gateway's own
//! exchange (MCP and LLM routes) builds its heads as plain `http` parts and converts them to
//! Pingora's types only to write them: header names then go out in lower case (Title-Case for a
//! few standard ones), which HTTP allows (names are case-insensitive, RFC 9110 §5.1), and an
//! edit is one `HeaderMap` operation instead of a name parse and two map updates.

use http::header::{ACCEPT_ENCODING, CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, Version};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::{Error, ErrorType, Result};
use tollgate_plugin_api::{RequestCtx, ResponseHead};

use crate::ip_text::ip_text;
use crate::routing::Route;

/// Hop-by-hop headers (RFC 9110 §7.6.1) that must not be forwarded. `transfer-encoding` is left
/// to the caller, which knows the body framing.
const HOP_BY_HOP: [HeaderName; 6] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("te"),
    HeaderName::from_static("trailer"),
    HeaderName::from_static("upgrade"),
];

/// Connection-specific headers removed from an upstream response.
const RESPONSE_HOP_BY_HOP: [HeaderName; 3] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The upstream of a proxied route (a federated route has none: the gateway answers it).
pub fn proxied(route: &Route) -> Result<&crate::routing::Upstream> {
    route.upstream().ok_or_else(|| {
        pingora::Error::explain(
            pingora::ErrorType::InternalError,
            "a federated route has no upstream",
        )
    })
}

/// Rewrites the client's request head for `route`'s upstream, in place (Pingora's proxy loop).
pub fn rewrite_request(req: &mut RequestHeader, route: &Route, cx: &RequestCtx) -> Result<()> {
    req.set_uri(upstream_uri(route, cx)?);
    for name in nominated_hop_by_hop(&req.headers) {
        req.remove_header(&name);
    }
    for name in &HOP_BY_HOP {
        req.remove_header(name);
    }
    req.insert_header(HOST, proxied(route)?.host_header().clone())?;
    if let Some(forwarded) = forwarded_for(cx)? {
        req.insert_header(X_FORWARDED_FOR, forwarded)?;
    }
    for (name, value) in cx.upstream_headers.iter() {
        match value {
            Some(value) => {
                req.insert_header(name.clone(), value.clone())?;
            }
            None => {
                req.remove_header(name);
            }
        }
    }
    Ok(())
}

/// The upstream request head of the gateway's own exchange: the client's head rewritten as
/// `rewrite_request` does, always HTTP/1.1 on the wire (an HTTP/2 upstream session sets its own
/// version), with a body of exactly `body_len` bytes.
pub fn upstream_request(
    client: &RequestHeader,
    route: &Route,
    cx: &RequestCtx,
    body_len: usize,
) -> Result<RequestHeader> {
    let forwarded = forwarded_for(cx)?;
    let nominated = nominated_hop_by_hop(&client.headers);
    // Room for what is added (Host, X-Forwarded-For, Content-Length, traceparent, plugins'
    // edits) without growing the map.
    let mut headers = HeaderMap::with_capacity(client.headers.len() + 8);
    for (name, value) in &client.headers {
        let replaced = *name == HOST
            || *name == CONTENT_LENGTH
            || *name == TRANSFER_ENCODING
            || (forwarded.is_some() && *name == X_FORWARDED_FOR);
        if !replaced && !HOP_BY_HOP.contains(name) && !nominated.contains(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    headers.insert(HOST, proxied(route)?.host_header().clone());
    if let Some(forwarded) = forwarded {
        headers.insert(X_FORWARDED_FOR, forwarded);
    }
    for (name, value) in cx.upstream_headers.iter() {
        match value {
            Some(value) => {
                headers.insert(name.clone(), value.clone());
            }
            None => {
                headers.remove(name);
            }
        }
    }
    headers.insert(CONTENT_LENGTH, HeaderValue::from(body_len));
    // The answer is read (usage, guards, list filters): it must come as it is.
    headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.method = client.method.clone();
    parts.uri = upstream_uri(route, cx)?;
    parts.version = Version::HTTP_11;
    parts.headers = headers;
    Ok(RequestHeader::from(parts))
}

/// The upstream path and query for this request.
fn upstream_uri(route: &Route, cx: &RequestCtx) -> Result<Uri> {
    let path_and_query = cx.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let path = proxied(route)?.upstream_path(&route.path_prefix, path_and_query);
    path.parse::<Uri>()
        .map_err(|e| Error::because(ErrorType::InternalError, "rewriting the upstream path", e))
}

/// `X-Forwarded-For` with the client's address appended, when the address is known.
fn forwarded_for(cx: &RequestCtx) -> Result<Option<HeaderValue>> {
    let Some(addr) = cx.client_addr() else {
        return Ok(None);
    };
    let previous = cx
        .headers()
        .get(X_FORWARDED_FOR)
        .and_then(|v| v.to_str().ok());
    let text = match previous {
        Some(previous) => format!("{previous}, {}", ip_text(addr.ip())),
        None => ip_text(addr.ip()),
    };
    HeaderValue::try_from(text)
        .map(Some)
        .map_err(|e| Error::because(ErrorType::InternalError, "writing X-Forwarded-For", e))
}

/// The headers the client nominated as hop-by-hop in `Connection`.
fn nominated_hop_by_hop(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect()
}

/// Removes connection-specific headers from an upstream response (Pingora's proxy loop).
pub fn clean_response(resp: &mut ResponseHeader) {
    for name in &RESPONSE_HOP_BY_HOP {
        resp.remove_header(name);
    }
}

/// Frames a response body whose length a plugin changed as chunked (Pingora's proxy loop).
pub fn frame_as_chunked(resp: &mut ResponseHeader) -> Result<()> {
    resp.insert_header(TRANSFER_ENCODING, "chunked")
}

/// The client's response head in the gateway's own exchange: the upstream's status and headers
/// as plugins see them, until it is written.
#[derive(Debug)]
pub struct ClientResponse {
    /// Status and headers; the response phase edits them in place.
    pub head: ResponseHead,
    version: Version,
    /// The upstream's reason phrase when it is not the standard one, with the status it came with.
    reason: Option<(StatusCode, String)>,
}

impl ClientResponse {
    /// The upstream's head, without its connection-specific headers.
    pub fn from_upstream(upstream: &ResponseHeader) -> Self {
        let mut headers = upstream.headers.clone();
        for name in &RESPONSE_HOP_BY_HOP {
            headers.remove(name);
        }
        let standard = upstream.status.canonical_reason();
        let reason = upstream
            .get_reason_phrase()
            .filter(|reason| Some(*reason) != standard)
            .map(|reason| (upstream.status, reason.to_owned()));
        Self {
            head: ResponseHead {
                status: upstream.status,
                headers,
            },
            // The client's framing is the gateway's: an HTTP/2 upstream's answer goes to an
            // HTTP/1.1 client as HTTP/1.1 (Pingora's HTTP/2 writer takes any version).
            version: if upstream.version == Version::HTTP_2 {
                Version::HTTP_11
            } else {
                upstream.version
            },
            reason,
        }
    }

    /// The status the client will get.
    pub fn status(&self) -> StatusCode {
        self.head.status
    }

    /// Frames the body as chunked (a plugin changed its length and it is not complete yet).
    pub fn frame_as_chunked(&mut self) {
        self.head
            .headers
            .insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
    }

    /// Whether the head says nothing of the body's length (an HTTP/2 upstream's stream, or an
    /// HTTP/1.1 body that ends with the connection).
    pub fn is_unframed(&self) -> bool {
        let headers = &self.head.headers;
        !headers.contains_key(CONTENT_LENGTH) && !headers.contains_key(TRANSFER_ENCODING)
    }

    /// Frames a body that is complete before the head goes out by its exact length: instead of
    /// the upstream's chunked framing, and instead of chunked framing after a plugin's rewrite.
    /// A transfer coding other than `chunked` (`gzip, chunked`) stays as it is: the body is
    /// coded.
    pub fn frame_complete_body(&mut self, len: usize) {
        let headers = &mut self.head.headers;
        let only_chunked = headers
            .get_all(TRANSFER_ENCODING)
            .iter()
            .all(|v| v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"chunked"));
        if only_chunked {
            headers.remove(TRANSFER_ENCODING);
            headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
        }
    }

    /// The head in Pingora's type, to write. A plugin that changed the status also changed
    /// what the reason phrase should say: then the standard one is used.
    pub fn into_header(self) -> Result<ResponseHeader> {
        let (mut parts, ()) = http::Response::new(()).into_parts();
        parts.status = self.head.status;
        parts.version = self.version;
        parts.headers = self.head.headers;
        let mut header = ResponseHeader::from(parts);
        if let Some((status, reason)) = &self.reason {
            if *status == header.status {
                header.set_reason_phrase(Some(reason))?;
            }
        }
        Ok(header)
    }
}
