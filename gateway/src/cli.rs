//! The command line: `run`, `check`, `demo`, `token`, `mcp lock`, `keys`, `spend`. Shared by the stock binary and operators' own
//! binaries, so a custom build keeps the same interface.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::gateway::{Gateway, ServeOptions};

/// tollgate: a programmable gateway for AI-agent traffic (MCP and LLM APIs).
#[derive(Debug, Parser)]
#[command(name = "tollgate", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The configuration file argument of `run` and `check`.
#[derive(Debug, clap::Args)]
struct ConfigArg {
    /// Configuration file.
    #[arg(
        short,
        long,
        env = "TOLLGATE_CONFIG",
        default_value = "conf/tollgate.toml"
    )]
    config: PathBuf,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway with a configuration file.
    Run {
        #[command(flatten)]
        config: ConfigArg,
        /// Take over the listening sockets of the running gateway, which is then sent SIGQUIT
        /// (zero-downtime upgrade; see docs/operations.md).
        #[arg(long)]
        upgrade: bool,
    },
    /// Validate a configuration file and exit (status 1 when invalid).
    Check(ConfigArg),
    /// Mint a signed JWT from a local key (for tutorials and tests), printed on stdout.
    Token(TokenArgs),
    /// MCP tools: `tollgate mcp lock` writes the lock file of `mcp-tool-pin` mode "lock".
    #[command(subcommand)]
    Mcp(McpCommand),
    /// Keys of the `api-key` plugin: create, list and revoke them through the admin API of the
    /// configured gateway, or generate one for a read-only key file.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Spending of a `budget` plugin: read it, and set or clear a key's own limit, through the
    /// admin API of the configured gateway.
    #[command(subcommand)]
    Spend(SpendCommand),
    /// Run the gateway with a built-in configuration and in-process demo upstreams.
    #[cfg(feature = "demo")]
    Demo {
        /// Proxy listener.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Admin listener.
        #[arg(long, default_value = "127.0.0.1:9901")]
        admin: String,
    },
}

/// `tollgate mcp ...`.
#[derive(Debug, Subcommand)]
enum McpCommand {
    /// List a route's tools (through its servers, as its clients see them) and write the lock
    /// file of `mcp-tool-pin` mode "lock".
    Lock {
        #[command(flatten)]
        config: ConfigArg,
        /// The route (its `name`).
        #[arg(long)]
        route: String,
        /// The lock file to write (`-`: standard output).
        #[arg(short, long)]
        output: PathBuf,
    },
}

/// Which `api-key` instance of which gateway a `keys` command talks to.
#[derive(Debug, clap::Args)]
struct KeysTarget {
    #[command(flatten)]
    config: ConfigArg,
    /// The `api-key` plugin instance (its `[plugin.<name>]`).
    #[arg(long, default_value = "keys")]
    plugin: String,
}

/// The identity and lifetime of a new key.
#[derive(Debug, clap::Args)]
struct KeyIdentity {
    /// The identity's subject (who calls with the key).
    #[arg(long)]
    subject: String,
    /// A claim of the identity, `name=value` (repeatable): `--claim team=eng`.
    #[arg(long = "claim")]
    claims: Vec<String>,
    /// A label for people.
    #[arg(long)]
    name: Option<String>,
    /// The key stops working this long after its creation (`90d`, `12h`).
    #[arg(long)]
    expires_in: Option<String>,
}

impl From<KeyIdentity> for crate::keys_cli::KeySpec {
    fn from(identity: KeyIdentity) -> Self {
        Self {
            subject: identity.subject,
            claims: identity.claims,
            name: identity.name,
            expires_in: identity.expires_in,
        }
    }
}

/// `tollgate keys ...`.
#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key (printed once, with its record, as JSON).
    Create {
        #[command(flatten)]
        target: KeysTarget,
        #[command(flatten)]
        identity: KeyIdentity,
    },
    /// List the keys (never the keys themselves).
    List {
        #[command(flatten)]
        target: KeysTarget,
        /// Only this subject's keys.
        #[arg(long)]
        subject: Option<String>,
    },
    /// Revoke a key, at once on every replica that shares the store.
    Revoke {
        #[command(flatten)]
        target: KeysTarget,
        /// The key's id (`key_...`, from `list`).
        id: String,
    },
    /// Generate a key offline for a read-only key file (`store = { file = ... }`): the key on
    /// standard error, its `[[key]]` entry (hash only) on standard output.
    Generate(KeyIdentity),
}

fn keys(gateway: &Gateway, command: KeysCommand) -> ExitCode {
    use crate::keys_cli::{call_admin, generate, KeysAction};
    let (target, action) = match command {
        KeysCommand::Generate(identity) => {
            return match generate(&identity.into()) {
                Ok((key, entry)) => {
                    eprintln!("key (shown once, hand it over now): {key}");
                    print!("{entry}");
                    std::io::Write::flush(&mut std::io::stdout()).ok();
                    ExitCode::SUCCESS
                }
                Err(error) => fail(error),
            };
        }
        KeysCommand::Create { target, identity } => (target, KeysAction::Create(identity.into())),
        KeysCommand::List { target, subject } => (target, KeysAction::List { subject }),
        KeysCommand::Revoke { target, id } => (target, KeysAction::Revoke { id }),
    };
    print_answer(call_admin(
        gateway,
        &target.config.config,
        &target.plugin,
        action,
    ))
}

/// Prints an admin API answer as pretty JSON, or its error.
fn print_answer<E: std::fmt::Display>(answer: Result<serde_json::Value, E>) -> ExitCode {
    match answer {
        Ok(answer) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&answer).unwrap_or_else(|_| answer.to_string())
            );
            ExitCode::SUCCESS
        }
        Err(error) => fail(error),
    }
}

/// Which `budget` instance of which gateway a `spend` command talks to.
#[derive(Debug, clap::Args)]
struct SpendTarget {
    #[command(flatten)]
    config: ConfigArg,
    /// The `budget` plugin instance (its `[plugin.<name>]`).
    #[arg(long, default_value = "spend")]
    plugin: String,
}

/// `tollgate spend ...`.
#[derive(Debug, Subcommand)]
enum SpendCommand {
    /// Each budget key's spending in the current period, its limit and what is left.
    Show {
        #[command(flatten)]
        target: SpendTarget,
        /// Only this budget key (`eng` for `key = "jwt.team"`).
        #[arg(long)]
        key: Option<String>,
    },
    /// Give a budget key its own limit (at once, on every replica sharing the store).
    Override {
        #[command(flatten)]
        target: SpendTarget,
        /// The budget key.
        #[arg(long)]
        key: String,
        /// Its limit in USD for each period.
        #[arg(long)]
        limit_usd: f64,
    },
    /// Give a budget key the configured limit again.
    Clear {
        #[command(flatten)]
        target: SpendTarget,
        /// The budget key.
        #[arg(long)]
        key: String,
    },
}

fn spend(gateway: &Gateway, command: SpendCommand) -> ExitCode {
    use crate::keys_cli::{admin_request, query_value};
    use reqwest::Method;
    let (target, method, path, body) = match command {
        SpendCommand::Show { target, key } => {
            let query = key.map_or_else(String::new, |k| format!("?key={}", query_value(&k)));
            let path = format!("{}/spend{query}", target.plugin);
            (target, Method::GET, path, None)
        }
        SpendCommand::Override {
            target,
            key,
            limit_usd,
        } => {
            let path = format!("{}/overrides", target.plugin);
            let body = serde_json::json!({"key": key, "limit_usd": limit_usd});
            (target, Method::POST, path, Some(body))
        }
        SpendCommand::Clear { target, key } => {
            let path = format!("{}/overrides?key={}", target.plugin, query_value(&key));
            (target, Method::DELETE, path, None)
        }
    };
    print_answer(admin_request(
        gateway,
        &target.config.config,
        method,
        &path,
        body,
    ))
}

/// Parses the command line and runs the command with `gateway`.
pub fn main(gateway: Gateway) -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Run { config, upgrade } => run(&gateway, &config.config, upgrade),
        Command::Check(arg) => check(&gateway, &arg.config),
        #[cfg(feature = "demo")]
        Command::Demo { listen, admin } => crate::demo::command::run(&gateway, &listen, &admin),
        Command::Token(args) => token(args),
        Command::Keys(command) => keys(&gateway, command),
        Command::Spend(command) => spend(&gateway, command),
        Command::Mcp(McpCommand::Lock {
            config,
            route,
            output,
        }) => match crate::mcp_lock::write_lock(&gateway, &config.config, &route, &output) {
            Ok(count) => {
                eprintln!(
                    "{count} tools of route `{route}` locked in {}",
                    output.display()
                );
                ExitCode::SUCCESS
            }
            Err(error) => fail(error),
        },
    }
}

/// Arguments of `tollgate token`.
#[derive(Debug, clap::Args)]
struct TokenArgs {
    /// PEM private key file (RS*, PS*, ES*, EdDSA).
    #[arg(long, conflicts_with = "secret_env")]
    key: Option<PathBuf>,
    /// Environment variable holding an HMAC secret (HS*).
    #[arg(long)]
    secret_env: Option<String>,
    /// Signing algorithm.
    #[arg(long, default_value = "RS256")]
    alg: String,
    /// `sub` claim.
    #[arg(long)]
    sub: String,
    /// `iss` claim.
    #[arg(long)]
    iss: Option<String>,
    /// `aud` claim.
    #[arg(long)]
    aud: Option<String>,
    /// `kid` header.
    #[arg(long)]
    kid: Option<String>,
    /// Lifetime (`"1h"`, `"15m"`).
    #[arg(long, default_value = "1h")]
    ttl: String,
    /// Extra claim `name=value` (commas make an array: `groups=a,b`); repeatable.
    #[arg(long = "claim", value_name = "NAME=VALUE")]
    claims: Vec<String>,
}

/// Prints `message` as an error; the failure exit code.
fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

fn token(args: TokenArgs) -> ExitCode {
    let Ok(alg) = args.alg.parse::<jsonwebtoken::Algorithm>() else {
        return fail(format!("unknown algorithm `{}`", args.alg));
    };
    let material = match (&args.key, &args.secret_env) {
        (Some(path), _) => match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) => return fail(format!("cannot read {}: {e}", path.display())),
        },
        (None, Some(var)) => match std::env::var(var) {
            Ok(secret) => secret.into_bytes(),
            Err(_) => return fail(format!("environment variable `{var}` is not set")),
        },
        (None, None) => return fail("give --key FILE or --secret-env VAR"),
    };
    let ttl = match crate::config::units::parse_duration(&args.ttl) {
        Ok(ttl) => ttl.as_secs(),
        Err(e) => return fail(e),
    };
    let mut claims = Vec::new();
    for claim in &args.claims {
        match claim.split_once('=') {
            Some((name, value)) => claims.push((name.to_string(), value.to_string())),
            None => return fail(format!("`{claim}` is not NAME=VALUE")),
        }
    }
    let request = crate::token::TokenRequest {
        subject: args.sub,
        issuer: args.iss,
        audience: args.aud,
        ttl_secs: ttl,
        claims,
        kid: args.kid,
    };
    match crate::token::mint(&request, alg, &material) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

fn init_logging() {
    use tracing_subscriber::filter::FilterExt;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,pingora_core=warn,pingora_proxy=warn")
    });
    // Colours only on a terminal: log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let format = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let format = if std::env::var("TOLLGATE_LOG_FORMAT").as_deref() == Ok("json") {
        format.json().boxed()
    } else {
        format.boxed()
    };
    // Pingora's debug and trace lines print whole request and response heads (the provider
    // key that `secret-injection` adds, clients' tokens): never written, whatever `RUST_LOG`
    // asks for.
    let no_pingora_heads = tracing_subscriber::filter::filter_fn(|meta| {
        !meta.target().starts_with("pingora") || *meta.level() <= tracing::Level::INFO
    });
    // Pingora logs through the `log` crate; `try_init` installs the bridge too.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(format.with_filter(no_pingora_heads.and(NoClientHeadFailures)))
        .try_init();
}

/// Leaves out Pingora's ERROR for a request head that failed on the client's side (it did not
/// arrive within `header_timeout`, or the client closed the connection in the middle of it):
/// one line per connection, so as many as an attacker opens. The timeouts are counted
/// (`tollgate_client_header_timeouts_total`); a connection's first head never gets this far
/// (`connections` reads it before Pingora does), later heads on a kept-alive connection do.
struct NoClientHeadFailures;

impl<S> tracing_subscriber::layer::Filter<S> for NoClientHeadFailures {
    fn enabled(
        &self,
        _: &tracing::Metadata<'_>,
        _: &tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        true
    }

    fn event_enabled(
        &self,
        event: &tracing::Event<'_>,
        _: &tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        if *event.metadata().level() != tracing::Level::ERROR {
            return true;
        }
        let mut fields = LogFields::default();
        event.record(&mut fields);
        // Pingora's lines come through the `log` bridge: their target is a field.
        let target = fields
            .target
            .as_deref()
            .unwrap_or(event.metadata().target());
        !(target.starts_with("pingora_proxy")
            && fields
                .message
                .as_deref()
                .is_some_and(is_client_head_failure))
    }
}

/// Whether Pingora's log `message` is a request head lost to the client (see
/// [`NoClientHeadFailures`]).
fn is_client_head_failure(message: &str) -> bool {
    message.starts_with("Fail to proxy: Downstream")
        && message.contains("while reading request headers")
}

/// The message of an event, and the target of one from the `log` bridge.
#[derive(Default)]
struct LogFields {
    message: Option<String>,
    target: Option<String>,
}

impl tracing::field::Visit for LogFields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = Some(format!("{value:?}")),
            "log.target" => self.target = Some(format!("{value:?}")),
            _ => {}
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "message" => self.message = Some(value.to_owned()),
            "log.target" => self.target = Some(value.to_owned()),
            _ => {}
        }
    }
}

fn check(gateway: &Gateway, path: &Path) -> ExitCode {
    match gateway.load(path) {
        Ok(config) => {
            let routes = config.routes.routes();
            println!("{}: ok ({} routes)", path.display(), routes.len());
            for route in routes {
                let plugins: Vec<&str> = route.chain.iter().map(|p| p.name()).collect();
                println!(
                    "  {} {:?} {} -> [{}]",
                    route.info.name,
                    route.info.kind,
                    route.path_prefix,
                    plugins.join(", ")
                );
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            ExitCode::FAILURE
        }
    }
}

fn run(gateway: &Gateway, path: &Path, upgrade: bool) -> ExitCode {
    let config = match gateway.load(path) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::FAILURE;
        }
    };
    let listen = config.server.listen.clone();
    let admin = config.server.admin.clone();
    if upgrade {
        // Pingora panics on a socket path it cannot create; say what is wrong instead.
        let sock = Path::new(&config.server.upgrade_sock);
        let dir = sock.parent().filter(|d| !d.as_os_str().is_empty());
        if dir.is_some_and(|d| !d.is_dir()) {
            eprintln!(
                "error: [server] upgrade_sock `{}`: its directory does not exist",
                sock.display()
            );
            return ExitCode::FAILURE;
        }
    }
    let options = ServeOptions {
        watch: Some(path.to_path_buf()),
        upgrade,
    };
    match gateway.build_server(config, &options) {
        Ok(server) => {
            tracing::info!(listen, admin = admin.as_deref().unwrap_or("off"), config = %path.display(), "tollgate starting");
            server.run_forever()
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::Layer;

    /// Log lines written by a subscriber under test.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn pingoras_errors_for_heads_lost_to_the_client_are_left_out() {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .with_filter(NoClientHeadFailures),
        );
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(target: "pingora_proxy", "Fail to proxy: Downstream ReadError context: while reading request headers cause: the request head did not arrive in time, downstream session type: h1");
            // As the `log` bridge hands Pingora's lines over.
            tracing::event!(target: "log", tracing::Level::ERROR, log.target = "pingora_proxy", "Fail to proxy: Downstream ConnectionClosed context: while reading request headers, bytes already read: 7, downstream session type: h1");
            tracing::error!(target: "pingora_proxy", "Fail to proxy: Upstream ConnectTimedout, status: 502");
            tracing::error!(target: "tollgate", "Fail to proxy: Downstream ReadError context: while reading request headers");
        });
        let logged = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        assert_eq!(logged.lines().count(), 2, "{logged}");
        assert!(logged.contains("Upstream ConnectTimedout"), "{logged}");
        assert!(!logged.contains("did not arrive in time"), "{logged}");
    }

    #[test]
    fn a_client_head_failure_is_told_by_its_message() {
        assert!(is_client_head_failure(
            "Fail to proxy: Downstream ReadError context: while reading request headers"
        ));
        assert!(!is_client_head_failure(
            "Fail to proxy: Downstream WriteError context: while writing the response"
        ));
        assert!(!is_client_head_failure(
            "Fail to proxy: Upstream ReadError context: while reading request headers"
        ));
    }
}
