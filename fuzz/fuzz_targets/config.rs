//! The configuration loader (`config::load_str`, what `tollgate check`, start-up and every reload
//! run) on arbitrary text, with the built-in plugins: never panics, and every error it reports is
//! located inside the text (a line of the file, a column of that line).

#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tollgate_plugin_api::PluginRegistry;

fn registry() -> &'static PluginRegistry {
    static REGISTRY: OnceLock<PluginRegistry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        one_root_certificate();
        tollgate_plugins::builtins()
    })
}

/// Points the TLS clients plugins build (`jwt`'s JWKS fetcher, `prompt-guard`'s webhook) at a
/// bundle of one root certificate: reading the system's bundle at every run was most of its
/// time. The code under test is the same.
fn one_root_certificate() {
    let Ok(bundle) = std::fs::read_to_string("/etc/ssl/certs/ca-certificates.crt") else {
        return;
    };
    let end = "-----END CERTIFICATE-----";
    let (Some(start), Some(stop)) = (bundle.find("-----BEGIN CERTIFICATE-----"), bundle.find(end))
    else {
        return;
    };
    let dir = std::env::temp_dir().join("tollgate-fuzz-roots");
    let file = dir.join("root.pem");
    if std::fs::create_dir_all(&dir).is_ok()
        && std::fs::write(&file, &bundle[start..stop + end.len()]).is_ok()
    {
        std::env::set_var("SSL_CERT_FILE", &file);
        std::env::set_var("SSL_CERT_DIR", &dir);
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let errors = match tollgate::config::load_str(Path::new("fuzz.toml"), source, registry()) {
        Ok(config) => {
            let _ = format!("{config:?}");
            return;
        }
        Err(errors) => errors,
    };
    assert!(!errors.0.is_empty(), "an error report without errors");
    let lines: Vec<&str> = source.split('\n').collect();
    for error in &errors.0 {
        if error.line == 0 {
            assert_eq!(error.column, 0, "{error}");
            continue;
        }
        let line = lines
            .get(error.line - 1)
            .unwrap_or_else(|| panic!("{error}: the text has {} lines", lines.len()));
        let columns = line.chars().count() + 1;
        assert!(
            (1..=columns).contains(&error.column),
            "{error}: the line has {columns} columns"
        );
        assert!(!error.message.is_empty(), "{error}");
    }
    let _ = errors.to_string();
});
