//! What the end-to-end tests share beyond `tollgate-testkit`: the binaries under test, the
//! recording test upstream, tokens minted through `tollgate::token`, and the plugin-warning
//! check.

pub mod mcp_script;
pub mod tokens;
pub mod upstream;
pub mod warnings;

use std::path::PathBuf;

use tollgate_testkit::GatewayBuilder;

/// Path of the stock binary.
pub fn tollgate_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tollgate"))
}

/// Path of the `custom_plugin` example binary (built by `cargo test` alongside the tests).
pub fn example_bin() -> PathBuf {
    let bin = tollgate_bin();
    let dir = bin.parent().expect("binary dir");
    let path = dir.join("examples").join("custom_plugin");
    assert!(
        path.exists(),
        "example binary missing at {} (cargo test builds examples)",
        path.display()
    );
    path
}

/// The stock binary with `routes_and_plugins` (TOML without `[server]`).
pub fn gateway(routes_and_plugins: &str) -> GatewayBuilder {
    GatewayBuilder::new(tollgate_bin(), routes_and_plugins)
}
