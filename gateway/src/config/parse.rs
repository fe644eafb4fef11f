//! Reading the file into the schema: TOML syntax and type errors, located.

use std::path::Path;

use super::error::{ConfigError, ConfigErrors};
use super::schema::ConfigFile;

/// Parses `source` into the schema.
pub(super) fn parse(path: &Path, source: &str) -> Result<ConfigFile, ConfigErrors> {
    toml::from_str(source).map_err(|e| {
        ConfigErrors(vec![ConfigError::new(
            path,
            source,
            e.span(),
            e.message().trim().to_string(),
        )])
    })
}
