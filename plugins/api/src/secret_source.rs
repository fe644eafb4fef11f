//! Secrets read from the environment or a file (e.g. a mounted Kubernetes Secret), kept out of
//! every `Debug` and `Display` output.
//!
//! A loaded secret is a [`SecretString`]: its `Debug` is redacted, it has no `Display`, and its
//! memory is zeroed when dropped. Read it with [`ExposeSecret::expose_secret`] only where it is
//! sent, so that every other use stays visible in review.

use serde::Deserialize;

pub use secrecy::{ExposeSecret, SecretString};

use crate::config::PluginConfigError;

/// Where a secret comes from, as written in the configuration.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum SecretSource {
    /// An environment variable, read at configuration load.
    Env(String),
    /// A file, read at configuration load; one trailing newline is dropped.
    File(String),
}

impl SecretSource {
    /// Reads the secret now. Errors name the variable or file, never the value.
    pub fn load(&self, key: &str) -> Result<SecretString, PluginConfigError> {
        let value = match self {
            SecretSource::Env(var) => std::env::var(var).map_err(|_| {
                PluginConfigError::at(
                    key,
                    format!("environment variable `{var}` is not set or not UTF-8"),
                )
            })?,
            SecretSource::File(path) => crate::files::read_limited_string(
                std::path::Path::new(path),
                crate::files::MAX_SECRET_FILE,
            )
            .map_err(|e| {
                PluginConfigError::at(key, format!("cannot read secret file `{path}`: {e}"))
            })?,
        };
        let value = value.strip_suffix('\n').unwrap_or(&value);
        let value = value.strip_suffix('\r').unwrap_or(value);
        if value.is_empty() {
            return Err(PluginConfigError::at(
                key,
                format!("the secret from {} is empty", self.describe()),
            ));
        }
        Ok(SecretString::from(value))
    }

    /// The file this secret is read from, if it comes from one (for
    /// [`Plugin::watched_files`](crate::Plugin::watched_files)).
    pub fn file(&self) -> Option<std::path::PathBuf> {
        match self {
            SecretSource::Env(_) => None,
            SecretSource::File(path) => Some(std::path::PathBuf::from(path)),
        }
    }

    fn describe(&self) -> String {
        match self {
            SecretSource::Env(var) => format!("environment variable `{var}`"),
            SecretSource::File(path) => format!("file `{path}`"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let var = "TOLLGATE_TEST_SECRET_DEBUG";
        std::env::set_var(var, "sk-ant-very-secret");
        let secret = SecretSource::Env(var.into()).load("value").unwrap();
        assert_eq!(secret.expose_secret(), "sk-ant-very-secret");
        assert!(!format!("{secret:?}").contains("very-secret"));
    }

    #[test]
    fn file_source_drops_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "abc\n").unwrap();
        let source = SecretSource::File(path.display().to_string());
        assert_eq!(source.load("value").unwrap().expose_secret(), "abc");
    }

    #[test]
    fn only_a_file_source_names_a_file() {
        assert_eq!(
            SecretSource::File("/run/secrets/key".into()).file(),
            Some(std::path::PathBuf::from("/run/secrets/key"))
        );
        assert_eq!(SecretSource::Env("KEY".into()).file(), None);
    }

    #[test]
    fn missing_env_names_the_variable() {
        let err = SecretSource::Env("TOLLGATE_TEST_SURELY_UNSET".into())
            .load("value")
            .unwrap_err();
        assert!(err.message.contains("TOLLGATE_TEST_SURELY_UNSET"));
        assert_eq!(err.key.as_deref(), Some("value"));
    }
}
