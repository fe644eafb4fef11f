//! Upstream request and downstream response header handling: path rewriting, `Host`,
//! hop-by-hop headers, and the plugins' header edits.

use http::header::{CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::HeaderName;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::Result;
use tollgate_plugins::RequestCtx;

use super::route::Route;
use crate::ip_text::ip_text;

/// Hop-by-hop headers (RFC 9110 §7.6.1) that must not be forwarded. `transfer-encoding` is left
/// to the caller, which knows the body framing.
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

/// Rewrites the client's request head for `route`'s upstream, in place.
pub fn rewrite_request(req: &mut RequestHeader, route: &Route, cx: &RequestCtx) -> Result<()> {
    let path_and_query = cx.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let path = route
        .upstream
        .upstream_path(&route.path_prefix, path_and_query);
    let uri = path.parse::<http::Uri>().map_err(|e| {
        pingora::Error::because(
            pingora::ErrorType::InternalError,
            "rewriting the upstream path",
            e,
        )
    })?;
    req.set_uri(uri);
    remove_hop_by_hop(req)?;
    req.insert_header(HOST, route.upstream.authority())?;
    if let Some(addr) = cx.client_addr {
        let forwarded = match cx
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
        {
            Some(previous) => format!("{previous}, {}", ip_text(addr.ip())),
            None => ip_text(addr.ip()),
        };
        req.insert_header("x-forwarded-for", forwarded)?;
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

/// Sets a fixed-length body framing of `len` bytes on an upstream request.
pub fn set_body_length(req: &mut RequestHeader, len: usize) -> Result<()> {
    req.remove_header(&TRANSFER_ENCODING);
    req.insert_header(CONTENT_LENGTH, len.to_string())?;
    Ok(())
}

/// Frames a response body whose length a plugin changed as chunked.
pub fn frame_as_chunked(resp: &mut ResponseHeader) -> Result<()> {
    resp.insert_header(TRANSFER_ENCODING, "chunked")
}

/// Removes hop-by-hop headers, including those the client nominated in `Connection`.
fn remove_hop_by_hop(req: &mut RequestHeader) -> Result<()> {
    let nominated: Vec<HeaderName> = req
        .headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in nominated {
        req.remove_header(&name);
    }
    for name in HOP_BY_HOP {
        req.remove_header(name);
    }
    Ok(())
}

/// Removes connection-specific headers from an upstream response before it goes downstream.
pub fn clean_response(resp: &mut ResponseHeader) {
    for name in ["connection", "keep-alive", "proxy-connection"] {
        resp.remove_header(name);
    }
}
