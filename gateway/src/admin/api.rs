//! The admin API (`/admin/v1/...` on the admin listener): operators act on the running gateway.
//! Off unless `[server] admin_token` is set; every call needs `Authorization: Bearer <token>`,
//! compared in constant time. Plugin instances answer their own operations under
//! `/admin/v1/plugins/<name>/...`; every call, refused ones included, is an audit record.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{Method, Response, StatusCode};
use pingora::protocols::http::ServerSession;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;
use tollgate_plugin_api::secret_source::{ExposeSecret, SecretString};
use tollgate_plugin_api::{AdminRequest, AdminResponse};

use crate::config::SharedConfig;
use crate::ip_text::ip_text;
use crate::telemetry::{AuditLog, Metrics};

/// Where the API's paths start.
pub const PREFIX: &str = "/admin/";

/// The largest request body the API reads.
const MAX_BODY: usize = 1024 * 1024;

const PLUGINS: &str = "/admin/v1/plugins";

/// The admin API over the running configuration.
#[derive(Debug, Clone)]
pub struct AdminApi {
    config: SharedConfig,
    audit: AuditLog,
    metrics: Arc<Metrics>,
}

/// What the audit record says of a call besides its request.
struct Audited<'a> {
    status: StatusCode,
    plugin: Option<&'a str>,
    change: Option<&'a str>,
}

impl AdminApi {
    /// The API of the configuration in `config`, audited to `audit`.
    pub fn new(config: SharedConfig, audit: AuditLog, metrics: Arc<Metrics>) -> Self {
        Self {
            config,
            audit,
            metrics,
        }
    }

    /// Answers a request whose path starts with [`PREFIX`].
    pub async fn answer(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let config = self.config.load_full();
        let Some(token) = config.server.admin_token.clone() else {
            return error(
                StatusCode::NOT_FOUND,
                "admin_api_off",
                "the admin API is off: set `[server] admin_token` to turn it on",
            );
        };
        if !authorized(session, &token) {
            self.audit(
                session,
                Audited {
                    status: StatusCode::UNAUTHORIZED,
                    plugin: None,
                    change: None,
                },
            );
            let mut response = error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid `Authorization: Bearer <admin token>` is required",
            );
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer"),
            );
            return response;
        }
        let body = match read_body(session).await {
            Ok(body) => body,
            Err(refusal) => return refusal,
        };
        let path = session.req_header().uri.path().to_string();
        let method = session.req_header().method.clone();
        let (answer, plugin) = match path.strip_prefix(PLUGINS) {
            Some("" | "/") if method == Method::GET => (plugin_list(&config), None),
            Some(rest) if rest.starts_with('/') => {
                let (name, op) = rest[1..].split_once('/').unwrap_or((&rest[1..], ""));
                match config.plugins.get(name) {
                    Some((_, plugin)) => {
                        let request = AdminRequest {
                            method,
                            path: op.to_string(),
                            query: session.req_header().uri.query().map(str::to_string),
                            body,
                        };
                        (plugin.admin(&request).await, Some(name.to_string()))
                    }
                    None => (
                        AdminResponse::error(
                            StatusCode::NOT_FOUND,
                            "no_plugin",
                            format!("no plugin instance `{name}`"),
                        ),
                        None,
                    ),
                }
            }
            _ => (
                AdminResponse::error(StatusCode::NOT_FOUND, "not_found", "no such admin path"),
                None,
            ),
        };
        self.audit(
            session,
            Audited {
                status: answer.status,
                plugin: plugin.as_deref(),
                change: answer.audit.as_deref(),
            },
        );
        json_response(answer.status, &answer.body)
    }

    fn audit(&self, session: &ServerSession, call: Audited<'_>) {
        if !self.audit.enabled() {
            return;
        }
        let request = session.req_header();
        let time = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let record = json!({
            "time": time,
            "kind": "admin",
            "client": session.client_addr().and_then(|a| a.as_inet()).map(|a| ip_text(a.ip())),
            "method": request.method.as_str(),
            "path": request.uri.path(),
            "status": call.status.as_u16(),
            "decision": if call.status == StatusCode::UNAUTHORIZED { "rejected" } else { "allowed" },
            "plugin": call.plugin,
            "change": call.change,
        });
        if !self.audit.submit(record.to_string()) {
            self.metrics.audit_dropped();
        }
    }
}

/// Whether the request carries the admin token. Both sides are hashed first, so that the
/// comparison takes the same time whatever the length or the first differing byte.
fn authorized(session: &ServerSession, token: &Arc<SecretString>) -> bool {
    let Some(given) = session
        .req_header()
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
    else {
        return false;
    };
    let digest = |text: &str| ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let (given, expected) = (digest(given), digest(token.expose_secret()));
    given.as_ref().ct_eq(expected.as_ref()).into()
}

async fn read_body(session: &mut ServerSession) -> Result<Bytes, Response<Vec<u8>>> {
    let mut body = BytesMut::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "body_too_large",
                        format!("admin request bodies are at most {MAX_BODY} bytes"),
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body.freeze()),
            Err(e) => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    format!("cannot read the request body: {e}"),
                ))
            }
        }
    }
}

fn plugin_list(config: &crate::config::RuntimeConfig) -> AdminResponse {
    let mut plugins: Vec<Value> = config
        .plugins
        .iter()
        .map(|(name, (table, _))| json!({"name": name, "type": table.get("type")}))
        .collect();
    plugins.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    AdminResponse::ok(json!({ "plugins": plugins }))
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response<Vec<u8>> {
    let answer = AdminResponse::error(status, code, message);
    json_response(answer.status, &answer.body)
}

fn json_response(status: StatusCode, body: &Value) -> Response<Vec<u8>> {
    let mut bytes = serde_json::to_vec(body).unwrap_or_default();
    bytes.push(b'\n');
    let len = bytes.len();
    let mut response = Response::new(bytes);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    headers.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    response
}
