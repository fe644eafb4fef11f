//! The command line: `run`, `check`, `demo`. Shared by the stock binary and operators' own
//! binaries, so a custom build keeps the same interface.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::demo::{DemoUpstreams, EchoOptions};
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
    /// Run the gateway with a built-in configuration and in-process demo upstreams.
    Demo {
        /// Proxy listener.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Admin listener.
        #[arg(long, default_value = "127.0.0.1:9901")]
        admin: String,
    },
}

/// The demo configuration; `${...}` placeholders are filled in by `tollgate demo`.
pub const DEMO_CONFIG: &str = include_str!("../../conf/demo.toml");

/// Environment variable holding the demo's provider key (made up at start).
const DEMO_KEY_ENV: &str = "TOLLGATE_DEMO_PROVIDER_KEY";

/// Environment variable holding the demo's JWT signing secret (made up at start).
const DEMO_JWT_ENV: &str = "TOLLGATE_DEMO_JWT_SECRET";

/// Parses the command line and runs the command with `gateway`.
pub fn main(gateway: Gateway) -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Run { config, upgrade } => run(&gateway, &config.config, upgrade),
        Command::Check(arg) => check(&gateway, &arg.config),
        Command::Demo { listen, admin } => demo(&gateway, &listen, &admin),
        Command::Token(args) => token(args),
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

fn token(args: TokenArgs) -> ExitCode {
    let fail = |message: String| {
        eprintln!("error: {message}");
        ExitCode::FAILURE
    };
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
        (None, None) => return fail("give --key FILE or --secret-env VAR".into()),
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
        Err(e) => fail(e.to_string()),
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,pingora_core=warn,pingora_proxy=warn")
    });
    // Colours only on a terminal: log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    // Pingora logs through the `log` crate; `try_init` installs the bridge too.
    let _ = if std::env::var("TOLLGATE_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
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

fn demo(gateway: &Gateway, listen: &str, admin: &str) -> ExitCode {
    let provider_key = format!("demo-provider-{:x}", random_u64());
    let jwt_secret = format!("demo-jwt-{:x}{:x}", random_u64(), random_u64());
    // Set before any thread of ours starts; the demo config reads them at load.
    std::env::set_var(DEMO_KEY_ENV, &provider_key);
    std::env::set_var(DEMO_JWT_ENV, &jwt_secret);
    let echo = EchoOptions {
        event_delay: std::time::Duration::from_millis(50),
        expected_api_key: Some(provider_key),
    };
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let upstreams = match DemoUpstreams::start(loopback, loopback, echo) {
        Ok(upstreams) => upstreams,
        Err(e) => {
            eprintln!("error: cannot start the demo upstreams: {e}");
            return ExitCode::FAILURE;
        }
    };
    let source = DEMO_CONFIG
        .replace("${LISTEN}", listen)
        .replace("${ADMIN}", admin)
        .replace(
            "${MCP_UPSTREAM}",
            &format!("http://{}/mcp", upstreams.mcp_addr()),
        )
        .replace(
            "${LLM_UPSTREAM}",
            &format!("http://{}", upstreams.llm_addr()),
        );
    let config = match crate::config::load_str(Path::new("<demo>"), &source, gateway.registry()) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::FAILURE;
        }
    };
    let tokens = demo_token("alice@example.com", "math-users", &jwt_secret)
        .and_then(|alice| Ok((alice, demo_token("bob@example.com", "sales", &jwt_secret)?)));
    let (alice, bob) = match tokens {
        Ok(tokens) => tokens,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let server = match gateway.build_server(config, &ServeOptions::default()) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    print_demo_banner(listen, admin, &alice, &bob);
    // `upstreams` stays alive: `run_forever` never returns.
    server.run_forever()
}

/// A 12-hour demo token for `subject` in `group`.
fn demo_token(
    subject: &str,
    group: &str,
    secret: &str,
) -> Result<String, crate::token::TokenError> {
    let request = crate::token::TokenRequest {
        subject: subject.into(),
        issuer: Some("tollgate-demo".into()),
        audience: None,
        ttl_secs: 12 * 3600,
        claims: vec![("groups".into(), group.into())],
        kid: None,
    };
    crate::token::mint(&request, jsonwebtoken::Algorithm::HS256, secret.as_bytes())
}

/// Unpredictable enough for throwaway demo secrets (no `rand` dependency for this alone).
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(now_nanos());
    hasher.finish()
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn print_demo_banner(listen: &str, admin: &str, alice: &str, bob: &str) {
    let base = format!("http://{listen}");
    println!(
        r#"tollgate demo is running (Ctrl-C to stop)

  MCP route        {base}/mcp            -> demo MCP math server (tools: add, multiply)
  Anthropic route  {base}/anthropic      -> demo Anthropic-compatible echo model (streams)
  Admin            http://{admin}/healthz  http://{admin}/readyz

Demo callers (JWTs valid for 12 hours; alice is in math-users, bob is not):

  export ALICE_TOKEN={alice}
  export BOB_TOKEN={bob}

Try it:

  # MCP: initialize a session through the gateway (without a token: 401 + WWW-Authenticate)
  curl -si {base}/mcp -H "authorization: Bearer $ALICE_TOKEN" -H 'content-type: application/json' \
    -H 'accept: application/json, text/event-stream' \
    -d '{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"protocolVersion":"2025-06-18","capabilities":{{}},"clientInfo":{{"name":"curl","version":"1"}}}}}}'

  # Anthropic Messages, streamed event by event; the gateway swaps the token for its provider key
  # and charges the tokens to the caller's budget (see the x-ratelimit-* headers with curl -i)
  curl -sN {base}/anthropic/v1/messages -H "x-api-key: $ALICE_TOKEN" \
    -H 'anthropic-version: 2023-06-01' -H 'content-type: application/json' \
    -d '{{"model":"tollgate-echo-1","max_tokens":64,"stream":true,"messages":[{{"role":"user","content":"hello gateway"}}]}}'

  # MCP Inspector: Streamable HTTP, URL {base}/mcp, header Authorization: Bearer <alice's or bob's token>
  npx @modelcontextprotocol/inspector

  # Claude Code against the echo model
  ANTHROPIC_BASE_URL={base}/anthropic ANTHROPIC_API_KEY=$ALICE_TOKEN claude
"#
    );
}
