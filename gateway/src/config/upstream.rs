//! `upstream` of a route: where its requests go, with which protocol and timeouts.

use std::sync::Arc;

use tollgate_plugin_api::RouteKind;
use toml::Spanned;

use super::defaults;
use super::report::Report;
use super::schema::{UpstreamKind, UpstreamSection};
use crate::routing::{Upstream, UpstreamOptions};

/// A route's upstream, checked.
pub(super) struct Target {
    /// Protocol of the route.
    pub kind: RouteKind,
    /// LLM provider, for `llm` routes.
    pub provider: Option<Arc<str>>,
    /// The upstream.
    pub upstream: Upstream,
}

/// The upstream of `section`; `None` (and its problems in `report`) when it is invalid.
pub(super) fn build(section: &Spanned<UpstreamSection>, report: &mut Report<'_>) -> Option<Target> {
    let up = section.get_ref();
    let kind = match up.kind {
        UpstreamKind::Http => RouteKind::Http,
        UpstreamKind::Mcp => RouteKind::Mcp,
        UpstreamKind::Llm => RouteKind::Llm,
    };
    let provider = provider(kind, up.provider.as_ref(), report);
    let default_read_timeout = if kind == RouteKind::Llm {
        defaults::LLM_READ_TIMEOUT
    } else {
        defaults::READ_TIMEOUT
    };
    let options = UpstreamOptions {
        strip_prefix: up.strip_prefix,
        connect_timeout: up
            .connect_timeout
            .map_or(defaults::CONNECT_TIMEOUT, |d| d.0),
        read_timeout: up.timeout.map_or(default_read_timeout, |d| d.0),
        ca_file: up.ca_file.clone(),
        verify_cert: up.verify_cert,
        http2: up.http2,
    };
    // `Upstream::new` does not say whether `url` or `ca_file` is wrong: shown at the table.
    let upstream = Upstream::new(&up.url, options)
        .map_err(|message| report.error(section.span(), message, None))
        .ok();
    Some(Target {
        kind,
        provider: provider?,
        upstream: upstream?,
    })
}

/// The one LLM provider supported, also the provider of an `llm` route that names none.
const ANTHROPIC: &str = "anthropic";

/// The provider of a route of `kind`: `Some(None)` for none, `None` when `provider` is invalid.
fn provider(
    kind: RouteKind,
    provider: Option<&Spanned<String>>,
    report: &mut Report<'_>,
) -> Option<Option<Arc<str>>> {
    let Some(provider) = provider else {
        return Some((kind == RouteKind::Llm).then(|| Arc::from(ANTHROPIC)));
    };
    match (kind, provider.get_ref().as_str()) {
        (RouteKind::Llm, ANTHROPIC) => Some(Some(Arc::from(ANTHROPIC))),
        (RouteKind::Llm, other) => {
            report.error(
                provider.span(),
                format!("unknown LLM provider `{other}`"),
                Some(format!("supported providers: {ANTHROPIC}")),
            );
            None
        }
        _ => {
            report.error(
                provider.span(),
                "`provider` is only for kind = \"llm\"",
                None,
            );
            None
        }
    }
}
