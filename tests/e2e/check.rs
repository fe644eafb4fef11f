//! `tollgate check` on broken configurations: located errors and exit code 1.

use tollgate_testkit::check;

use crate::common::{example_bin, tollgate_bin};

fn assert_located(text: &str, path: &std::path::Path, line: usize, needle: &str) {
    let prefix = format!("{}:{line}:", path.display());
    assert!(
        text.lines()
            .any(|l| l.contains(&prefix) && l.contains(needle)),
        "expected an error at line {line} mentioning `{needle}`, got:\n{text}"
    );
}

#[test]
fn valid_config_passes() {
    let (code, text, _) = check(&tollgate_bin(), "[[route]]\nname = \"a\"\nmatch = { path_prefix = \"/a\" }\nupstream = { url = \"http://127.0.0.1:9\" }\n", &[]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("ok (1 routes)"), "{text}");
}

#[test]
fn unknown_key() {
    let (code, text, path) = check(
        &tollgate_bin(),
        "[server]\nlisten = \"127.0.0.1:1\"\nlisten_port = 3\n",
        &[],
    );
    assert_eq!(code, 1);
    assert_located(&text, &path, 3, "unknown field `listen_port`");
}

#[test]
fn unknown_plugin_type() {
    let (code, text, path) = check(
        &tollgate_bin(),
        "[plugin.guard]\ntype = \"prompt-gaurd\"\n",
        &[],
    );
    assert_eq!(code, 1);
    assert_located(&text, &path, 2, "unknown plugin type `prompt-gaurd`");
    assert!(
        text.contains("hint: known plugin types: ") && text.contains("secret-injection"),
        "{text}"
    );
}

#[test]
fn missing_plugin() {
    let config = "[[route]]\nname = \"a\"\nmatch = { path_prefix = \"/a\" }\nupstream = { url = \"http://127.0.0.1:9\" }\nplugins = [\"auth\"]\n";
    let (code, text, path) = check(&tollgate_bin(), config, &[]);
    assert_eq!(code, 1);
    assert_located(&text, &path, 5, "names plugin `auth`, which is not defined");
}

#[test]
fn missing_env_var() {
    let config = "[plugin.key]\ntype = \"secret-injection\"\nheader = \"x-api-key\"\nvalue = { env = \"TOLLGATE_E2E_UNSET_KEY\" }\n";
    let (code, text, path) = check(&tollgate_bin(), config, &[]);
    assert_eq!(code, 1);
    assert_located(&text, &path, 4, "TOLLGATE_E2E_UNSET_KEY");
    let (code, text, _) = check(
        &tollgate_bin(),
        config,
        &[("TOLLGATE_E2E_UNSET_KEY", "sk-abc-secret")],
    );
    assert_eq!(code, 0, "{text}");
    assert!(!text.contains("sk-abc-secret"));
}

#[test]
fn bad_regex_in_a_custom_plugin() {
    let config = "[plugin.words]\ntype = \"forbidden-words\"\npattern = \"(unclosed\"\n";
    let (code, text, path) = check(&example_bin(), config, &[]);
    assert_eq!(code, 1);
    assert_located(&text, &path, 3, "bad regex");
}

#[test]
fn bad_upstream_url_and_duration() {
    let config = "[[route]]\nname = \"a\"\nmatch = { path_prefix = \"/a\" }\nupstream = { url = \"ftp://x\", timeout = \"10 parsecs\" }\n";
    let (code, text, path) = check(&tollgate_bin(), config, &[]);
    assert_eq!(code, 1);
    assert_located(&text, &path, 4, "");
    assert!(text.contains("10 parsecs"), "{text}");
}

#[test]
fn bad_telemetry_and_listener_tls_settings() {
    let config = "[server]\ntls = { cert = \"/nonexistent/cert.pem\", key = \"/nonexistent/key.pem\", client_auth = \"optional\" }\n\n[telemetry]\notlp_endpoint = \"otel-collector:4317\"\notlp_protocol = \"thrift\"\ntrace_sample_ratio = 1.5\n";
    let (code, text, path) = check(&tollgate_bin(), config, &[]);
    assert_eq!(code, 1, "{text}");
    assert_located(&text, &path, 2, "cannot read `/nonexistent/cert.pem`");
    assert_located(&text, &path, 2, "client_auth needs client_ca");
    assert_located(&text, &path, 5, "is not an http:// or https:// URL");
    assert_located(&text, &path, 6, "unknown OTLP protocol `thrift`");
    assert_located(&text, &path, 7, "between 0.0 and 1.0");
}

#[test]
fn a_metric_label_pattern_with_a_star_inside_is_refused() {
    let config =
        "[telemetry]\nmetric_models = [\"claude-*\"]\nmetric_tools = [\"add\", \"get*user\"]\n";
    let (code, text, path) = check(&tollgate_bin(), config, &[]);
    assert_eq!(code, 1, "{text}");
    assert_located(
        &text,
        &path,
        3,
        "pattern `get*user`: `*` is only allowed at the end",
    );
    let (code, text, _) = check(
        &tollgate_bin(),
        "[telemetry]\nmetric_models = [\"claude-*\", \"*\"]\n",
        &[],
    );
    assert_eq!(code, 0, "{text}");
}
