//! The harness shared by tollgate's end-to-end tests and benchmarks: free ports, an HTTP client,
//! polling with a deadline, a Redis server, the gateway binary run from a configuration text,
//! JWT and TLS key material, MCP and SSE client helpers, an OTLP collector, the Python SDK
//! runner and the load benchmarks' figures.
//!
//! The gateway binary's path comes from the caller (`env!("CARGO_BIN_EXE_tollgate")`): Cargo
//! only tells it to the tollgate package's own tests and benchmarks.

pub mod eventually;
pub mod gateway;
pub mod keys;
pub mod load;
pub mod mcp;
pub mod net;
pub mod openssl;
pub mod otlp;
pub mod prometheus;
pub mod python;
pub mod redis;
pub mod sse;
pub mod tls;
pub mod traffic;

pub use eventually::eventually;
pub use gateway::{check, GatewayBuilder, RunningGateway};
pub use net::{client, free_addr};
pub use prometheus::sample;
pub use redis::RedisServer;
pub use sse::SseReader;
