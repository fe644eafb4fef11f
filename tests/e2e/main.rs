//! End-to-end tests: the real gateway binary on loopback, real upstream servers, real clients.

mod common;

mod admin_and_routing;
mod admin_api;
mod anthropic;
mod api_key;
mod audit;
mod bad_input;
mod body_phase;
mod budget;
mod check;
mod demo;
mod federation;
mod guard;
mod hardening;
mod jwt;
mod mcp;
mod metrics;
mod ratelimit;
mod rbac;
mod reload;
mod shutdown;
mod stdio;
mod streaming;
mod tls;
mod tool_pin;
mod traces;
mod upstream_pool;
