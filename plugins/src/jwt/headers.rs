//! Which of the client's headers never reach the upstream: the token headers (`token_from`) and
//! the claim headers (`claims_to_headers`), in every spelling an upstream may read as the same.
//!
//! Many upstream stacks (CGI and WSGI servers, uvicorn, PHP, some Node frameworks) fold `_` and
//! `-` in header names together, so a client's `x_user_id` reads as the gateway's `x-user-id`.
//! A header is stripped when its name equals a protected one with `_` taken as `-`; the client's
//! headers are scanned rather than the variants listed, because a name with n separators has 2^n
//! spellings.

use http::HeaderName;
use tollgate_plugin_api::RequestCtx;

/// The header names the plugin keeps the client from sending upstream.
#[derive(Debug, Clone, Default)]
pub struct ProtectedHeaders {
    /// Lower case (as `HeaderName` is), `_` written as `-`.
    canonical: Vec<String>,
}

impl ProtectedHeaders {
    /// Protects `names` (and their `_` spellings).
    pub fn new<'a>(names: impl IntoIterator<Item = &'a HeaderName>) -> Self {
        let mut canonical: Vec<String> = names
            .into_iter()
            .map(|name| name.as_str().replace('_', "-"))
            .collect();
        canonical.sort();
        canonical.dedup();
        Self { canonical }
    }

    /// Whether `name` is a protected header in some spelling.
    pub fn covers(&self, name: &HeaderName) -> bool {
        self.canonical.iter().any(|c| same_name(c, name.as_str()))
    }

    /// Removes from the upstream request every client header that is protected in some spelling.
    pub fn strip(&self, cx: &mut RequestCtx) {
        if self.canonical.is_empty() {
            return;
        }
        let sent: Vec<HeaderName> = cx
            .headers()
            .keys()
            .filter(|name| self.covers(name))
            .cloned()
            .collect();
        for name in sent {
            cx.upstream_headers.remove(name);
        }
    }
}

/// Whether `name` (lower case) is `canonical` with any of its `-` written as `_`.
fn same_name(canonical: &str, name: &str) -> bool {
    canonical.len() == name.len()
        && canonical
            .bytes()
            .zip(name.bytes())
            .all(|(c, n)| c == n || (c == b'-' && n == b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_plugin_api::testing::TestRequest;

    fn protected(names: &[&str]) -> ProtectedHeaders {
        let names: Vec<HeaderName> = names
            .iter()
            .map(|n| HeaderName::from_bytes(n.as_bytes()).unwrap())
            .collect();
        ProtectedHeaders::new(&names)
    }

    fn name(text: &str) -> HeaderName {
        HeaderName::from_bytes(text.as_bytes()).unwrap()
    }

    #[test]
    fn every_separator_spelling_is_covered() {
        let headers = protected(&["x-user-id", "X-Api-Key"]);
        for spelling in [
            "x-user-id",
            "x_user_id",
            "x-user_id",
            "X_User-Id",
            "x-api-key",
        ] {
            assert!(headers.covers(&name(spelling)), "{spelling}");
        }
        for other in ["x-user", "x-user-ids", "xx-user-id", "x.user.id"] {
            assert!(!headers.covers(&name(other)), "{other}");
        }
    }

    #[test]
    fn a_configured_underscore_name_covers_its_dash_spelling() {
        assert!(protected(&["x_user"]).covers(&name("x-user")));
    }

    #[test]
    fn strips_what_the_client_sent_and_nothing_else() {
        let mut cx = TestRequest::http("/")
            .header("x_user_id", "mallory")
            .header("x-user-id", "mallory")
            .header("x-other", "kept")
            .build();
        protected(&["x-user-id", "x-user-email"]).strip(&mut cx);
        let mut removed: Vec<&str> = cx
            .upstream_headers
            .iter()
            .map(|(name, value)| {
                assert!(value.is_none());
                name.as_str()
            })
            .collect();
        removed.sort_unstable();
        assert_eq!(removed, vec!["x-user-id", "x_user_id"]);
    }
}
