//! The upstream exchange of body-inspecting (MCP and LLM) routes, stage by stage: `body` reads
//! and parses the request and runs the body phase, `send` connects and sends it, `stream`
//! streams the answer back through the response phases.
//!
//! Pingora 0.9 hands the request body to `request_body_filter` only after the upstream is
//! connected and the request head sent, and a body read in `request_filter` is not replayed
//! beyond its 64 KiB retry buffer. So for these routes tollgate reads the body whole here,
//! parses it once, runs the body phase, and only then connects with Pingora's own connector,
//! sends the (possibly rewritten) body with an exact `Content-Length`, and streams the answer
//! back chunk by chunk through the same response phases. A rejected request never opens an
//! upstream connection. Each stage answers its own refusals (`respond`) and returns `None` then.

mod body;
mod federated;
mod send;
mod source;
mod stream;

use std::sync::Arc;

use pingora::proxy::Session;
use pingora::Result;

use super::connector::UpstreamConnector;
use super::context::ProxyCtx;
use crate::routing::{Backend, Route};

/// Serves the whole exchange; the response (or an error) has been written when it returns Ok.
pub async fn serve(
    connector: &UpstreamConnector,
    session: &mut Session,
    ctx: &mut ProxyCtx,
    route: &Arc<Route>,
) -> Result<()> {
    // What runs before the answer streams, or after it, is boxed: inline, the largest of them
    // sized this future, which Pingora holds (boxed) for as long as the answer streams. Boxed,
    // an open stream holds 2.6 KiB here instead of 11.4 KiB (docs/benchmarks.md).
    let decided = Box::pin(async {
        match body::read(session, ctx, route).await? {
            Some(raw) => body::parse_and_decide(session, ctx, route, raw).await,
            None => Ok(None),
        }
    });
    let Some(body) = decided.await? else {
        return Ok(());
    };
    if let Backend::Federated(federation) = &route.backend {
        return Box::pin(federated::serve(federation, session, ctx, route, body)).await;
    }
    let body = body.into_bytes();
    let Some(mut upstream) =
        Box::pin(send::send_request(connector, session, ctx, route, body)).await?
    else {
        return Ok(());
    };
    let reusable = stream::stream_response(session, ctx, route, &mut upstream.session).await?;
    if reusable {
        Box::pin(connector.release(upstream.session, &upstream.peer)).await;
    } else {
        Box::pin(upstream.session.shutdown()).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use pingora::protocols::http::client::HttpSession;
    use pingora::protocols::http::v1::client::HttpSession as Http1Session;

    use super::*;
    use crate::lifecycle::Lifecycle;

    /// Pingora holds the exchange's future for as long as an answer streams: it must be little
    /// more than the streaming stage and the upstream connection it streams from (10,000 open
    /// streams are 10,000 of these).
    #[tokio::test]
    async fn an_open_stream_holds_little_more_than_its_streaming_stage() {
        let source = r#"
[[route]]
name = "llm"
match = { path_prefix = "/" }
upstream = { url = "http://127.0.0.1:9", kind = "llm" }
"#;
        let config =
            crate::config::load_str(Path::new("t.toml"), source, &tollgate_plugins::builtins())
                .expect("config");
        let route = config.routes.routes()[0].clone();
        let (client, _) = tokio::io::duplex(64);
        let mut session = Session::new_h1(Box::new(client));
        let mut ctx = ProxyCtx::new(Lifecycle::new().track(), None);
        let connector = UpstreamConnector::new();

        let exchange = std::mem::size_of_val(&serve(&connector, &mut session, &mut ctx, &route));
        let (upstream, _) = tokio::io::duplex(64);
        let mut upstream = HttpSession::H1(Http1Session::new(Box::new(upstream)));
        let streaming = std::mem::size_of_val(&stream::stream_response(
            &mut session,
            &mut ctx,
            &route,
            &mut upstream,
        ));
        let held = streaming + std::mem::size_of::<send::Upstream>();
        assert!(
            exchange <= held + 256,
            "the exchange's future is {exchange} bytes; streaming needs {held}"
        );
    }
}
