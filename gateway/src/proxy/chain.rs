//! Runs a route's plugin chain, phase by phase, in the route's order.

use bytes::Bytes;
use http::StatusCode;
use pingora::http::ResponseHeader;
use tollgate_plugins::{
    Outcome, PluginError, RejectKind, Rejection, RequestBody, RequestCtx, ResponseChunk,
    ResponseHead, Verdict,
};

use super::route::Route;

/// Why the chain stopped a request.
#[derive(Debug)]
pub struct Stop {
    /// The plugin instance that stopped it.
    pub plugin: String,
    /// What to answer.
    pub rejection: Rejection,
}

fn stop(plugin: &str, result: Result<Verdict, PluginError>) -> Option<Stop> {
    match result {
        Ok(Verdict::Continue) => None,
        Ok(Verdict::Reject(rejection)) => Some(Stop {
            plugin: plugin.to_string(),
            rejection,
        }),
        Err(error) => {
            tracing::error!(plugin, %error, "plugin failed");
            let rejection = Rejection::new(
                RejectKind::Api,
                "plugin.error",
                format!("plugin `{plugin}` failed"),
            )
            .with_status(StatusCode::INTERNAL_SERVER_ERROR);
            Some(Stop {
                plugin: plugin.to_string(),
                rejection,
            })
        }
    }
}

/// Request head phase.
pub async fn on_request(route: &Route, cx: &mut RequestCtx) -> Result<(), Stop> {
    for plugin in &route.chain {
        if let Some(stop) = stop(plugin.name(), plugin.on_request(cx).await) {
            return Err(stop);
        }
    }
    Ok(())
}

/// Request body phase.
pub async fn on_request_body(
    route: &Route,
    cx: &mut RequestCtx,
    body: &mut RequestBody,
) -> Result<(), Stop> {
    for plugin in &route.chain {
        if let Some(stop) = stop(plugin.name(), plugin.on_request_body(cx, body).await) {
            return Err(stop);
        }
    }
    Ok(())
}

/// Response head phase on the head the plugins edit directly (the gateway's own exchange).
/// Returns whether a plugin dropped `Content-Length` (it will change the body's length): the
/// caller frames the body (it knows whether the body is complete before the head goes out).
pub async fn on_response_head(route: &Route, cx: &mut RequestCtx, head: &mut ResponseHead) -> bool {
    let had_length = head.headers.contains_key(http::header::CONTENT_LENGTH);
    for plugin in &route.chain {
        if let Err(error) = plugin.on_response(cx, head).await {
            tracing::error!(plugin = plugin.name(), %error, "plugin failed in the response phase");
        }
    }
    had_length && !head.headers.contains_key(http::header::CONTENT_LENGTH)
}

/// Response head phase on Pingora's head (its proxy loop, `http` routes); rewrites `resp` only
/// when a route has plugins. Returns what `on_response_head` returns.
pub async fn on_response(
    route: &Route,
    cx: &mut RequestCtx,
    resp: &mut ResponseHeader,
) -> pingora::Result<bool> {
    if route.chain.is_empty() {
        return Ok(false);
    }
    let mut head = ResponseHead {
        status: resp.status,
        headers: resp.headers.clone(),
    };
    let length_dropped = on_response_head(route, cx, &mut head).await;
    if head.status != resp.status {
        resp.set_status(head.status)?;
    }
    // Apply only what the plugins changed: Pingora keeps a case map beside the header map, so
    // every header goes through its API, and rewriting them all costs more than the plugins.
    let removed: Vec<_> = resp
        .headers
        .keys()
        .filter(|name| !head.headers.contains_key(*name))
        .cloned()
        .collect();
    for name in removed {
        resp.remove_header(&name);
    }
    for name in head.headers.keys() {
        let wanted = head.headers.get_all(name);
        if wanted == resp.headers.get_all(name) {
            continue;
        }
        let mut values = wanted.iter();
        match (values.next(), values.next()) {
            // One value (a plugin's usual edit): one insert replaces whatever was there.
            (Some(value), None) => resp.insert_header(name.clone(), value.clone())?,
            _ => {
                resp.remove_header(name);
                for value in wanted {
                    resp.append_header(name.clone(), value.clone())?;
                }
            }
        }
    }
    Ok(length_dropped)
}

/// Response chunk phase (synchronous).
pub fn on_response_chunk(route: &Route, cx: &mut RequestCtx, mut chunk: ResponseChunk) -> Bytes {
    for plugin in &route.chain {
        plugin.on_response_chunk(cx, &mut chunk);
    }
    chunk.into_parts().0
}

/// Completion phase, for every plugin whatever happened.
pub async fn on_complete(route: &Route, cx: &RequestCtx, outcome: &Outcome) {
    for plugin in &route.chain {
        plugin.on_complete(cx, outcome).await;
    }
}
