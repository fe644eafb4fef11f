//! The admin listener: `/healthz` (the process answers), `/readyz` (configuration loaded, the
//! proxy listener accepting connections, not shutting down), `/metrics` (Prometheus text) and
//! the admin API under `/admin/` ([`api`]).

pub mod api;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::lifecycle::Lifecycle;
use crate::telemetry::Metrics;
use api::AdminApi;

/// The admin HTTP application.
#[derive(Debug, Clone)]
pub struct AdminApp {
    /// Where readiness probes the proxy listener.
    proxy_addr: Option<SocketAddr>,
    metrics: Arc<Metrics>,
    lifecycle: Arc<Lifecycle>,
    api: AdminApi,
}

impl AdminApp {
    /// An admin app probing the proxy listener at `listen` (an unspecified IP probes loopback),
    /// serving the admin API `api`.
    pub fn new(
        listen: &str,
        metrics: Arc<Metrics>,
        lifecycle: Arc<Lifecycle>,
        api: AdminApi,
    ) -> Self {
        let proxy_addr = listen.parse::<SocketAddr>().ok().map(|mut addr| {
            if addr.ip().is_unspecified() {
                addr.set_ip(if addr.is_ipv4() {
                    [127, 0, 0, 1].into()
                } else {
                    std::net::Ipv6Addr::LOCALHOST.into()
                });
            }
            addr
        });
        Self {
            proxy_addr,
            metrics,
            lifecycle,
            api,
        }
    }

    fn metrics_response(&self) -> Response<Vec<u8>> {
        let body = self.metrics.render();
        let len = body.len();
        let mut response = Response::new(body);
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        headers.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
        response
    }

    async fn proxy_accepting(&self) -> bool {
        let Some(addr) = self.proxy_addr else {
            return true;
        };
        matches!(
            tokio::time::timeout(
                Duration::from_millis(500),
                tokio::net::TcpStream::connect(addr)
            )
            .await,
            Ok(Ok(_))
        )
    }
}

fn text(status: StatusCode, body: &str) -> Response<Vec<u8>> {
    let mut response = Response::new(body.as_bytes().to_vec());
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response.headers_mut().insert(
        http::header::CONTENT_LENGTH,
        http::HeaderValue::from(body.len()),
    );
    response
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        match session.req_header().uri.path() {
            "/healthz" => text(StatusCode::OK, "ok\n"),
            "/readyz" if self.lifecycle.is_draining() => {
                text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
            }
            "/readyz" if self.proxy_accepting().await => text(StatusCode::OK, "ready\n"),
            "/readyz" => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "proxy listener not accepting yet\n",
            ),
            "/metrics" => self.metrics_response(),
            path if path.starts_with(api::PREFIX) => self.api.answer(session).await,
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }
}
