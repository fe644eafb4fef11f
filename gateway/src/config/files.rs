//! The files a configuration depends on besides itself, watched for hot reload.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use tollgate_plugin_api::Plugin;

use super::schema::ConfigFile;

/// Files a configuration depends on: those its built plugin instances report
/// ([`Plugin::watched_files`]: secrets, key sets), upstream `ca_file`s, and the listener's TLS
/// certificate, key and client CAs. Plugins come in name order so the list is stable.
pub fn referenced_files(
    file: &ConfigFile,
    plugins: &HashMap<String, (toml::Table, Arc<dyn Plugin>)>,
) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = file
        .plugin
        .keys()
        .filter_map(|name| plugins.get(name))
        .flat_map(|(_, plugin)| plugin.watched_files())
        .collect();
    out.extend(
        file.route
            .iter()
            .filter_map(|r| r.upstream.get_ref().ca_file.as_ref().map(PathBuf::from)),
    );
    if let Some(tls) = &file.server.tls {
        let tls = tls.get_ref();
        out.push(PathBuf::from(tls.cert.get_ref()));
        out.push(PathBuf::from(tls.key.get_ref()));
        out.extend(tls.client_ca.iter().map(|ca| PathBuf::from(ca.get_ref())));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Watching(&'static str);

    impl Plugin for Watching {
        fn name(&self) -> &str {
            "watching"
        }

        fn watched_files(&self) -> Vec<PathBuf> {
            vec![PathBuf::from(self.0)]
        }
    }

    #[test]
    fn plugin_files_come_from_the_instances_then_the_schema_files() {
        let file: ConfigFile = toml::from_str(
            r#"
            [plugin.b]
            type = "x"
            file = "/not/watched/by/key/name"
            [plugin.a]
            type = "x"
            [[route]]
            name = "r"
            match = { path_prefix = "/" }
            upstream = { url = "https://up.example", ca_file = "/ca.pem" }
            "#,
        )
        .unwrap();
        let mut plugins: HashMap<String, (toml::Table, Arc<dyn Plugin>)> = HashMap::new();
        plugins.insert(
            "b".into(),
            (toml::Table::new(), Arc::new(Watching("/b.key"))),
        );
        plugins.insert(
            "a".into(),
            (toml::Table::new(), Arc::new(Watching("/a.key"))),
        );
        assert_eq!(
            referenced_files(&file, &plugins),
            ["/a.key", "/b.key", "/ca.pem"].map(PathBuf::from).to_vec()
        );
    }
}
