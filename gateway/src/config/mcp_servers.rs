//! `[mcp_server.<name>]`: the MCP servers federated routes merge, each checked and made into a
//! link the routes naming it share.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};
use secrecy::SecretString;
use tollgate_plugin_api::secret_source::{ExposeSecret, SecretSource};
use toml::Spanned;

use super::defaults;
use super::mcp_stdio;
use super::report::Report;
use super::schema::{HeaderValueSource, McpServerSection, ServerSection};
use crate::federation::spec::{Endpoint, HttpEndpoint, PREFIX_SEPARATOR};
use crate::federation::{Sealer, ServerLink, ServerSpec, SessionSealer};

/// The servers that could be built, by name.
pub type Servers = BTreeMap<String, Arc<ServerLink>>;

/// Builds every `[mcp_server.<name>]`; the problems of the others go to `report`. A server of
/// `previous` whose table is unchanged is kept (its stdio processes and what probing found).
pub(super) fn build_servers(
    sections: &BTreeMap<String, Spanned<McpServerSection>>,
    previous: Option<&Servers>,
    report: &mut Report<'_>,
) -> Servers {
    sections
        .iter()
        .filter_map(|(name, section)| {
            let spec = build_spec(name, section, report)?;
            let kept = previous
                .and_then(|servers| servers.get(name))
                .filter(|link| link.spec == spec && link.is_stdio());
            if let Some(link) = kept {
                return Some((name.clone(), link.clone()));
            }
            match ServerLink::new(spec, defaults::CONNECT_TIMEOUT) {
                Ok(link) => Some((name.clone(), Arc::new(link))),
                Err(message) => {
                    report.error(section.span(), message, None);
                    None
                }
            }
        })
        .collect()
}

/// Ends the processes of the stdio servers of `old` that `new` does not keep (their table
/// changed or went away); called once `new` is in service.
pub fn retire_replaced(old: &Servers, new: &Servers) {
    for (name, link) in old {
        let kept = new.get(name).is_some_and(|n| Arc::ptr_eq(n, link));
        if !kept {
            link.retire();
        }
    }
}

/// Whether `name` is usable in exposed names, metric labels and scoped ids.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn build_spec(
    name: &str,
    section: &Spanned<McpServerSection>,
    report: &mut Report<'_>,
) -> Option<ServerSpec> {
    let s = section.get_ref();
    let mut ok = true;
    if !is_plain_name(name) {
        report.error(
            section.span(),
            format!("MCP server name `{name}` may hold only letters, digits, `_` and `-`"),
            None,
        );
        ok = false;
    }
    let prefix = match &s.prefix {
        Some(prefix) => {
            let text = prefix.get_ref();
            if !text.is_empty() && (!is_plain_name(text) || text.contains(PREFIX_SEPARATOR)) {
                report.error(
                    prefix.span(),
                    format!(
                        "prefix `{text}` may hold only letters, digits, `_` and `-`, and not `__`"
                    ),
                    Some(
                        "exposed names are `<prefix>__<name>`; `\"\"` exposes them unprefixed"
                            .into(),
                    ),
                );
                ok = false;
            }
            text.clone()
        }
        None => {
            if name.contains(PREFIX_SEPARATOR) {
                report.error(
                    section.span(),
                    format!("MCP server name `{name}` holds `__`, so it cannot be the prefix"),
                    Some("set `prefix`".into()),
                );
                ok = false;
            }
            name.to_string()
        }
    };
    let endpoint = match (&s.url, &s.command) {
        (Some(url), None) => http_endpoint(s, url, report),
        (None, Some(command)) => mcp_stdio::build_stdio(s, command, report).map(Endpoint::Stdio),
        (Some(_), Some(command)) => {
            report.error(
                command.span(),
                "a server has either `url` or `command`, not both",
                None,
            );
            None
        }
        (None, None) => {
            report.error(
                section.span(),
                format!("MCP server `{name}` needs a `url` or a `command`"),
                None,
            );
            None
        }
    };
    let endpoint = endpoint?;
    ok.then(|| ServerSpec {
        name: Arc::from(name),
        endpoint,
        prefix: Arc::from(prefix.as_str()),
        timeout: s.timeout.map_or(defaults::READ_TIMEOUT, |d| d.0),
    })
}

/// The HTTP endpoint of a `url` server.
fn http_endpoint(
    s: &McpServerSection,
    url: &Spanned<String>,
    report: &mut Report<'_>,
) -> Option<Endpoint> {
    let stdio_keys_ok = mcp_stdio::refuse_stdio_keys(s, report);
    let parsed = match reqwest::Url::parse(url.get_ref()) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some() => {
            Some(parsed)
        }
        Ok(_) | Err(_) => {
            report.error(
                url.span(),
                format!("`{}` must be an http:// or https:// URL", url.get_ref()),
                None,
            );
            None
        }
    };
    let headers = headers(&s.headers, report);
    let ca_pem = match &s.ca_file {
        None => None,
        Some(file) => match tollgate_plugin_api::files::read_limited(
            std::path::Path::new(file.get_ref()),
            tollgate_plugin_api::files::MAX_CONFIG_FILE,
        ) {
            Ok(pem) => Some(pem),
            Err(e) => {
                report.error(
                    file.span(),
                    format!("cannot read `{}`: {e}", file.get_ref()),
                    None,
                );
                return None;
            }
        },
    };
    let (url, headers) = (parsed?, headers?);
    stdio_keys_ok.then_some(Endpoint::Http(HttpEndpoint {
        url,
        headers,
        ca_pem,
    }))
}

/// A header or environment value as written, or read now from its secret source (a source
/// that cannot be read is reported at it).
pub(super) fn source_value(
    name: &str,
    source: &Spanned<HeaderValueSource>,
    report: &mut Report<'_>,
) -> Option<SecretString> {
    match source.get_ref() {
        HeaderValueSource::Literal(text) => Some(SecretString::from(text.clone())),
        HeaderValueSource::Secret(secret) => match secret.load(name) {
            Ok(secret) => Some(SecretString::from(secret.expose_secret().to_string())),
            Err(e) => {
                report.error(source.span(), e.to_string(), None);
                None
            }
        },
    }
}

/// The headers sent to a server, secrets read now and marked sensitive.
fn headers(
    sources: &BTreeMap<String, Spanned<HeaderValueSource>>,
    report: &mut Report<'_>,
) -> Option<HeaderMap> {
    let mut map = HeaderMap::new();
    let mut ok = true;
    for (name, source) in sources {
        let Ok(header) = HeaderName::from_bytes(name.as_bytes()) else {
            report.error(
                source.span(),
                format!("`{name}` is not a header name"),
                None,
            );
            ok = false;
            continue;
        };
        let Some(value) = source_value(name, source, report) else {
            ok = false;
            continue;
        };
        match HeaderValue::from_str(value.expose_secret()).ok() {
            Some(mut value) => {
                value.set_sensitive(true);
                map.insert(header, value);
            }
            None => {
                // The value itself is not repeated: it may be a credential.
                report.error(
                    source.span(),
                    format!("the value of header `{name}` is not a valid header value"),
                    None,
                );
                ok = false;
            }
        }
    }
    ok.then_some(map)
}

/// The sealer of session ids: keyed by `[server] session_key`, or the process's own key.
pub(super) fn sealer(server: &ServerSection, report: &mut Report<'_>) -> Option<Sealer> {
    let Some(source) = &server.session_key else {
        return match SessionSealer::process_default() {
            Ok(sealer) => Some(Sealer::Process(sealer)),
            Err(e) => {
                report.error(0..0, e.to_string(), None);
                None
            }
        };
    };
    let secret = match source.get_ref().load("session_key") {
        Ok(secret) => secret,
        Err(e) => {
            report.error(source.span(), e.to_string(), None);
            return None;
        }
    };
    if secret.expose_secret().len() < 32 {
        report.error(
            source.span(),
            "session_key must be at least 32 characters",
            Some("e.g. `openssl rand -base64 32`".into()),
        );
        return None;
    }
    match SessionSealer::new(secret.expose_secret().as_bytes()) {
        Ok(sealer) => Some(Sealer::Configured(Arc::new(sealer))),
        Err(e) => {
            report.error(source.span(), e.to_string(), None);
            None
        }
    }
}

/// The files `[mcp_server.*]`, `session_key` and `admin_token` read (watched for hot reload).
pub(super) fn referenced_files(
    sections: &BTreeMap<String, Spanned<McpServerSection>>,
    server: &ServerSection,
) -> Vec<std::path::PathBuf> {
    let secret_file = |source: &SecretSource| source.file();
    let mut out: Vec<std::path::PathBuf> = sections
        .values()
        .flat_map(|s| {
            let s = s.get_ref();
            let headers =
                s.headers
                    .values()
                    .chain(s.env.values())
                    .filter_map(|h| match h.get_ref() {
                        HeaderValueSource::Secret(secret) => secret_file(secret),
                        HeaderValueSource::Literal(_) => None,
                    });
            headers
                .chain(
                    s.ca_file
                        .as_ref()
                        .map(|f| std::path::PathBuf::from(f.get_ref())),
                )
                .collect::<Vec<_>>()
        })
        .collect();
    out.extend(
        [&server.session_key, &server.admin_token]
            .into_iter()
            .flatten()
            .filter_map(|k| secret_file(k.get_ref())),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{errors, load_as};
    use crate::routing::Backend;

    #[test]
    fn a_federated_route_merges_the_servers_it_names() {
        let source = "\
[mcp_server.math]
url = \"http://127.0.0.1:1/mcp\"
headers = { authorization = \"Bearer literal\" }

[mcp_server.files]
url = \"https://files.internal/mcp\"
prefix = \"\"
timeout = \"5s\"

[[route]]
name = \"tools\"
match = { path_prefix = \"/mcp\" }
upstream = { kind = \"mcp\", servers = [\"math\", \"files\"] }
";
        let config = load_as("t.toml", source).unwrap();
        let route = &config.routes.routes()[0];
        let Backend::Federated(federation) = &route.backend else {
            panic!("not federated: {route:?}");
        };
        let servers: Vec<_> = federation
            .servers()
            .iter()
            .map(|s| {
                (
                    s.name().to_string(),
                    s.spec.prefix.to_string(),
                    s.spec.timeout,
                )
            })
            .collect();
        assert_eq!(
            servers,
            [
                (
                    "math".into(),
                    "math".into(),
                    std::time::Duration::from_secs(60)
                ),
                ("files".into(), "".into(), std::time::Duration::from_secs(5)),
            ]
        );
        assert!(
            !format!("{route:?}").contains("literal"),
            "header values stay out of Debug"
        );
    }

    #[test]
    fn problems_of_federated_routes_point_at_their_values() {
        let source = "\
[mcp_server.math]
url = \"ftp://x\"

[mcp_server.a]
url = \"http://127.0.0.1:1/mcp\"
prefix = \"p\"

[mcp_server.b]
url = \"http://127.0.0.1:2/mcp\"
prefix = \"p\"

[mcp_server.c]
url = \"http://127.0.0.1:3/mcp\"
prefix = \"x__y\"
headers = { authorization = { env = \"TOLLGATE_TEST_UNSET_VARIABLE\" } }

[[route]]
name = \"tools\"
match = { path_prefix = \"/mcp\" }
upstream = { kind = \"mcp\", servers = [\"a\", \"b\", \"nope\", \"a\"] }

[[route]]
name = \"both\"
match = { path_prefix = \"/both\" }
upstream = { kind = \"mcp\", url = \"http://127.0.0.1:1\", servers = [\"a\"] }

[[route]]
name = \"http\"
match = { path_prefix = \"/http\" }
upstream = { servers = [\"a\"] }

[[route]]
name = \"none\"
match = { path_prefix = \"/none\" }
upstream = { kind = \"mcp\" }
";
        assert_eq!(
            errors(source),
            [
                "t.toml:14:10: prefix `x__y` may hold only letters, digits, `_` and `-`, and not `__`",
                "t.toml:15:29: environment variable `TOLLGATE_TEST_UNSET_VARIABLE` is not set or not UTF-8",
                "t.toml:2:7: `ftp://x` must be an http:// or https:// URL",
                "t.toml:20:44: MCP servers `a` and `b` both expose their names with prefix `p`",
                "t.toml:20:49: unknown MCP server `nope`",
                "t.toml:20:57: MCP server `a` is named twice",
                "t.toml:25:66: an upstream has either `url` or `servers`, not both",
                "t.toml:30:24: `servers` is only for kind = \"mcp\"",
                "t.toml:35:12: the upstream needs a `url` (or, for kind = \"mcp\", `servers`)",
            ]
        );
    }

    #[test]
    fn a_short_session_key_is_refused_at_its_value() {
        let source = "[server]\nsession_key = { env = \"TOLLGATE_TEST_SHORT_KEY\" }\n";
        std::env::set_var("TOLLGATE_TEST_SHORT_KEY", "short");
        assert_eq!(
            errors(source),
            ["t.toml:2:15: session_key must be at least 32 characters"]
        );
    }

    #[test]
    fn a_stdio_server_is_built_with_its_defaults_and_without_its_values_in_debug() {
        std::env::set_var("TOLLGATE_TEST_STDIO_TOKEN", "gh-secret-value");
        let source = "\
[mcp_server.github]
command = [\"npx\", \"-y\", \"@modelcontextprotocol/server-github\"]
env = { GITHUB_PERSONAL_ACCESS_TOKEN = { env = \"TOLLGATE_TEST_STDIO_TOKEN\" }, LOG = \"info\" }

[mcp_server.files]
command = [\"server-files\"]
sharing = \"shared\"
max_processes = 3
idle_timeout = \"30s\"
cwd = \"/\"

[[route]]
name = \"tools\"
match = { path_prefix = \"/mcp\" }
upstream = { kind = \"mcp\", servers = [\"github\", \"files\"] }
";
        let config = load_as("t.toml", source).unwrap();
        let link = &config.mcp_servers["github"];
        let crate::federation::spec::Endpoint::Stdio(github) = &link.spec.endpoint else {
            panic!("not stdio");
        };
        assert_eq!(github.command[0], "npx");
        assert_eq!(github.sharing, crate::federation::spec::Sharing::PerSession);
        assert_eq!(github.max_processes, 32);
        assert_eq!(github.idle_timeout, std::time::Duration::from_secs(600));
        let crate::federation::spec::Endpoint::Stdio(files) =
            &config.mcp_servers["files"].spec.endpoint
        else {
            panic!("not stdio");
        };
        assert_eq!(files.sharing, crate::federation::spec::Sharing::Shared);
        assert_eq!(
            (files.max_processes, files.idle_timeout),
            (3, std::time::Duration::from_secs(30))
        );
        let shown = format!("{config:?}");
        assert!(shown.contains("GITHUB_PERSONAL_ACCESS_TOKEN"), "{shown}");
        assert!(!shown.contains("gh-secret-value"), "{shown}");
    }

    #[test]
    fn problems_of_stdio_servers_point_at_their_values() {
        let source = "\
[mcp_server.both]
url = \"http://127.0.0.1:1/mcp\"
command = [\"server\"]

[mcp_server.none]
prefix = \"n\"

[mcp_server.empty]
command = []

[mcp_server.mixed]
command = [\"server\"]
headers = { authorization = \"Bearer x\" }

[mcp_server.http]
url = \"http://127.0.0.1:1/mcp\"
sharing = \"shared\"

[mcp_server.bad]
command = [\"server\"]
sharing = \"sometimes\"
max_processes = 0
idle_timeout = \"0s\"
cwd = \"/no/such/dir\"
env = { \"A=B\" = \"x\" }
";
        assert_eq!(
            errors(source),
            [
                "t.toml:25:17: `A=B` is not an environment variable name",
                "t.toml:24:7: `/no/such/dir` is not a directory",
                "t.toml:21:11: unknown sharing `sometimes`",
                "t.toml:22:17: max_processes must be between 1 and 10000",
                "t.toml:23:16: idle_timeout must be more than zero",
                "t.toml:3:11: a server has either `url` or `command`, not both",
                "t.toml:9:11: `command` needs a program: `[\"program\", \"arg\", ...]`",
                "t.toml:17:11: `sharing` is for `command` (stdio) servers",
                "t.toml:13:29: `headers` is for `url` servers",
                "t.toml:5:1: MCP server `none` needs a `url` or a `command`",
            ]
        );
    }
}
