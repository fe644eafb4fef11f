//! `match` of a route: which requests it takes.

use http::Method;

use super::report::Report;
use super::schema::MatchSection;

/// A route's match, checked.
pub(super) struct Matcher {
    /// Path prefix, starting with `/`.
    pub path_prefix: String,
    /// Exact host, lowercase.
    pub host: Option<String>,
    /// Methods; empty means any.
    pub methods: Vec<Method>,
}

/// The match of `section`; `None` (and its problems in `report`) when it is invalid.
pub(super) fn build(section: &MatchSection, report: &mut Report<'_>) -> Option<Matcher> {
    let prefix = &section.path_prefix;
    let prefix_ok = prefix.get_ref().starts_with('/');
    if !prefix_ok {
        report.error(
            prefix.span(),
            format!("path_prefix `{}` must start with `/`", prefix.get_ref()),
            None,
        );
    }
    let mut methods = Vec::new();
    let mut methods_ok = true;
    for method in section.methods.iter().flatten() {
        match Method::from_bytes(method.get_ref().to_ascii_uppercase().as_bytes()) {
            Ok(m) => methods.push(m),
            Err(_) => {
                report.error(
                    method.span(),
                    format!("`{}` is not an HTTP method", method.get_ref()),
                    None,
                );
                methods_ok = false;
            }
        }
    }
    (prefix_ok && methods_ok).then(|| Matcher {
        path_prefix: prefix.get_ref().clone(),
        host: section.host.as_ref().map(|h| h.to_ascii_lowercase()),
        methods,
    })
}
