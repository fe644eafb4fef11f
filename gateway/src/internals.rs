//! Internals exposed for this repository's benchmarks and tests, and nothing else: not part of
//! the library's API, they change without notice. Everything else below `tollgate` that is not
//! `pub` in the crate root is private to the gateway.

pub use crate::protocol::sse::SseFramer;
pub use crate::protocol::{anthropic, mcp};
pub use crate::routing::{NoRoute, Route, RouteTable};
