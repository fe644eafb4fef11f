//! `[plugin.<name>]`: the plugin instances, built by their factories (or kept from the running
//! configuration).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tollgate_plugin_api::{Plugin, PluginRegistry};

use super::report::Report;
use super::schema::PluginSection;

/// Plugin instances by name, each with the table it was built from.
pub type Plugins = HashMap<String, (toml::Table, Arc<dyn Plugin>)>;

/// Builds every plugin of `sections` that is valid; `previous` holds the running instances, of
/// which the unchanged ones that survive reloads are kept.
pub(super) fn build_plugins(
    sections: &BTreeMap<String, PluginSection>,
    registry: &PluginRegistry,
    previous: Option<&Plugins>,
    report: &mut Report<'_>,
) -> Plugins {
    let mut built = HashMap::new();
    for (name, section) in sections {
        let table = section.table();
        // An unchanged stateful instance is kept, with its state (e.g. rate-limit buckets).
        let kept = previous
            .and_then(|p| p.get(name))
            .filter(|(old, plugin)| *old == table && plugin.survives_reload());
        let plugin = match kept {
            Some((_, plugin)) => Some(plugin.clone()),
            None => build_one(name, section, &table, registry, report),
        };
        if let Some(plugin) = plugin {
            built.insert(name.clone(), (table, plugin));
        }
    }
    built
}

fn build_one(
    name: &str,
    section: &PluginSection,
    table: &toml::Table,
    registry: &PluginRegistry,
    report: &mut Report<'_>,
) -> Option<Arc<dyn Plugin>> {
    let known_types = || {
        Some(format!(
            "known plugin types: {}",
            registry.type_names().join(", ")
        ))
    };
    let Some(type_name) = section.get("type").and_then(|t| t.as_str()) else {
        report.error(
            section.span(),
            format!("plugin `{name}` has no `type`"),
            known_types(),
        );
        return None;
    };
    let type_span = section.span_of("type").unwrap_or_else(|| section.span());
    let Some(factory) = registry.get(type_name) else {
        report.error(
            type_span,
            format!("unknown plugin type `{type_name}`"),
            known_types(),
        );
        return None;
    };
    let mut own = table.clone();
    own.remove("type");
    match factory.build(name, &own) {
        Ok(plugin) => Some(plugin),
        Err(e) => {
            // An error about the table as a whole is shown at `type`, the line that says which
            // plugin it is; one about a key the table does not have, at the table.
            let span = match e.key.as_deref() {
                Some(key) => section.span_of(key).unwrap_or_else(|| section.span()),
                None => type_span,
            };
            report.error(
                span,
                format!("plugin `{name}` ({type_name}): {}", e.message),
                None,
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::errors;

    #[test]
    fn a_plugin_error_about_one_key_points_at_that_key() {
        let source = "\
[plugin.key]
type = \"secret-injection\"
header = \"x-api-key\"
  headr = 3
value = { env = \"HOME\" }
";
        let errors = errors(source);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0]
                .starts_with("t.toml:4:11: plugin `key` (secret-injection): unknown field `headr`"),
            "{errors:?}"
        );
    }

    #[test]
    fn a_key_in_an_inline_or_dotted_plugin_table_is_located_too() {
        let inline =
            "plugin = { key = { type = \"secret-injection\", header = \"h\", headr = 1 } }\n";
        assert!(
            errors(inline)[0].starts_with("t.toml:1:69: "),
            "{:?}",
            errors(inline)
        );
        let dotted = "plugin.key.type = \"secret-injection\"\nplugin.key.headr = \"x\"\n";
        assert!(
            errors(dotted)[0].starts_with("t.toml:2:20: "),
            "{:?}",
            errors(dotted)
        );
    }

    #[test]
    fn a_plugin_error_about_the_whole_table_points_at_its_type_or_header() {
        let missing_key = "[plugin.key]\nvalue = { env = \"HOME\" }\ntype = \"secret-injection\"\n";
        assert_eq!(
            errors(missing_key),
            ["t.toml:3:8: plugin `key` (secret-injection): missing field `header`"]
        );
        assert_eq!(
            errors("\n[plugin.guard]\ntype = \"prompt-gaurd\"\n"),
            ["t.toml:3:8: unknown plugin type `prompt-gaurd`"]
        );
        assert_eq!(
            errors("\n[plugin.x]\nheader = \"a\"\n"),
            ["t.toml:2:1: plugin `x` has no `type`"]
        );
    }
}
