//! Server requests to the client across the two eras. A 2026-07-28 server asks by answering
//! `input_required`; a 2025-era server sends its own request on the call's stream. Each bridge
//! turns one form into the other:
//!
//! - `input_required`: a 2026-07-28 server's `input_required`, answered by a 2025-era client;
//! - `replay`: a 2025-era server's requests, answered by a 2026-07-28 client through
//!   `input_required` rounds (the call is sent again, on a new session, each round).

pub(super) mod input_required;
pub(super) mod replay;

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::answer::sse_event;
use super::jsonrpc::{self, INTERNAL_ERROR};
use super::link::LinkError;

/// A client's SSE answer written by `work` (a task of its own: it waits on the client and the
/// server in turn), which sends events as they come and returns the last message; a failure
/// ends the answer with a JSON-RPC error naming the server.
fn spawn_answer<F>(
    server: Arc<str>,
    id: Value,
    work: impl FnOnce(mpsc::Sender<Bytes>) -> F,
) -> BoxStream<'static, Bytes>
where
    F: Future<Output = Result<Value, LinkError>> + Send + 'static,
{
    let (sender, receiver) = mpsc::channel(16);
    let work = work(sender.clone());
    tokio::spawn(async move {
        let last = match work.await {
            Ok(last) => last,
            Err(error) => {
                tracing::warn!(%server, %error, "bridged call failed");
                let data = json!({"reason": error.reason(), "server": &*server});
                let message = format!("MCP server `{server}` failed: {error}");
                jsonrpc::error(&id, INTERNAL_ERROR, &message, Some(data))
            }
        };
        let _ = sender.send(sse_event(&last)).await;
    });
    stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|event| (event, receiver))
    })
    .boxed()
}
