//! One plugin instance's connection to Redis, shared by its requests: opened at first use,
//! re-established by the connection manager, and every call bounded in time (a store that does
//! not answer must not hold a request; each plugin decides what its failure means).

use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

/// A lazily opened, time-bounded Redis connection.
pub struct RedisLink {
    client: redis::Client,
    connection: OnceCell<ConnectionManager>,
    timeout: Duration,
}

impl RedisLink {
    /// A link to `url` whose calls give up after `timeout` (twice that for the first, which
    /// connects).
    pub fn new(url: &str, timeout: Duration) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("bad Redis URL: {e}"))?;
        Ok(Self {
            client,
            connection: OnceCell::new(),
            timeout,
        })
    }

    /// The connection, opened at the first call.
    pub async fn connection(&self) -> Result<ConnectionManager, String> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1);
        self.connection
            .get_or_try_init(|| ConnectionManager::new_with_config(self.client.clone(), config))
            .await
            .cloned()
            .map_err(|e| e.to_string())
    }

    /// `work` within twice the timeout (a connection attempt, then the command).
    pub async fn within<T>(
        &self,
        work: impl Future<Output = Result<T, String>>,
    ) -> Result<T, String> {
        tokio::time::timeout(self.timeout * 2, work)
            .await
            .map_err(|_| "Redis did not answer in time".to_string())?
    }
}
