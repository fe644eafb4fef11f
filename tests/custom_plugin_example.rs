//! The unit tests of the example operator binary (`gateway/examples/custom_plugin.rs`), run
//! with the workspace's tests: cargo runs an example's own tests only when asked
//! (`cargo test -p tollgate --example custom_plugin`).

// Its `main` is the example binary's, unused here.
#[allow(dead_code)]
#[path = "../gateway/examples/custom_plugin.rs"]
mod custom_plugin;
