//! The files a configuration depends on besides itself, watched for hot reload.

use std::path::PathBuf;

use super::schema::ConfigFile;

/// Files a configuration names: `file = "..."` in plugin tables (secrets, JWKS, keys), upstream
/// `ca_file`s, and the listener's TLS certificate and key.
pub fn referenced_files(file: &ConfigFile) -> Vec<PathBuf> {
    fn walk(value: &toml::Value, out: &mut Vec<PathBuf>) {
        match value {
            toml::Value::Table(table) => {
                for (key, value) in table {
                    match (key.as_str(), value) {
                        ("file" | "ca_file", toml::Value::String(path)) => {
                            out.push(PathBuf::from(path))
                        }
                        _ => walk(value, out),
                    }
                }
            }
            toml::Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for section in file.plugin.values() {
        walk(&toml::Value::Table(section.table()), &mut out);
    }
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
