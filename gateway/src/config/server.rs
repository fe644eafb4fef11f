//! `[server]`: the process-level settings.

use std::sync::Arc;
use std::time::Duration;

use tollgate_plugin_api::secret_source::{ExposeSecret, SecretString};

use toml::Spanned;

use super::defaults;
use super::report::Report;
use super::schema::ServerSection;
use super::trusted_proxies::{trusted_proxies, TrustedProxies};
use super::units::ByteSize;

/// Process-level settings from `[server]`.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Proxy listener.
    pub listen: String,
    /// Admin listener, if enabled.
    pub admin: Option<String>,
    /// Proxy worker threads.
    pub threads: usize,
    /// TLS on the proxy listener, loaded.
    pub tls: Option<crate::tls::ListenerTls>,
    /// Accept h2c.
    pub h2c: bool,
    /// After SIGTERM, how long readiness fails while the gateway still serves.
    pub drain_delay: Duration,
    /// After the listeners stop, how long requests in flight may take.
    pub grace_period: Duration,
    /// After the grace period, how long the runtimes get to stop.
    pub shutdown_timeout: Duration,
    /// Socket for listener handover to a new process.
    pub upgrade_sock: String,
    /// Configuration polling interval; `None`: only on SIGHUP.
    pub watch_interval: Option<Duration>,
    /// Bearer token of the admin API (off when `None`); read again on every reload.
    pub admin_token: Option<Arc<SecretString>>,
    /// Peers whose forwarding headers are believed (read again on every reload).
    pub trusted_proxies: TrustedProxies,
    /// Deadlines and caps of client connections.
    pub connections: ConnectionLimits,
    /// Bytes of the read buffer in front of each client connection's socket (0: none).
    pub read_buffer: usize,
}

/// Deadlines and caps of client connections (`[server]`; a restart applies a change).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Longest a client may take to send a request head.
    pub header_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// Connections open at once from one address, if limited.
    pub max_per_client: Option<usize>,
}

/// The shortest admin token accepted: guessing one must be out of reach.
const MIN_ADMIN_TOKEN: usize = 32;

/// The settings of `section`, its problems added to `report`.
pub(super) fn server_settings(section: &ServerSection, report: &mut Report<'_>) -> ServerSettings {
    let s = section;
    ServerSettings {
        listen: s.listen.clone(),
        admin: (!s.admin.is_empty()).then(|| s.admin.clone()),
        threads: threads(s.threads.as_ref(), report),
        tls: s
            .tls
            .as_ref()
            .and_then(|tls| super::listener_tls::load(tls, report)),
        h2c: s.h2c,
        drain_delay: s.drain_delay.map_or(defaults::DRAIN_DELAY, |d| d.0),
        grace_period: s.grace_period.map_or(defaults::GRACE_PERIOD, |d| d.0),
        shutdown_timeout: s
            .shutdown_timeout
            .map_or(defaults::SHUTDOWN_TIMEOUT, |d| d.0),
        upgrade_sock: s.upgrade_sock.clone(),
        watch_interval: match s.watch_interval {
            None => Some(defaults::WATCH_INTERVAL),
            Some(d) if d.0.is_zero() => None,
            Some(d) => Some(d.0),
        },
        admin_token: admin_token(s, report),
        trusted_proxies: trusted_proxies(&s.trusted_proxies, report),
        connections: ConnectionLimits {
            header_timeout: positive(s.header_timeout.map(|d| d.0), defaults::HEADER_TIMEOUT),
            max_connections: at_least_one(s.max_connections.as_ref(), "max_connections", report)
                .unwrap_or(defaults::MAX_CONNECTIONS),
            max_per_client: at_least_one(
                s.max_connections_per_client.as_ref(),
                "max_connections_per_client",
                report,
            ),
        },
        read_buffer: read_buffer(s.read_buffer.as_ref(), s.tls.is_some(), report),
    }
}

/// The most a client connection's read buffer may be: past this it only costs memory.
const MAX_READ_BUFFER: u64 = 1 << 20;

/// `[server] read_buffer` (its default depends on `tls`), reported where it is written when
/// over [`MAX_READ_BUFFER`].
fn read_buffer(value: Option<&Spanned<ByteSize>>, tls: bool, report: &mut Report<'_>) -> usize {
    let default = if tls {
        defaults::TLS_READ_BUFFER
    } else {
        defaults::READ_BUFFER
    };
    let Some(value) = value else {
        return default as usize;
    };
    let bytes = value.get_ref().0;
    if bytes > MAX_READ_BUFFER {
        report.error(
            value.span(),
            format!("read_buffer must be at most 1MiB, not {bytes} bytes"),
            None,
        );
        return default as usize;
    }
    bytes as usize
}

/// `value`, or `default` when absent or zero (a zero deadline would refuse every client).
fn positive(value: Option<Duration>, default: Duration) -> Duration {
    value.filter(|d| !d.is_zero()).unwrap_or(default)
}

/// A count that must be at least 1, reported where it is written otherwise.
fn at_least_one(
    value: Option<&Spanned<usize>>,
    key: &str,
    report: &mut Report<'_>,
) -> Option<usize> {
    let value = value?;
    if *value.get_ref() == 0 {
        report.error(value.span(), format!("{key} must be at least 1"), None);
        return None;
    }
    Some(*value.get_ref())
}

fn admin_token(section: &ServerSection, report: &mut Report<'_>) -> Option<Arc<SecretString>> {
    let source = section.admin_token.as_ref()?;
    match source.get_ref().load("admin_token") {
        Ok(token) if token.expose_secret().len() >= MIN_ADMIN_TOKEN => Some(Arc::new(token)),
        Ok(_) => {
            report.error(
                source.span(),
                format!("admin_token must be at least {MIN_ADMIN_TOKEN} characters"),
                Some("e.g. `openssl rand -base64 32`".into()),
            );
            None
        }
        Err(e) => {
            report.error(source.span(), e.to_string(), None);
            None
        }
    }
}

fn threads(threads: Option<&Spanned<usize>>, report: &mut Report<'_>) -> usize {
    let Some(threads) = threads else {
        return defaults::THREADS;
    };
    if *threads.get_ref() == 0 {
        report.error(threads.span(), "threads must be at least 1", None);
    }
    (*threads.get_ref()).max(1)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::errors;

    #[test]
    fn the_read_buffer_defaults_to_none_without_tls_and_to_pingoras_with_it() {
        let path = std::path::Path::new("t.toml");
        let mut report = super::Report::new(path, "");
        assert_eq!(super::read_buffer(None, false, &mut report), 0);
        assert_eq!(super::read_buffer(None, true, &mut report), 64 << 10);
    }

    #[test]
    fn a_problem_in_server_points_at_its_value() {
        let source = "\
[server]
listen = \"127.0.0.1:1\"
  threads = 0
tls = { cert = \"/nonexistent/cert.pem\", key = \"/nonexistent/key.pem\", client_auth = \"optional\" }
";
        let errors = errors(source);
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert_eq!(errors[0], "t.toml:3:13: threads must be at least 1");
        assert_eq!(
            errors[1],
            "t.toml:4:85: client_auth needs client_ca (the CAs that sign client certificates)"
        );
        assert!(
            errors[2].starts_with("t.toml:4:16: cannot read `/nonexistent/cert.pem`"),
            "{errors:?}"
        );
    }

    #[test]
    fn a_tls_file_that_cannot_be_read_points_at_its_key() {
        let source = "[server.tls]\ncert = \"/etc/hostname\"\nkey = \"/nonexistent/key.pem\"\n";
        let errors = errors(source);
        assert!(
            errors[0].starts_with("t.toml:3:7: cannot read `/nonexistent/key.pem`"),
            "{errors:?}"
        );
    }
}
