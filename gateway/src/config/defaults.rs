//! Every default of the configuration file, in one place (docs/configuration.md lists them too).

use std::time::Duration;

/// Proxy listener address.
pub const LISTEN: &str = "0.0.0.0:8080";

/// Admin listener address (`/healthz`, `/readyz`, `/metrics`).
pub const ADMIN: &str = "127.0.0.1:9901";

/// Proxy worker threads.
pub const THREADS: usize = 2;

/// Unix socket for handing listeners to a new process.
pub const UPGRADE_SOCK: &str = "/tmp/tollgate_upgrade.sock";

/// Longest a client may take to send a request's head (request line and headers), from the
/// connection's start or the first byte of a later request on it.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest a client may take to send a whole request body that the gateway reads (MCP and LLM
/// routes).
pub const BODY_TIMEOUT: Duration = Duration::from_secs(60);

/// Client connections open at once, at most.
pub const MAX_CONNECTIONS: usize = 20_000;

/// The read buffer in front of each client connection's socket on a TLS listener: Pingora's
/// own default (TLS records are read a few KiB at a time; the buffer saves reads).
pub const TLS_READ_BUFFER: u64 = 64 << 10;

/// The same on a cleartext listener: none. Pingora reads heads and bodies into buffers of its
/// own, and the buffer's pages cost every connection that sent bytes about 4 KiB (measured:
/// 5 KiB per HTTP/1 stream, 2.8 KiB per slow-head connection).
pub const READ_BUFFER: u64 = 0;

/// Request body limit for MCP and LLM routes.
pub const MAX_BODY: u64 = 10 << 20;

/// After SIGTERM, how long `/readyz` fails while the gateway still serves.
pub const DRAIN_DELAY: Duration = Duration::ZERO;

/// After the listeners stop, how long requests in flight may take.
pub const GRACE_PERIOD: Duration = Duration::from_secs(30);

/// After the grace period, how long the runtimes get to stop.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the configuration and the files it names are checked for changes.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// Upstream connect timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest wait for an upstream's next bytes on `http` and `mcp` routes.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest wait for an upstream's next bytes on `llm` routes: a model may think long before its
/// first token.
pub const LLM_READ_TIMEOUT: Duration = Duration::from_secs(600);

/// Audit log destination.
pub const AUDIT_LOG: &str = "stdout";

/// Share of new traces recorded.
pub const TRACE_SAMPLE_RATIO: f64 = 1.0;

/// Most processes of one stdio MCP server alive at once.
pub const MAX_PROCESSES: usize = 32;

/// A stdio MCP server process unused this long is ended.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
