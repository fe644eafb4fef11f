//! What the scenarios share: the upstreams, the gateway's routes and plugins, callers' tokens,
//! the process's open-file limit, loopback source addresses, and how each scenario reports.

use std::io::{BufRead, Read};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_json::Value;
use tollgate::demo::{DemoUpstreams, EchoOptions};
use tollgate::token::{mint, TokenRequest};
use tollgate_testkit::{GatewayBuilder, RunningGateway};

use crate::stall::StallUpstream;

/// The provider key the gateway injects; the demo models accept no other.
pub const PROVIDER_KEY: &str = "soak-provider-key";
/// The HS256 secret of the `jwt` plugin.
const JWT_SECRET: &str = "soak-jwt-secret-long-enough-for-hs256";
/// The tokens' issuer, which the plugin requires.
const ISSUER: &str = "tollgate-soak";

/// Set in the environment of a copy of this benchmark that serves the slow model
/// ([`SlowModel`]): its pause between events in milliseconds.
const SERVE_SLOW_MODEL: &str = "TOLLGATE_SOAK_SERVE_SLOW_MODEL";

/// The upstreams every gateway of the run points at, started once.
pub struct Upstreams {
    /// The demo MCP servers (math at `/mcp`, text at `/text/mcp`) and an echo model answering
    /// at once.
    pub demo: DemoUpstreams,
    /// A second echo model that pauses between streamed events: streams that stay open.
    pub slow: SlowModel,
    /// An SSE upstream that stalls after a few events.
    pub stall: StallUpstream,
}

impl Upstreams {
    /// Starts them; `event_delay` is the slow model's pause between events.
    pub async fn start(event_delay: Duration) -> Self {
        let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
        Self {
            demo: DemoUpstreams::start(any, any, echo_options(Duration::ZERO))
                .expect("demo upstreams"),
            slow: SlowModel::start(event_delay),
            stall: StallUpstream::start().await,
        }
    }

    /// Stops the demo servers.
    pub fn shutdown(self) {
        self.demo.shutdown();
    }
}

fn echo_options(event_delay: Duration) -> EchoOptions {
    EchoOptions {
        event_delay,
        expected_api_key: Some(PROVIDER_KEY.into()),
    }
}

/// The demo echo model pausing between streamed events, in a process of its own: a copy of
/// this benchmark. Each of its streams holds a socket, and a process may have no more open
/// files than its hard limit (20,000 on some machines, which only a privileged process can
/// raise): the benchmark's clients and the model's ends of 10,000 streams would not fit in one.
pub struct SlowModel {
    child: Child,
    addr: SocketAddr,
}

impl SlowModel {
    /// Starts the copy and reads the address it listens on.
    fn start(event_delay: Duration) -> Self {
        let exe = std::env::current_exe().expect("the benchmark's path");
        let mut child = Command::new(exe)
            .env(SERVE_SLOW_MODEL, event_delay.as_millis().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the slow model");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("the slow model's stdout");
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the slow model's address");
        let addr = line.trim().parse().expect("the slow model's address");
        Self { child, addr }
    }

    /// Where the model listens (paths `/v1/...`).
    pub fn llm_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for SlowModel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// In the copy [`SlowModel`] starts: serves the model, prints its address and returns never
/// (the process exits when the benchmark closes its stdin or dies). Elsewhere returns at once.
pub fn serve_slow_model_if_asked() {
    let Some(delay) = std::env::var(SERVE_SLOW_MODEL)
        .ok()
        .and_then(|ms| ms.parse().ok())
    else {
        return;
    };
    let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
    let model = DemoUpstreams::start(any, any, echo_options(Duration::from_millis(delay)))
        .expect("slow model");
    println!("{}", model.llm_addr());
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    std::process::exit(0);
}

/// The routes, all behind the plugins of a production LLM and MCP set-up unless named
/// `*-plain` (the provider key alone):
///
/// - `/mcp`: the demo math server (`jwt`, `mcp-rbac`, `prompt-guard`);
/// - `/tools`: math and text federated (`math__add`, `text__upper`, ...), same plugins;
/// - `/anthropic`: the echo model (`jwt`, `prompt-guard`, `token-ratelimit`,
///   `secret-injection`);
/// - `/slow`, `/slow-plain`: the slow echo model; `/slow-h2`, `/slow-h2-plain`: the same over h2c
///   (one upstream connection per 100 streams);
/// - `/stall`, `/stall-plain`: the stalling upstream, with `upstream.timeout = stall_timeout`.
pub fn routes(upstreams: &Upstreams, stall_timeout: Duration) -> String {
    let mcp = upstreams.demo.mcp_addr();
    let llm = upstreams.demo.llm_addr();
    let slow = upstreams.slow.llm_addr();
    let stall = upstreams.stall.addr;
    let stall_timeout = stall_timeout.as_millis();
    format!(
        r#"
[plugin.auth]
type = "jwt"
secret = {{ env = "SOAK_JWT_SECRET" }}
issuer = "{ISSUER}"
token_from = ["authorization", "x-api-key"]
claims_to_headers = {{ sub = "x-user-id" }}

[plugin.tool-access]
type = "mcp-rbac"
default = "deny"
rules = [{{ tools = ["add", "multiply"], claim = "groups", any_of = ["math-users"] }}]

[plugin.federated-access]
type = "mcp-rbac"
default = "deny"
rules = [
  {{ tools = ["math__*"], claim = "groups", any_of = ["math-users"] }},
  {{ tools = ["text__*"], claim = "groups", any_of = ["math-users", "sales"] }},
]

# Large enough never to refuse: the soak measures the limiter's bookkeeping, not refusals.
[plugin.budget]
type = "token-ratelimit"
unit = "tokens"
key = "jwt.sub"
max_tokens = 1000000000
refill_tokens = 1000000000
refill_interval = "1s"

# `ticket` matches only capitals: `text__upper` makes them, so tool results get masked too.
[plugin.guard]
type = "prompt-guard"
rules = [
  {{ regex = "(?i)ignore (previous|all) instructions", action = "reject", name = "injection" }},
  {{ builtin = "anthropic_api_key", action = "reject" }},
  {{ builtin = "email", action = "mask" }},
  {{ builtin = "credit_card", action = "mask" }},
  {{ regex = "TICKET-[0-9]+", action = "mask", name = "ticket" }},
]

[plugin.provider-key]
type = "secret-injection"
header = "x-api-key"
value = {{ env = "SOAK_PROVIDER_KEY" }}

[[route]]
name = "mcp"
match = {{ path_prefix = "/mcp" }}
upstream = {{ url = "http://{mcp}/mcp", kind = "mcp" }}
plugins = ["auth", "tool-access", "guard"]

[mcp_server.math]
url = "http://{mcp}/mcp"

[mcp_server.text]
url = "http://{mcp}/text/mcp"

[[route]]
name = "tools"
match = {{ path_prefix = "/tools" }}
upstream = {{ kind = "mcp", servers = ["math", "text"] }}
plugins = ["auth", "federated-access", "guard"]

[[route]]
name = "anthropic"
match = {{ path_prefix = "/anthropic" }}
upstream = {{ url = "http://{llm}", kind = "llm", strip_prefix = true }}
plugins = ["auth", "guard", "budget", "provider-key"]

[[route]]
name = "slow"
match = {{ path_prefix = "/slow" }}
upstream = {{ url = "http://{slow}", kind = "llm", strip_prefix = true }}
plugins = ["auth", "guard", "budget", "provider-key"]

[[route]]
name = "slow-plain"
match = {{ path_prefix = "/slow-plain" }}
upstream = {{ url = "http://{slow}", kind = "llm", strip_prefix = true }}
plugins = ["provider-key"]

[[route]]
name = "slow-h2"
match = {{ path_prefix = "/slow-h2" }}
upstream = {{ url = "http://{slow}", kind = "llm", strip_prefix = true, http2 = true }}
plugins = ["auth", "guard", "budget", "provider-key"]

[[route]]
name = "slow-h2-plain"
match = {{ path_prefix = "/slow-h2-plain" }}
upstream = {{ url = "http://{slow}", kind = "llm", strip_prefix = true, http2 = true }}
plugins = ["provider-key"]

[[route]]
name = "stall"
match = {{ path_prefix = "/stall" }}
upstream = {{ url = "http://{stall}", kind = "llm", strip_prefix = true, timeout = "{stall_timeout}ms" }}
plugins = ["auth", "guard", "budget", "provider-key"]

[[route]]
name = "stall-plain"
match = {{ path_prefix = "/stall-plain" }}
upstream = {{ url = "http://{stall}", kind = "llm", strip_prefix = true, timeout = "{stall_timeout}ms" }}
plugins = ["provider-key"]
"#
    )
}

/// Starts the release gateway with `routes`, `threads` workers and the extra `[server]` lines,
/// then those of TOLLGATE_SOAK_SERVER (`;` between lines: `read_buffer = 0;h2c = true`), for
/// comparing settings; it logs at `warn` and writes its audit log to a file of its directory.
pub async fn start_gateway(
    routes: &str,
    threads: usize,
    server_lines: &[String],
) -> RunningGateway {
    let mut builder = GatewayBuilder::new(env!("CARGO_BIN_EXE_tollgate"), routes)
        .threads(threads)
        .env("SOAK_JWT_SECRET", JWT_SECRET)
        .env("SOAK_PROVIDER_KEY", PROVIDER_KEY)
        .log_filter("warn")
        .audit_log();
    for line in server_lines {
        builder = builder.server_line(line);
    }
    let extra = std::env::var("TOLLGATE_SOAK_SERVER").unwrap_or_default();
    for line in extra.split(';').map(str::trim).filter(|l| !l.is_empty()) {
        builder = builder.server_line(line);
    }
    builder.start().await
}

/// An HS256 token of the gateway's issuer for `subject` in the comma-separated `groups`, valid
/// for `ttl`.
pub fn token(subject: &str, groups: &str, ttl: Duration) -> String {
    let request = TokenRequest {
        subject: subject.into(),
        issuer: Some(ISSUER.into()),
        audience: None,
        ttl_secs: ttl.as_secs(),
        claims: vec![("groups".into(), groups.into())],
        kid: None,
    };
    mint(&request, Algorithm::HS256, JWT_SECRET.as_bytes()).expect("mint a token")
}

/// Raises this process's open-file limit to `want`, the hard limit too when allowed (root or
/// `CAP_SYS_RESOURCE`); the gateway processes it starts inherit it. Returns the soft limit in
/// force afterwards.
pub fn raise_fd_limit(want: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `getrlimit` writes into the struct it is given, which lives across the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 0;
    }
    if limit.rlim_cur >= want {
        return limit.rlim_cur;
    }
    let raised = libc::rlimit {
        rlim_cur: want,
        rlim_max: limit.rlim_max.max(want),
    };
    // SAFETY: `setrlimit` only reads the struct it is given.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        return want;
    }
    // Not allowed past the hard limit: up to it.
    let capped = libc::rlimit {
        rlim_cur: limit.rlim_max,
        rlim_max: limit.rlim_max,
    };
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &capped) } == 0 {
        limit.rlim_max
    } else {
        limit.rlim_cur
    }
}

/// The loopback address the `index`th of many connections comes from: `per_address` of them on
/// each of 127.0.0.10, 127.0.0.11, ... (all of 127/8 is the loopback interface on Linux), so
/// that no source address runs short of ephemeral ports.
pub fn source_address(index: usize, per_address: usize) -> IpAddr {
    let host = 10 + (index / per_address.max(1)).min(240);
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, host as u8))
}

/// A series of the gateway's `/metrics` (0 when it is not there yet).
pub async fn metric(gateway: &RunningGateway, series: &str) -> f64 {
    tollgate_testkit::sample(&gateway.metrics().await, series).unwrap_or(0.0)
}

/// KiB as MiB.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Polls `done` every 100 ms for up to `within`; whether it came true.
pub async fn settles(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if done() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One pass criterion and whether it held.
pub struct Verdict {
    /// The criterion with the figure it was judged on.
    pub what: String,
    pub holds: bool,
}

impl Verdict {
    pub fn new(holds: bool, what: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            holds,
        }
    }
}

/// What a scenario found: its criteria and its figures for the JSON report.
pub struct Outcome {
    pub scenario: &'static str,
    pub verdicts: Vec<Verdict>,
    pub report: Value,
}

impl Outcome {
    /// Prints the verdicts under the scenario's tables.
    pub fn print_verdicts(&self) {
        println!();
        for verdict in &self.verdicts {
            let mark = if verdict.holds { "holds" } else { "FAILS" };
            println!("- **{mark}**: {}", verdict.what);
        }
    }
}

/// The lines of the gateway's log at `WARN` or `ERROR` (Pingora's and ours), counted, with the
/// first few distinct messages (timestamps cut).
pub fn log_warnings(gateway: &RunningGateway) -> (usize, Vec<String>) {
    let log = gateway.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    let mut distinct: Vec<String> = Vec::new();
    for line in &lines {
        let (level, message) = match line.split_once(" WARN ") {
            Some((_, rest)) => ("WARN", rest),
            None => (
                "ERROR",
                line.split_once(" ERROR ").map_or(*line, |(_, rest)| rest),
            ),
        };
        let message: String = format!("{level} {message}").chars().take(200).collect();
        if distinct.len() < 5 && !distinct.contains(&message) {
            distinct.push(message);
        }
    }
    (lines.len(), distinct)
}
