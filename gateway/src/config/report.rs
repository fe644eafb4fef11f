//! The problems found after parsing, each located where the value it is about is written.

use std::ops::Range;
use std::path::Path;

use super::error::{ConfigError, ConfigErrors};

/// Collects every problem of one file, so that `tollgate check` shows them all at once.
pub(super) struct Report<'a> {
    path: &'a Path,
    source: &'a str,
    errors: Vec<ConfigError>,
}

impl<'a> Report<'a> {
    /// An empty report on `source`, read from `path`.
    pub(super) fn new(path: &'a Path, source: &'a str) -> Self {
        Self {
            path,
            source,
            errors: Vec::new(),
        }
    }

    /// A problem with the value written at byte `span`.
    pub(super) fn error(
        &mut self,
        span: Range<usize>,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        let mut error = ConfigError::new(self.path, self.source, Some(span), message);
        error.hint = hint;
        self.errors.push(error);
    }

    /// `Err` with every problem when there is any.
    pub(super) fn finish(self) -> Result<(), ConfigErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(self.errors))
        }
    }
}
