//! Internals exposed for this repository's benchmarks, tests and fuzz targets (`fuzz/`), and
//! nothing else: not part of the library's API, they change without notice. Everything else below
//! `tollgate` that is not `pub` in the crate root is private to the gateway.

pub use crate::protocol::observer::ResponseObserver;
pub use crate::protocol::sse::SseFramer;
pub use crate::protocol::{anthropic, mcp, mcp_headers, mcp_param_headers};
pub use crate::routing::path;
pub use crate::routing::{NoRoute, Route, RouteTable};
