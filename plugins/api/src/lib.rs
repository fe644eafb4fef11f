//! The tollgate plugin SDK: what a plugin author needs, and nothing of the gateway that runs the
//! plugins.
//!
//! A plugin is a shared, immutable object (`Arc<dyn Plugin>`) built once per configuration load
//! by a [`PluginFactory`]. The gateway calls its phases for every request on the routes that name
//! it; per-request state lives in the [`RequestCtx`]. Operators write their own plugins against
//! the same trait the built-in plugins (crate `tollgate-plugins`) use and register their factory
//! in a [`PluginRegistry`]. The [`testing`] module runs a plugin's phases without a gateway.

#![warn(missing_docs)]

pub mod admin;
pub mod config;
mod context;
mod extensions;
pub mod files;
pub mod gauges;
mod header_edits;
#[doc(hidden)]
pub mod host;
pub mod json_answer;
pub mod limits;
pub mod mcp_method;
pub mod name_pattern;
mod plugin;
pub mod protocol_error;
pub mod request;
pub mod secret_source;
pub mod sse;
pub mod stream_events;
pub mod testing;
pub mod trace;
pub mod units;
mod verdict;
mod views;

pub use admin::{AdminRequest, AdminResponse};
pub use config::PluginConfigError;
pub use context::{Identity, RequestCtx, RouteInfo, RouteKind};
pub use extensions::Extensions;
pub use gauges::Gauge;
pub use header_edits::HeaderEdits;
pub use json_answer::JsonAnswer;
pub use mcp_method::McpMethod;
pub use name_pattern::{NamePattern, NamePatternError};
pub use plugin::{Plugin, PluginFactory, PluginRegistry};
pub use request::{LlmRequest, McpMessage, McpRequest, Usage};
pub use sse::EventScanner;
pub use stream_events::StreamEvents;
pub use trace::TraceCtx;
pub use verdict::{Decision, Outcome, PluginError, RejectKind, Rejection, Verdict};
pub use views::{RequestBody, ResponseChunk, ResponseHead};

/// Re-exported so that plugin crates use the same versions as the gateway.
pub use async_trait::async_trait;
pub use bytes;
pub use http;
pub use secrecy;
pub use serde_json;
pub use toml;
