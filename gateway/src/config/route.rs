//! `[[route]]`: the route table, each route built from its match, chain, upstream and limits.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use tollgate_plugin_api::RouteInfo;

use super::plugins::Plugins;
use super::report::Report;
use super::schema::{PluginSection, RouteSection};
use super::{chain, matcher, upstream};
use crate::routing::Route;

/// What every route is built against.
pub(super) struct RouteContext<'a> {
    /// The plugin instances that could be built.
    pub plugins: &'a Plugins,
    /// Every `[plugin.<name>]`, valid or not.
    pub declared: &'a BTreeMap<String, PluginSection>,
    /// Body limit of the routes that set none.
    pub default_max_body: u64,
    /// Longest wait for a whole body the gateway reads (`[server] body_timeout`).
    pub body_timeout: std::time::Duration,
    /// What federated MCP routes are made of.
    pub federation: upstream::FederationParts<'a>,
}

/// The valid routes of `sections`; the problems of the others, and names used twice, in `report`.
pub(super) fn build_routes(
    sections: &[RouteSection],
    cx: &RouteContext<'_>,
    report: &mut Report<'_>,
) -> Vec<Arc<Route>> {
    let mut routes = Vec::new();
    let mut names = HashMap::new();
    for (index, section) in sections.iter().enumerate() {
        let name = &section.name;
        if let Some(first) = names.insert(name.get_ref().as_str(), index) {
            report.error(
                name.span(),
                format!("route name `{}` is used twice", name.get_ref()),
                Some(format!(
                    "route #{} already has it; names must be unique",
                    first + 1
                )),
            );
        }
        if let Some(route) = build_route(section, cx, report) {
            routes.push(Arc::new(route));
        }
    }
    routes
}

/// One route; `None` when any of its parts is invalid (every part is checked, so that all its
/// problems are reported at once).
fn build_route(
    section: &RouteSection,
    cx: &RouteContext<'_>,
    report: &mut Report<'_>,
) -> Option<Route> {
    let matcher = matcher::build(&section.matcher, report);
    let chain = chain::resolve(section, cx.plugins, cx.declared, report);
    let target = upstream::build(&section.upstream, &cx.federation, report);
    let max_body = section.max_body.map_or(cx.default_max_body, |s| s.0);
    let (matcher, chain, target) = (matcher?, chain?, target?);
    Some(Route {
        info: RouteInfo {
            name: Arc::from(section.name.get_ref().as_str()),
            kind: target.kind,
            provider: target.provider,
            path_prefix: Arc::from(matcher.path_prefix.as_str()),
        },
        path_prefix: matcher.path_prefix,
        host: matcher.host,
        methods: matcher.methods,
        backend: target.backend,
        llm_endpoints: target.endpoints,
        chain,
        max_body: usize::try_from(max_body).unwrap_or(usize::MAX),
        body_timeout: cx.body_timeout,
        series: OnceLock::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::errors;

    #[test]
    fn a_problem_in_a_route_table_points_at_its_value() {
        let source = "\
[[route]]
name = \"a\"
upstream = { url = \"http://127.0.0.1:9\", provider = \"anthropic\" }
plugins = [\"auth\"]
[route.match]
path_prefix = \"a\"
methods = [\"GET\", \"P OST\"]

[[route]]
name = \"a\"
match = { path_prefix = \"/b\" }
upstream = { url = \"ftp://x\" }
";
        assert_eq!(
            errors(source),
            [
                "t.toml:6:15: path_prefix `a` must start with `/`",
                "t.toml:7:19: `P OST` is not an HTTP method",
                "t.toml:4:12: route `a` names plugin `auth`, which is not defined",
                "t.toml:3:53: `provider` is only for kind = \"llm\"",
                "t.toml:10:8: route name `a` is used twice",
                "t.toml:12:12: `ftp://x` must start with http:// or https://",
            ]
        );
    }

    #[test]
    fn an_unknown_llm_provider_points_at_it() {
        let source = "\
[[route]]
name = \"a\"
match = { path_prefix = \"/a\" }
[route.upstream]
url = \"http://127.0.0.1:9\"
kind = \"llm\"
provider = \"openai\"
";
        assert_eq!(
            errors(source),
            ["t.toml:7:12: unknown LLM provider `openai`"]
        );
    }
}
