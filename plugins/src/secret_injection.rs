//! `secret-injection`: the provider credential lives in the gateway. The client's own
//! credentials are removed and the configured header is set on the upstream request.

use std::sync::Arc;

use async_trait::async_trait;
use http::{HeaderName, HeaderValue};
use serde::Deserialize;

use tollgate_plugin_api::config::{self, PluginConfigError};
use tollgate_plugin_api::secret_source::{ExposeSecret, SecretSource, SecretString};
use tollgate_plugin_api::{Plugin, PluginError, PluginFactory, RequestCtx, Verdict};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretInjectionConfig {
    header: String,
    value: SecretSource,
    #[serde(default)]
    prefix: String,
    #[serde(default = "default_remove")]
    remove: Vec<String>,
}

fn default_remove() -> Vec<String> {
    vec!["authorization".into(), "x-api-key".into()]
}

/// The `secret-injection` plugin instance.
pub struct SecretInjection {
    name: String,
    header: HeaderName,
    value: HeaderValue,
    remove: Vec<HeaderName>,
    files: Vec<std::path::PathBuf>,
}

// Hand-written so the credential can never appear in `Debug` output.
impl std::fmt::Debug for SecretInjection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretInjection")
            .field("name", &self.name)
            .field("header", &self.header)
            .field("value", &SecretString::default())
            .field("remove", &self.remove)
            .finish_non_exhaustive()
    }
}

/// Factory for `type = "secret-injection"`.
pub struct SecretInjectionFactory;

impl PluginFactory for SecretInjectionFactory {
    fn build(&self, name: &str, table: &toml::Table) -> Result<Arc<dyn Plugin>, PluginConfigError> {
        let cfg: SecretInjectionConfig = config::parse(table)?;
        let header = HeaderName::from_bytes(cfg.header.as_bytes()).map_err(|_| {
            PluginConfigError::at(
                "header",
                format!("`{}` is not a valid header name", cfg.header),
            )
        })?;
        let secret = cfg.value.load("value")?;
        let mut value = HeaderValue::try_from(format!("{}{}", cfg.prefix, secret.expose_secret()))
            .map_err(|_| {
                PluginConfigError::at(
                    "value",
                    "the secret contains characters not allowed in a header",
                )
            })?;
        value.set_sensitive(true);
        let remove = cfg
            .remove
            .iter()
            .map(|h| {
                HeaderName::from_bytes(h.as_bytes()).map_err(|_| {
                    PluginConfigError::at("remove", format!("`{h}` is not a valid header name"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Arc::new(SecretInjection {
            name: name.to_string(),
            header,
            value,
            remove,
            files: cfg.value.file().into_iter().collect(),
        }))
    }
}

#[async_trait]
impl Plugin for SecretInjection {
    fn name(&self) -> &str {
        &self.name
    }

    fn watched_files(&self) -> Vec<std::path::PathBuf> {
        self.files.clone()
    }

    async fn on_request(&self, cx: &mut RequestCtx) -> Result<Verdict, PluginError> {
        for header in &self.remove {
            cx.upstream_headers.remove(header.clone());
        }
        cx.upstream_headers
            .set(self.header.clone(), self.value.clone());
        Ok(Verdict::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_plugin_api::testing::{build_plugin, TestExchange, TestRequest};

    fn build(toml_src: &str) -> Result<Arc<dyn Plugin>, PluginConfigError> {
        build_plugin(&SecretInjectionFactory, "key", toml_src)
    }

    #[tokio::test]
    async fn removes_client_credentials_and_sets_the_secret() {
        std::env::set_var("TOLLGATE_TEST_INJECTED", "sk-gateway");
        let plugin =
            build("header = \"x-api-key\"\nvalue = { env = \"TOLLGATE_TEST_INJECTED\" }").unwrap();
        let request = TestRequest::llm("/v1/messages").header("x-api-key", "sk-client");
        let mut exchange = TestExchange::new(plugin, request);
        assert!(exchange.on_request().await.unwrap().is_continue());
        let edits = exchange.header_edits();
        assert_eq!(edits[0], ("authorization".to_string(), None));
        assert_eq!(edits[1], ("x-api-key".to_string(), None));
        assert_eq!(
            edits[2],
            ("x-api-key".to_string(), Some("sk-gateway".to_string()))
        );
        assert!(!format!("{:?}", exchange.cx().upstream_headers).contains("sk-gateway"));
    }

    #[test]
    fn debug_hides_the_secret() {
        std::env::set_var("TOLLGATE_TEST_INJECTED_DEBUG", "sk-hidden-value");
        let table: toml::Table = toml::from_str(
            "header = \"x-api-key\"\nvalue = { env = \"TOLLGATE_TEST_INJECTED_DEBUG\" }",
        )
        .unwrap();
        let cfg: SecretInjectionConfig = config::parse(&table).unwrap();
        let plugin = SecretInjection {
            name: "k".into(),
            header: HeaderName::from_static("x-api-key"),
            value: HeaderValue::from_str(cfg.value.load("value").unwrap().expose_secret()).unwrap(),
            remove: vec![],
            files: vec![],
        };
        assert!(!format!("{plugin:?}").contains("sk-hidden-value"));
    }

    #[test]
    fn watches_the_secret_file_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("injected-secret");
        std::fs::write(&path, "sk-file\n").unwrap();
        let plugin = build(&format!(
            "header = \"x-api-key\"\nvalue = {{ file = \"{}\" }}",
            path.display()
        ))
        .unwrap();
        assert_eq!(plugin.watched_files(), vec![path]);
        std::env::set_var("TOLLGATE_TEST_INJECTED_ENV", "sk-env");
        let plugin =
            build("header = \"x-api-key\"\nvalue = { env = \"TOLLGATE_TEST_INJECTED_ENV\" }")
                .unwrap();
        assert!(plugin.watched_files().is_empty());
    }

    #[test]
    fn missing_env_is_a_located_error() {
        let err =
            build("header = \"x-api-key\"\nvalue = { env = \"TOLLGATE_TEST_NOPE\" }").unwrap_err();
        assert_eq!(err.key.as_deref(), Some("value"));
    }
}
