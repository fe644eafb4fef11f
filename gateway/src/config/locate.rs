//! Finds where a key of the configuration is written, for located error messages.

use std::ops::Range;

use toml::de::{DeTable, DeValue};

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, Copy)]
pub enum Step<'a> {
    /// A key of a table.
    Key(&'a str),
    /// An element of an array (or of an array of tables such as `[[route]]`).
    Index(usize),
}

/// The parsed document with spans, kept only while loading.
pub struct Locator<'i> {
    root: Option<DeValue<'i>>,
}

impl<'i> Locator<'i> {
    /// Parses `source`; a document that does not parse locates nothing.
    pub fn new(source: &'i str) -> Self {
        Self {
            root: DeTable::parse(source)
                .ok()
                .map(|t| DeValue::Table(t.into_inner())),
        }
    }

    /// The byte span of the value at `path`, or of the deepest ancestor that exists.
    pub fn span(&self, path: &[Step<'_>]) -> Option<Range<usize>> {
        let mut current = self.root.as_ref()?;
        let mut span = None;
        for step in path {
            let next = match step {
                Step::Key(key) => current.get(*key),
                Step::Index(index) => current.get(*index),
            };
            match next {
                Some(value) => {
                    span = Some(value.span());
                    current = value.get_ref();
                }
                None => break,
            }
        }
        span
    }
}
