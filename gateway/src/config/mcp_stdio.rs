//! The stdio half of `[mcp_server.<name>]`: `command`, `env`, `cwd`, `sharing`, `max_processes`,
//! `idle_timeout`, checked.

use std::collections::BTreeMap;
use std::sync::Arc;

use tollgate_plugin_api::secret_source::ExposeSecret;
use toml::Spanned;

use super::defaults;
use super::mcp_servers::source_value;
use super::report::Report;
use super::schema::{HeaderValueSource, McpServerSection};
use crate::federation::spec::{EnvValue, Sharing, StdioSpec};

/// Most processes `max_processes` may allow.
const MAX_PROCESSES_LIMIT: i64 = 10_000;

/// The stdio server of `section` (whose `command` is `command`).
pub(super) fn build_stdio(
    section: &McpServerSection,
    command: &Spanned<Vec<String>>,
    report: &mut Report<'_>,
) -> Option<Arc<StdioSpec>> {
    let mut ok = true;
    if command.get_ref().first().is_none_or(String::is_empty) {
        report.error(
            command.span(),
            "`command` needs a program: `[\"program\", \"arg\", ...]`",
            None,
        );
        ok = false;
    }
    if command.get_ref().iter().any(|part| part.contains('\0')) {
        report.error(command.span(), "`command` holds a NUL character", None);
        ok = false;
    }
    for (key, span) in [
        (
            "headers",
            section.headers.values().next().map(Spanned::span),
        ),
        ("ca_file", section.ca_file.as_ref().map(Spanned::span)),
    ] {
        if let Some(span) = span {
            report.error(
                span,
                format!("`{key}` is for `url` servers"),
                Some("a stdio server gets its credentials through `env`".into()),
            );
            ok = false;
        }
    }
    let env = environment(&section.env, report);
    let cwd = section.cwd.as_ref().and_then(|cwd| {
        let path = std::path::PathBuf::from(cwd.get_ref());
        if path.is_dir() {
            Some(path)
        } else {
            report.error(
                cwd.span(),
                format!("`{}` is not a directory", cwd.get_ref()),
                None,
            );
            None
        }
    });
    if section.cwd.is_some() && cwd.is_none() {
        ok = false;
    }
    let sharing = match section
        .sharing
        .as_ref()
        .map(|s| (s.get_ref().as_str(), s.span()))
    {
        None | Some(("per-session", _)) => Sharing::PerSession,
        Some(("shared", _)) => Sharing::Shared,
        Some((other, span)) => {
            report.error(
                span,
                format!("unknown sharing `{other}`"),
                Some("`per-session` or `shared`".into()),
            );
            ok = false;
            Sharing::PerSession
        }
    };
    let max_processes = match &section.max_processes {
        None => defaults::MAX_PROCESSES,
        Some(n) if (1..=MAX_PROCESSES_LIMIT).contains(n.get_ref()) => {
            usize::try_from(*n.get_ref()).unwrap_or(defaults::MAX_PROCESSES)
        }
        Some(n) => {
            report.error(
                n.span(),
                format!("max_processes must be between 1 and {MAX_PROCESSES_LIMIT}"),
                None,
            );
            ok = false;
            defaults::MAX_PROCESSES
        }
    };
    let idle_timeout = match &section.idle_timeout {
        None => defaults::IDLE_TIMEOUT,
        Some(d) if !d.get_ref().0.is_zero() => d.get_ref().0,
        Some(d) => {
            report.error(d.span(), "idle_timeout must be more than zero", None);
            ok = false;
            defaults::IDLE_TIMEOUT
        }
    };
    let env = env?;
    ok.then(|| {
        Arc::new(StdioSpec {
            command: command.get_ref().clone(),
            env,
            cwd,
            sharing,
            max_processes,
            idle_timeout,
        })
    })
}

/// The url-server keys a stdio-only key must not be mixed with, reported where written.
pub(super) fn refuse_stdio_keys(section: &McpServerSection, report: &mut Report<'_>) -> bool {
    let written = [
        ("env", section.env.values().next().map(Spanned::span)),
        ("cwd", section.cwd.as_ref().map(Spanned::span)),
        ("sharing", section.sharing.as_ref().map(Spanned::span)),
        (
            "max_processes",
            section.max_processes.as_ref().map(Spanned::span),
        ),
        (
            "idle_timeout",
            section.idle_timeout.as_ref().map(Spanned::span),
        ),
    ];
    let mut ok = true;
    for (key, span) in written {
        if let Some(span) = span {
            report.error(
                span,
                format!("`{key}` is for `command` (stdio) servers"),
                None,
            );
            ok = false;
        }
    }
    ok
}

/// The variables of `env`, secrets read now.
fn environment(
    sources: &BTreeMap<String, Spanned<HeaderValueSource>>,
    report: &mut Report<'_>,
) -> Option<Vec<(String, EnvValue)>> {
    let mut out = Vec::with_capacity(sources.len());
    let mut ok = true;
    for (name, source) in sources {
        if name.is_empty() || name.contains(['=', '\0']) {
            report.error(
                source.span(),
                format!("`{name}` is not an environment variable name"),
                None,
            );
            ok = false;
            continue;
        }
        let Some(value) = source_value(name, source, report) else {
            ok = false;
            continue;
        };
        if value.expose_secret().contains('\0') {
            // The value itself is not repeated: it may be a credential.
            report.error(
                source.span(),
                format!("the value of `{name}` holds a NUL character"),
                None,
            );
            ok = false;
            continue;
        }
        out.push((name.clone(), EnvValue(value)));
    }
    ok.then_some(out)
}
