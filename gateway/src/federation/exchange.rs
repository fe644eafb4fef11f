//! One request to one server, in the server's era: the envelope or the session it needs, and
//! one retry on a fresh session when the server forgot the old one.

use std::sync::Arc;

use http::HeaderValue;
use serde_json::Value;

use super::client::{self, Client};
use super::jsonrpc;
use super::link::{Envelope, Era, LinkError, Reply, SessionRef};
use super::Federation;

impl Federation {
    /// Sends `message` (already named as the server knows it) to server `index` for `client`;
    /// the reply and the id the server got (`Null` for a notification).
    pub(super) async fn exchange(
        &self,
        client: &Client,
        index: usize,
        mut message: Value,
        own_name: Option<&str>,
        traceparent: Option<&HeaderValue>,
    ) -> Result<(Reply, Value), LinkError> {
        let link = &self.servers[index];
        let probed = link.probed().await?;
        let method = message
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if probed.era_for(client.is_modern()) == Era::Modern {
            client::put_envelope(&mut message, client.modern_envelope());
            let body = bytes::Bytes::from(message.to_string());
            let envelope = Envelope::Modern {
                method: &method,
                name: own_name,
                params: client.param_headers(),
            };
            let sent_id = message.get("id").cloned().unwrap_or(Value::Null);
            return Ok((link.post(body, envelope, traceparent).await?, sent_id));
        }
        client::drop_envelope(&mut message);
        if client.is_modern() && jsonrpc::is_request(&message) {
            // The gateway's own session serves every stateless client: their ids would collide.
            message["id"] = jsonrpc::fresh_id();
        }
        let sent_id = message.get("id").cloned().unwrap_or(Value::Null);
        let body = bytes::Bytes::from(message.to_string());
        let session = self.server_session(client, index, false).await?;
        match link
            .post(body.clone(), session.envelope(), traceparent)
            .await
        {
            Err(LinkError::SessionGone) => {
                tracing::info!(server = %link.name(), "MCP server forgot the session: opening a new one");
                if let Client::Modern { .. } = client {
                    link.drop_shared_session(&session);
                }
                let session = self.server_session(client, index, true).await?;
                let reply = link.post(body, session.envelope(), traceparent).await?;
                Ok((reply, sent_id))
            }
            other => Ok((other?, sent_id)),
        }
    }

    /// The session on (2025-era) server `index` that serves `client`; `renew` opens a new one.
    pub(super) async fn server_session(
        &self,
        client: &Client,
        index: usize,
        renew: bool,
    ) -> Result<Arc<SessionRef>, LinkError> {
        let link = &self.servers[index];
        let (id, state) = match client {
            Client::Modern { .. } => return link.shared_session().await,
            Client::Legacy { id, state } => (id, state),
        };
        let key = (id.clone(), index);
        if !renew {
            if let Some(session) = self.reopened.get(&key) {
                return Ok(session);
            }
            if let Some(sealed) = state.server(link.name()) {
                return Ok(Arc::new(SessionRef {
                    id: sealed.session.clone(),
                    version: sealed.protocol_version.clone(),
                }));
            }
        }
        let opened = link
            .open_session_at(
                &state.protocol_version,
                &state.capabilities,
                state.client_info.as_ref(),
            )
            .await?;
        let session = Arc::new(opened.session_ref());
        self.reopened.insert(key, session.clone());
        Ok(session)
    }
}
