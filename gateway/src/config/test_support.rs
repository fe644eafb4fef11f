//! What the unit tests of this module share: loading a file and reading its errors.

use std::path::Path;

use super::{ConfigErrors, RuntimeConfig};

/// Loads `source` as the file `name`, with the built-in plugins.
pub(super) fn load_as(name: &str, source: &str) -> Result<RuntimeConfig, ConfigErrors> {
    super::load_str(Path::new(name), source, &tollgate_plugins::builtins())
}

/// Every error of `source`, loaded as `t.toml` with the built-in plugins, as `tollgate check`
/// prints it (without the `error: ` prefix and hints).
pub(super) fn errors(source: &str) -> Vec<String> {
    match load_as("t.toml", source) {
        Ok(_) => panic!("loaded:\n{source}"),
        Err(errors) => errors
            .0
            .iter()
            .map(|e| e.to_string())
            .map(first_line)
            .collect(),
    }
}

fn first_line(text: String) -> String {
    text.lines().next().unwrap_or_default().to_string()
}
