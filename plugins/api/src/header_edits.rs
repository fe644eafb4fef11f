//! Header changes plugins ask for on the upstream request.

use std::fmt;

use http::{HeaderName, HeaderValue};

/// Header changes to apply to the upstream request, in order. Applied after the chain ran, so a
/// later plugin (e.g. `secret-injection`) wins over an earlier one.
#[derive(Default, Clone)]
pub struct HeaderEdits {
    edits: Vec<(HeaderName, Option<HeaderValue>)>,
}

impl HeaderEdits {
    /// Sets `name` to `value`, replacing what the client sent.
    #[inline]
    pub fn set(&mut self, name: HeaderName, value: HeaderValue) {
        self.edits.push((name, Some(value)));
    }

    /// Removes `name` from the upstream request.
    #[inline]
    pub fn remove(&mut self, name: HeaderName) {
        self.edits.push((name, None));
    }

    /// The edits in order: `Some` sets, `None` removes.
    #[inline]
    pub fn iter(&self) -> impl Iterator<Item = (&HeaderName, Option<&HeaderValue>)> {
        self.edits.iter().map(|(n, v)| (n, v.as_ref()))
    }

    /// Whether there are no edits.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.edits.is_empty()
    }
}

// Values may be credentials: show only the header names.
impl fmt::Debug for HeaderEdits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.edits
                    .iter()
                    .map(|(n, v)| (n.as_str(), if v.is_some() { "set" } else { "removed" })),
            )
            .finish()
    }
}
