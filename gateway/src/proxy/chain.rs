//! Runs a route's plugin chain, phase by phase, in the route's order.

use bytes::Bytes;
use http::StatusCode;
use pingora::http::ResponseHeader;
use std::sync::Arc;

use tollgate_plugin_api::{
    Outcome, Plugin, PluginError, RejectKind, Rejection, RequestBody, RequestCtx, ResponseChunk,
    ResponseHead, Verdict,
};

use crate::routing::Route;

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

/// Response chunk phase (synchronous). `altered_from`, for a body the gateway reads whole (a JSON
/// answer): the first plugin that changed it in this or an earlier chunk (`usize::MAX` while none
/// has). The gateway's reading describes the upstream's bytes: the plugins after that one never
/// see it (it may hold text an earlier plugin masked). `None` for other bodies, which get no
/// reading.
pub fn on_response_chunk(
    route: &Route,
    cx: &mut RequestCtx,
    chunk: ResponseChunk,
    altered_from: Option<&mut usize>,
) -> Bytes {
    chunk_through(&route.chain, cx, chunk, altered_from)
}

fn chunk_through(
    chain: &[Arc<dyn Plugin>],
    cx: &mut RequestCtx,
    mut chunk: ResponseChunk,
    altered_from: Option<&mut usize>,
) -> Bytes {
    let Some(altered_from) = altered_from else {
        for plugin in chain {
            plugin.on_response_chunk(cx, &mut chunk);
        }
        return chunk.into_parts().0;
    };
    for (index, plugin) in chain.iter().enumerate() {
        if index > *altered_from && chunk.json_answer().is_some() {
            chunk.forget_json_answer();
        }
        plugin.on_response_chunk(cx, &mut chunk);
        // The chunk comes unchanged to the plugins ahead of the first that changed the body, so
        // the flag set is this plugin's doing.
        if index < *altered_from && chunk.is_changed() {
            *altered_from = index;
        }
    }
    chunk.into_parts().0
}

/// Completion phase, for every plugin whatever happened.
pub async fn on_complete(route: &Route, cx: &RequestCtx, outcome: &Outcome) {
    for plugin in &route.chain {
        plugin.on_complete(cx, outcome).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tollgate_plugin_api::json_answer::JsonAnswer;
    use tollgate_plugin_api::{RouteInfo, RouteKind};

    use super::*;

    /// Replaces every non-empty chunk with `[masked]` (a masking plugin).
    struct Masks;

    /// Notes, per chunk, whether it was handed the gateway's reading of the answer.
    #[derive(Default)]
    struct Looks(Mutex<Vec<bool>>);

    #[tollgate_plugin_api::async_trait]
    impl Plugin for Masks {
        fn name(&self) -> &str {
            "masks"
        }
        fn on_response_chunk(&self, _cx: &mut RequestCtx, chunk: &mut ResponseChunk) {
            if !chunk.data().is_empty() {
                chunk.set_data(Bytes::from_static(b"[masked]"));
            }
        }
    }

    /// Hands every chunk back unchanged, or another empty one (elsewhere in memory) for an
    /// empty one.
    struct Keeps;

    #[tollgate_plugin_api::async_trait]
    impl Plugin for Keeps {
        fn name(&self) -> &str {
            "keeps"
        }
        fn on_response_chunk(&self, _cx: &mut RequestCtx, chunk: &mut ResponseChunk) {
            let same = if chunk.data().is_empty() {
                let mut empty = Bytes::from_static(b"-");
                empty.truncate(0);
                empty
            } else {
                chunk.data().clone()
            };
            chunk.set_data(same);
        }
    }

    #[tollgate_plugin_api::async_trait]
    impl Plugin for Looks {
        fn name(&self) -> &str {
            "looks"
        }
        fn on_response_chunk(&self, _cx: &mut RequestCtx, chunk: &mut ResponseChunk) {
            if let Ok(mut seen) = self.0.lock() {
                seen.push(chunk.json_answer().is_some());
            }
        }
    }

    fn answer() -> ResponseChunk {
        let body = Bytes::from_static(br#"{"content":[{"type":"text","text":"a@b.io"}]}"#);
        let (reading, _) = JsonAnswer::read(body).unwrap();
        ResponseChunk::with_answer(Bytes::new(), reading)
    }

    fn cx() -> RequestCtx {
        let route = RouteInfo {
            name: "r".into(),
            kind: RouteKind::Llm,
            provider: None,
            path_prefix: "/".into(),
        };
        RequestCtx::new(
            route,
            http::Method::POST,
            http::Uri::from_static("/"),
            http::HeaderMap::new(),
        )
    }

    #[test]
    fn the_answers_reading_stops_at_the_first_plugin_that_changed_the_answer() {
        let mut cx = cx();
        let (before, after) = (Arc::new(Looks::default()), Arc::new(Looks::default()));
        let chain: Vec<Arc<dyn Plugin>> = vec![before.clone(), Arc::new(Masks), after.clone()];
        let mut altered_from = usize::MAX;
        // Nothing changed yet: every plugin gets the reading.
        chunk_through(&chain, &mut cx, answer(), Some(&mut altered_from));
        assert_eq!(altered_from, usize::MAX);
        // A chunk the masking plugin changes; from then on only the plugins up to it get it.
        let chunk = ResponseChunk::new(Bytes::from_static(b"a@b.io"), false);
        let sent = chunk_through(&chain, &mut cx, chunk, Some(&mut altered_from));
        assert_eq!(sent, "[masked]");
        assert_eq!(altered_from, 1);
        chunk_through(&chain, &mut cx, answer(), Some(&mut altered_from));
        assert_eq!(*before.0.lock().unwrap(), [true, false, true]);
        assert_eq!(*after.0.lock().unwrap(), [true, false, false]);
    }

    #[test]
    fn handing_back_the_same_bytes_or_an_empty_chunk_for_an_empty_one_is_no_change() {
        let mut cx = cx();
        let after = Arc::new(Looks::default());
        let chain: Vec<Arc<dyn Plugin>> = vec![Arc::new(Keeps), after.clone()];
        let mut altered_from = usize::MAX;
        // The answer's last chunk is empty: `Keeps` replaces it with another empty one.
        chunk_through(&chain, &mut cx, answer(), Some(&mut altered_from));
        let chunk = ResponseChunk::new(Bytes::from_static(b"a@b.io"), false);
        let sent = chunk_through(&chain, &mut cx, chunk, Some(&mut altered_from));
        assert_eq!(sent, "a@b.io");
        chunk_through(&chain, &mut cx, answer(), Some(&mut altered_from));
        assert_eq!(altered_from, usize::MAX);
        assert_eq!(*after.0.lock().unwrap(), [true, false, true]);
    }
}
