//! HTTPS upstreams: SNI and certificate verification on, a private CA through `ca_file`, and a
//! TLS listener on the gateway itself. The HTTPS upstream is a second tollgate with `[server.tls]`
//! in front of the plain test upstream.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tollgate_testkit::tls::{der_of, TestCa};
use tollgate_testkit::{client, eventually};

use crate::common::gateway;
use crate::common::upstream::TestUpstream;

/// A client trusting only the test CA in `dir`, with `identity` (a PEM file holding a client
/// certificate and its key) if given; a fresh connection pool, so every call handshakes.
fn tls_client(dir: &Path, identity: Option<&str>) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(dir.join("ca.pem")).unwrap()).unwrap();
    let mut builder = reqwest::Client::builder()
        .tls_certs_only([ca])
        .tls_info(true)
        .timeout(Duration::from_secs(10));
    if let Some(name) = identity {
        let mut pem = std::fs::read(dir.join(format!("{name}.pem"))).unwrap();
        pem.extend(std::fs::read(dir.join(format!("{name}.key"))).unwrap());
        builder = builder.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    builder.build().unwrap()
}

/// The status of a GET over a fresh TLS connection with `identity`; `None` when the handshake
/// (or the request) failed.
async fn status_over_tls(dir: &Path, identity: Option<&str>, url: &str) -> Option<u16> {
    let resp = tls_client(dir, identity).get(url).send().await.ok()?;
    Some(resp.status().as_u16())
}

fn echo_route(upstream: &str) -> String {
    format!("[[route]]\nname = \"all\"\nmatch = {{ path_prefix = \"/\" }}\nupstream = {{ url = \"{upstream}\" }}\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn https_upstream_with_private_ca_sni_and_verification() {
    let ca = TestCa::generate();
    let d = ca.dir().display();

    let up = TestUpstream::start().await;
    let tls_front = gateway(&format!(
        "[[route]]\nname = \"all\"\nmatch = {{ path_prefix = \"/\" }}\nupstream = {{ url = \"{}\" }}\n",
        up.url()
    ))
    .server_line(&format!("tls = {{ cert = \"{d}/leaf.pem\", key = \"{d}/leaf.key\" }}"))
    .start()
    .await;
    let port = tls_front.addr.port();
    let route = |url: &str, extra: &str| {
        format!("[[route]]\nname = \"secure\"\nmatch = {{ path_prefix = \"/secure\" }}\nupstream = {{ url = \"{url}\", strip_prefix = true{extra} }}\n")
    };
    let client = client();

    let trusted = gateway(&route(
        &format!("https://localhost:{port}"),
        &format!(", ca_file = \"{d}/ca.pem\""),
    ))
    .start()
    .await;
    let resp = client
        .get(trusted.url("/secure/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", trusted.log());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["uri"], "/hello");

    // Unknown CA: verification is on by default.
    let untrusted = gateway(&route(&format!("https://localhost:{port}"), ""))
        .start()
        .await;
    let resp = client
        .get(untrusted.url("/secure/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(resp.headers()["x-tollgate-reason"], "upstream.tls");

    // Right CA, wrong name: the certificate is for `localhost`, not `127.0.0.1`.
    let wrong_name = gateway(&route(
        &format!("https://127.0.0.1:{port}"),
        &format!(", ca_file = \"{d}/ca.pem\""),
    ))
    .start()
    .await;
    let resp = client
        .get(wrong_name.url("/secure/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(resp.headers()["x-tollgate-reason"], "upstream.tls");

    assert_eq!(
        up.recorder.requests().len(),
        1,
        "only the verified exchange reached the upstream"
    );
}

/// The certificate a fresh handshake with the gateway gets.
async fn served_certificate(client: &reqwest::Client, port: u16) -> Vec<u8> {
    let resp = client
        .get(format!("https://localhost:{port}/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .expect("peer certificate")
        .to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn listener_certificate_is_reloaded_when_its_files_change() {
    let ca = TestCa::generate();
    let dir = ca.dir();
    let d = dir.display();
    let up = TestUpstream::start().await;
    let gw = gateway(&echo_route(&up.url()))
        .server_line(&format!(
            "tls = {{ cert = \"{d}/leaf.pem\", key = \"{d}/leaf.key\" }}\nwatch_interval = \"100ms\""
        ))
        .start()
        .await;
    let port = gw.addr.port();
    let first = der_of(&dir.join("leaf.pem"));
    assert_eq!(
        served_certificate(&tls_client(dir, None), port).await,
        first
    );

    // Renewal: new key and certificate written over the old files.
    ca.issue("renewed", "localhost", "serverAuth");
    std::fs::copy(dir.join("renewed.key"), dir.join("leaf.key")).unwrap();
    std::fs::copy(dir.join("renewed.pem"), dir.join("leaf.pem")).unwrap();
    let renewed = der_of(&dir.join("renewed.pem"));
    assert_ne!(first, renewed);
    eventually(
        "the renewed certificate is served",
        Duration::from_secs(5),
        async || {
            if served_certificate(&tls_client(dir, None), port).await == renewed {
                Ok(())
            } else {
                Err(format!("gateway log:\n{}", gw.log()))
            }
        },
    )
    .await;

    // A broken certificate is refused; the renewed one keeps being served.
    std::fs::write(dir.join("leaf.pem"), "not a certificate").unwrap();
    eventually(
        "the broken certificate is reported",
        Duration::from_secs(5),
        async || {
            let log = gw.log();
            if log.contains("configuration not reloaded") {
                Ok(())
            } else {
                Err(format!("gateway log:\n{log}"))
            }
        },
    )
    .await;
    assert!(gw.log().contains("no certificate in"), "{}", gw.log());
    assert_eq!(
        served_certificate(&tls_client(dir, None), port).await,
        renewed
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn client_certificates_are_required_or_optional() {
    let ca = TestCa::generate();
    let dir = ca.dir();
    ca.issue("client", "agent-1", "clientAuth");
    // A client certificate from a CA the gateway does not trust.
    let untrusted = TestCa::generate();
    untrusted.issue("client", "intruder", "clientAuth");
    let other = untrusted.dir();
    std::fs::copy(other.join("client.pem"), dir.join("intruder.pem")).unwrap();
    std::fs::copy(other.join("client.key"), dir.join("intruder.key")).unwrap();
    let d = dir.display();
    let up = TestUpstream::start().await;
    let tls_line = |auth: &str| {
        format!("tls = {{ cert = \"{d}/leaf.pem\", key = \"{d}/leaf.key\", client_ca = \"{d}/ca.pem\"{auth} }}")
    };

    let required = gateway(&echo_route(&up.url()))
        .server_line(&tls_line(""))
        .start()
        .await;
    let url = format!("https://localhost:{}/x", required.addr.port());
    assert_eq!(status_over_tls(dir, Some("client"), &url).await, Some(200));
    assert!(
        status_over_tls(dir, None, &url).await.is_none(),
        "no certificate let in"
    );
    assert!(
        status_over_tls(dir, Some("intruder"), &url).await.is_none(),
        "untrusted certificate let in"
    );

    let optional = gateway(&echo_route(&up.url()))
        .server_line(&tls_line(", client_auth = \"optional\""))
        .start()
        .await;
    let url = format!("https://localhost:{}/x", optional.addr.port());
    assert_eq!(status_over_tls(dir, None, &url).await, Some(200));
    assert_eq!(status_over_tls(dir, Some("client"), &url).await, Some(200));
    assert!(
        status_over_tls(dir, Some("intruder"), &url).await.is_none(),
        "an untrusted certificate is refused even when certificates are optional"
    );
}
