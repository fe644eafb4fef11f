//! The route table: what the configuration resolves a `[[route]]` into (matching, the upstream,
//! the plugin chain) and what the proxy looks requests up in. `config` builds it, `proxy` reads
//! it; it knows neither.

pub mod endpoints;
pub mod path;
pub mod route;
pub mod upstream;

pub use route::{Backend, NoRoute, Route, RouteTable};
pub use upstream::{Upstream, UpstreamOptions};
