//! `plugins` of a route: its chain, resolved from names to instances.

use std::collections::BTreeMap;
use std::sync::Arc;

use tollgate_plugin_api::Plugin;

use super::plugins::Plugins;
use super::report::Report;
use super::schema::{PluginSection, RouteSection};

/// The plugin instances `section` names, in order; `None` when one is missing or invalid.
pub(super) fn resolve(
    section: &RouteSection,
    plugins: &Plugins,
    declared: &BTreeMap<String, PluginSection>,
    report: &mut Report<'_>,
) -> Option<Vec<Arc<dyn Plugin>>> {
    let mut chain = Vec::with_capacity(section.plugins.len());
    let mut ok = true;
    for name in &section.plugins {
        match plugins.get(name.get_ref()) {
            Some((_, plugin)) => chain.push(plugin.clone()),
            // Declared but invalid: its own error is already reported.
            None if declared.contains_key(name.get_ref()) => ok = false,
            None => {
                let defined: Vec<&str> = declared.keys().map(String::as_str).collect();
                report.error(
                    name.span(),
                    format!(
                        "route `{}` names plugin `{}`, which is not defined",
                        section.name.get_ref(),
                        name.get_ref()
                    ),
                    Some(format!(
                        "define it as [plugin.{}] with a `type`; defined plugins: {}",
                        name.get_ref(),
                        if defined.is_empty() {
                            "none".to_string()
                        } else {
                            defined.join(", ")
                        }
                    )),
                );
                ok = false;
            }
        }
    }
    ok.then_some(chain)
}
