//! Configuration loading through the library: what a valid file turns into, the located errors of
//! invalid ones (snapshots under `snapshots/`, reviewed with `cargo insta review` or by reading
//! the `.snap` files), and route matching on a loaded table.

use std::time::Duration;

use http::Method;
use tollgate_plugin_api::RouteKind;

use super::test_support::load_as;
use super::{ConfigErrors, RuntimeConfig};
use crate::routing::NoRoute;

fn load(source: &str) -> Result<RuntimeConfig, ConfigErrors> {
    load_as("tollgate.toml", source)
}

/// The error report of `source`, as `tollgate check` prints it.
fn errors(source: &str) -> String {
    match load(source) {
        Ok(_) => panic!("the configuration loaded:\n{source}"),
        Err(errors) => errors.to_string(),
    }
}

/// Snapshots the errors of `source`; the snapshot's header shows the source, so that a reviewer
/// can check each `line:column` against it.
macro_rules! assert_errors {
    ($source:expr) => {{
        let source: &str = $source;
        insta::with_settings!({ description => source, omit_expression => true }, {
            insta::assert_snapshot!(errors(source));
        });
    }};
}

#[test]
fn a_valid_configuration_loads_with_its_defaults() {
    let config = load(
        r#"[server]
listen = "127.0.0.1:8080"
threads = 2

[plugin.tools]
type = "mcp-rbac"
default = "allow"

[[route]]
name = "mcp"
match = { path_prefix = "/mcp", methods = ["post", "GET"] }
upstream = { url = "http://127.0.0.1:9/mcp", kind = "mcp" }
plugins = ["tools"]

[[route]]
name = "llm"
match = { path_prefix = "/anthropic", host = "Gateway.Example" }
upstream = { url = "https://api.example:8443", kind = "llm", strip_prefix = true, timeout = "90s" }
max_body = "2MiB"
"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.server.listen, "127.0.0.1:8080");
    assert_eq!(config.server.threads, 2);
    assert_eq!(config.server.grace_period, Duration::from_secs(30));
    assert_eq!(config.server.watch_interval, Some(Duration::from_secs(2)));
    assert_eq!(config.server.read_buffer, 0, "none without TLS");
    assert_eq!(config.plugins.len(), 1);

    let mcp = config.routes.find(None, &Method::GET, "/mcp").unwrap();
    assert_eq!(mcp.info.kind, RouteKind::Mcp);
    assert_eq!(mcp.methods, [Method::POST, Method::GET]);
    assert_eq!(mcp.max_body, 10 << 20, "the default body limit");
    assert_eq!(mcp.chain.len(), 1);

    let llm = config
        .routes
        .find(Some("gateway.example"), &Method::POST, "/anthropic/v1")
        .unwrap();
    assert_eq!(llm.info.kind, RouteKind::Llm);
    assert_eq!(llm.info.provider.as_deref(), Some("anthropic"));
    assert_eq!(llm.host.as_deref(), Some("gateway.example"));
    assert_eq!(llm.max_body, 2 << 20);
    assert!(llm.chain.is_empty());
}

#[test]
fn toml_syntax_error_is_located() {
    assert_errors!(
        r#"[[route]]
name = "a"
match = { path_prefix = "/a" }
upstream = { url = "http://127.0.0.1:9"
"#
    );
}

#[test]
fn the_client_read_buffer_can_be_set_or_turned_off_but_not_made_huge() {
    let with = |value: &str| format!("[server]\nread_buffer = {value}\n");
    let off = load(&with("0")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(off.server.read_buffer, 0);
    let small = load(&with("\"16KiB\"")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(small.server.read_buffer, 16 << 10);
    let huge = errors(&with("\"2MiB\""));
    assert!(
        huge.contains("tollgate.toml:2:15: read_buffer must be at most 1MiB"),
        "{huge}"
    );
}

#[test]
fn unknown_key() {
    assert_errors!(
        r#"[server]
listen = "127.0.0.1:1"
listen_port = 3
"#
    );
}

#[test]
fn unknown_plugin_type() {
    assert_errors!(
        r#"[plugin.guard]
type = "prompt-gaurd"
"#
    );
}

#[test]
fn undefined_plugin_on_a_route() {
    assert_errors!(
        r#"[plugin.tools]
type = "mcp-rbac"

[[route]]
name = "a"
match = { path_prefix = "/a" }
upstream = { url = "http://127.0.0.1:9" }
plugins = ["tools", "limits"]
"#
    );
}

#[test]
fn duplicate_route_name() {
    assert_errors!(
        r#"[[route]]
name = "api"
match = { path_prefix = "/a" }
upstream = { url = "http://127.0.0.1:9" }

[[route]]
name = "api"
match = { path_prefix = "/b" }
upstream = { url = "http://127.0.0.1:9" }
"#
    );
}

#[test]
fn bad_path_prefix() {
    assert_errors!(
        r#"[[route]]
name = "a"
match = { path_prefix = "api" }
upstream = { url = "http://127.0.0.1:9" }
"#
    );
}

#[test]
fn bad_method() {
    assert_errors!(
        r#"[[route]]
name = "a"
match = { path_prefix = "/a", methods = ["GET", "NOT A METHOD"] }
upstream = { url = "http://127.0.0.1:9" }
"#
    );
}

#[test]
fn bad_upstream_url() {
    assert_errors!(
        r#"[[route]]
name = "ftp"
match = { path_prefix = "/a" }
upstream = { url = "ftp://files.example" }

[[route]]
name = "query"
match = { path_prefix = "/b" }
upstream = { url = "http://127.0.0.1:9/x?y=1" }
"#
    );
}

#[test]
fn bad_duration_unit() {
    assert_errors!(
        r#"[[route]]
name = "a"
match = { path_prefix = "/a" }
upstream = { url = "http://127.0.0.1:9", timeout = "10 parsecs" }
"#
    );
}

#[test]
fn bad_size_unit() {
    assert_errors!(
        r#"[[route]]
name = "a"
match = { path_prefix = "/a" }
upstream = { url = "http://127.0.0.1:9" }
max_body = "5 furlongs"
"#
    );
}

#[test]
fn plugin_config_error_is_located_at_its_key() {
    assert_errors!(
        r#"[plugin.limit]
type = "token-ratelimit"
unit = "requests"
key = "cookie:session"
max_tokens = 10
refill_tokens = 1
refill_interval = "1s"
"#
    );
}

#[test]
fn several_errors_are_reported_at_once() {
    assert_errors!(
        r#"[server]
threads = 0

[telemetry]
otlp_protocol = "thrift"

[plugin.guard]
type = "prompt-gaurd"

[[route]]
name = "a"
match = { path_prefix = "a", methods = ["G T"] }
upstream = { url = "ftp://x" }
plugins = ["missing"]

[[route]]
name = "a"
match = { path_prefix = "/b" }
upstream = { url = "http://127.0.0.1:9", kind = "mcp", provider = "anthropic" }
"#
    );
}

/// Routes of the matching tests: each answers with its name.
const ROUTES: &str = r#"[[route]]
name = "root"
match = { path_prefix = "/" }
upstream = { url = "http://127.0.0.1:9" }

[[route]]
name = "api"
match = { path_prefix = "/api" }
upstream = { url = "http://127.0.0.1:9" }

[[route]]
name = "api-v2"
match = { path_prefix = "/api/v2" }
upstream = { url = "http://127.0.0.1:9" }

[[route]]
name = "files"
match = { path_prefix = "/files/" }
upstream = { url = "http://127.0.0.1:9" }

[[route]]
name = "internal-api"
match = { path_prefix = "/api", host = "internal.example" }
upstream = { url = "http://127.0.0.1:9" }

[[route]]
name = "read-only"
match = { path_prefix = "/reports", methods = ["GET", "HEAD"] }
upstream = { url = "http://127.0.0.1:9" }

[[route]]
name = "upload"
match = { path_prefix = "/upload", methods = ["POST"] }
upstream = { url = "http://127.0.0.1:9" }

[[route]]
name = "upload-v2"
match = { path_prefix = "/upload/v2", methods = ["PUT"] }
upstream = { url = "http://127.0.0.1:9" }
"#;

/// The name of the route `ROUTES` picks for the request, or why there is none.
fn route(config: &RuntimeConfig, host: Option<&str>, method: Method, path: &str) -> String {
    match config.routes.find(host, &method, path) {
        Ok(route) => route.info.name.to_string(),
        Err(NoRoute::NotFound) => "404".into(),
        Err(NoRoute::MethodNotAllowed) => "405".into(),
    }
}

fn routes() -> RuntimeConfig {
    load(ROUTES).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_longest_prefix_wins() {
    let config = routes();
    let get = |path| route(&config, None, Method::GET, path);
    assert_eq!(get("/api/v2/items"), "api-v2");
    assert_eq!(get("/api/v2"), "api-v2");
    assert_eq!(get("/api/v1/items"), "api");
    assert_eq!(get("/elsewhere"), "root");
}

#[test]
fn prefixes_match_whole_path_segments() {
    let config = routes();
    let get = |path| route(&config, None, Method::GET, path);
    assert_eq!(get("/api"), "api");
    assert_eq!(get("/api/"), "api");
    assert_eq!(get("/apix"), "root", "`/apix` is not under `/api`");
    assert_eq!(get("/api/v2x"), "api", "`/api/v2x` is not under `/api/v2`");
    assert_eq!(get("/files/a.txt"), "files");
    assert_eq!(get("/files"), "root", "`/files/` needs its slash");
}

#[test]
fn host_specific_routes_come_before_any_host_routes() {
    let config = routes();
    let at = |host| route(&config, host, Method::GET, "/api/items");
    assert_eq!(at(Some("internal.example")), "internal-api");
    assert_eq!(
        at(Some("Internal.Example:8443")),
        "internal-api",
        "the host is matched without its port, in any case"
    );
    assert_eq!(at(Some("public.example")), "api");
    assert_eq!(at(None), "api");
    assert_eq!(
        route(&config, Some("internal.example"), Method::GET, "/api/v2"),
        "api-v2",
        "a longer prefix still wins over a host"
    );
}

#[test]
fn a_method_not_taken_is_405_unless_another_route_takes_it() {
    let config = routes();
    let call = |method, path| route(&config, None, method, path);
    assert_eq!(call(Method::GET, "/reports/q3"), "read-only");
    assert_eq!(call(Method::HEAD, "/reports/q3"), "read-only");
    // A route that refuses the method leaves the request to a shorter prefix that takes it.
    assert_eq!(call(Method::DELETE, "/reports/q3"), "root");
    assert_eq!(call(Method::PUT, "/upload/v2/x"), "upload-v2");
    assert_eq!(call(Method::POST, "/upload/v2/x"), "upload");

    let without_root = load(&ROUTES.replacen("path_prefix = \"/\"", "path_prefix = \"/r\"", 1))
        .unwrap_or_else(|e| panic!("{e}"));
    let call = |method, path| route(&without_root, None, method, path);
    assert_eq!(call(Method::DELETE, "/reports/q3"), "405");
    assert_eq!(call(Method::GET, "/upload/v2/x"), "405");
    assert_eq!(call(Method::DELETE, "/nowhere"), "404");
}
