//! `upstream` of a route: where its requests go, with which protocol and timeouts.

use std::sync::Arc;

use tollgate_plugin_api::RouteKind;
use toml::Spanned;

use super::defaults;
use super::mcp_servers::Servers;
use super::report::Report;
use super::schema::{UpstreamKind, UpstreamSection};
use crate::federation::{Federation, Sealer};
use crate::routing::endpoints::{check_pattern, LlmEndpoints};
use crate::routing::{Backend, Upstream, UpstreamOptions};

/// A route's upstream, checked.
pub(super) struct Target {
    /// Protocol of the route.
    pub kind: RouteKind,
    /// LLM provider, for `llm` routes.
    pub provider: Option<Arc<str>>,
    /// Where requests go.
    pub backend: Backend,
    /// `llm` routes: the provider endpoints served.
    pub endpoints: Option<LlmEndpoints>,
}

/// What federated routes are built with.
pub(super) struct FederationParts<'a> {
    /// The `[mcp_server.<name>]` links that could be built.
    pub servers: &'a Servers,
    /// Every `[mcp_server.<name>]` name, valid or not.
    pub declared: Vec<&'a str>,
    /// The sealer of session ids (`None` when `session_key` is invalid).
    pub sealer: Option<&'a Sealer>,
}

/// The upstream of `section`; `None` (and its problems in `report`) when it is invalid.
pub(super) fn build(
    section: &Spanned<UpstreamSection>,
    federation: &FederationParts<'_>,
    report: &mut Report<'_>,
) -> Option<Target> {
    let up = section.get_ref();
    let kind = match up.kind {
        UpstreamKind::Http => RouteKind::Http,
        UpstreamKind::Mcp => RouteKind::Mcp,
        UpstreamKind::Llm => RouteKind::Llm,
    };
    let provider = provider(kind, up.provider.as_ref(), report);
    let endpoints = endpoints(kind, &up.allow_paths, report);
    let url = match (&up.url, &up.servers) {
        (Some(_), Some(servers)) => {
            report.error(
                servers.span(),
                "an upstream has either `url` or `servers`, not both",
                None,
            );
            return None;
        }
        (None, Some(servers)) => {
            if kind != RouteKind::Mcp {
                report.error(servers.span(), "`servers` is only for kind = \"mcp\"", None);
                return None;
            }
            let federation = federated(servers, federation, report)?;
            return Some(Target {
                kind,
                provider: provider?,
                backend: Backend::Federated(Arc::new(federation)),
                endpoints: None,
            });
        }
        (Some(url), None) => url,
        (None, None) => {
            report.error(
                section.span(),
                "the upstream needs a `url` (or, for kind = \"mcp\", `servers`)",
                None,
            );
            return None;
        }
    };
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
    let upstream = Upstream::new(url, options)
        .map_err(|message| report.error(section.span(), message, None))
        .ok();
    Some(Target {
        kind,
        provider: provider?,
        backend: Backend::Proxy(upstream?),
        endpoints: endpoints?,
    })
}

/// The endpoints an `llm` route serves (`Some(None)` for other kinds); `None` when
/// `allow_paths` is invalid.
fn endpoints(
    kind: RouteKind,
    allow_paths: &[Spanned<String>],
    report: &mut Report<'_>,
) -> Option<Option<LlmEndpoints>> {
    if kind != RouteKind::Llm {
        if let Some(first) = allow_paths.first() {
            report.error(
                first.span(),
                "`allow_paths` is only for kind = \"llm\"",
                None,
            );
            return None;
        }
        return Some(None);
    }
    let mut ok = true;
    for path in allow_paths {
        if let Some(problem) = check_pattern(path.get_ref()) {
            report.error(path.span(), problem, None);
            ok = false;
        }
    }
    ok.then(|| {
        Some(LlmEndpoints::new(
            allow_paths.iter().map(|p| p.get_ref().clone()).collect(),
        ))
    })
}

/// The federation of a route's `servers`: each named server defined, none twice, no two with
/// the same prefix.
fn federated(
    names: &Spanned<Vec<Spanned<String>>>,
    parts: &FederationParts<'_>,
    report: &mut Report<'_>,
) -> Option<Federation> {
    if names.get_ref().is_empty() {
        report.error(names.span(), "`servers` names no MCP server", None);
        return None;
    }
    let mut links = Vec::new();
    let mut ok = true;
    for (i, name) in names.get_ref().iter().enumerate() {
        let text = name.get_ref().as_str();
        if names.get_ref()[..i].iter().any(|n| n.get_ref() == text) {
            report.error(
                name.span(),
                format!("MCP server `{text}` is named twice"),
                None,
            );
            ok = false;
            continue;
        }
        if !parts.declared.contains(&text) {
            let hint = if parts.declared.is_empty() {
                "define it in a [mcp_server.<name>] table".to_string()
            } else {
                format!("defined: {}", parts.declared.join(", "))
            };
            report.error(
                name.span(),
                format!("unknown MCP server `{text}`"),
                Some(hint),
            );
            ok = false;
            continue;
        }
        let Some(link) = parts.servers.get(text) else {
            // Declared but invalid: its own table has the error.
            ok = false;
            continue;
        };
        if let Some(other) = links
            .iter()
            .find(|l: &&Arc<crate::federation::ServerLink>| l.spec.prefix == link.spec.prefix)
        {
            report.error(
                name.span(),
                format!(
                    "MCP servers `{}` and `{text}` both expose their names with prefix `{}`",
                    other.name(),
                    link.spec.prefix
                ),
                Some("give one of them another `prefix`".into()),
            );
            ok = false;
            continue;
        }
        links.push(link.clone());
    }
    let sealer = parts.sealer?.clone();
    ok.then(|| Federation::new(links, sealer))
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
