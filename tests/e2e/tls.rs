//! HTTPS upstreams: SNI and certificate verification on, a private CA through `ca_file`, and a
//! TLS listener on the gateway itself. The HTTPS upstream is a second tollgate with `[server.tls]`
//! in front of the plain test upstream.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;

use serde_json::Value;

use crate::common::client;
use crate::common::gateway::GatewayBuilder;
use crate::common::keys::openssl;
use crate::common::upstream::TestUpstream;

const EC: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

/// Makes a CA (`ca.pem`, `ca.key`) and a `localhost` server certificate signed by it
/// (`leaf.pem`, `leaf.key`), with the `openssl` CLI.
fn make_certificates(dir: &Path) {
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &EC,
            &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2"],
            &["-subj", "/CN=tollgate test CA"],
        ]
        .concat(),
    );
    make_leaf(dir, "leaf", "localhost", "serverAuth");
}

/// A certificate `<name>.pem` + `<name>.key` for `cn` signed by the CA in `dir`, for `usage`
/// (`serverAuth` or `clientAuth`).
fn make_leaf(dir: &Path, name: &str, cn: &str, usage: &str) {
    let (key, csr, pem, ext) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.ext"),
    );
    openssl(
        dir,
        &[
            &["req"][..],
            &EC,
            &["-keyout", &key, "-out", &csr, "-subj", &format!("/CN={cn}")],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join(&ext),
        format!("subjectAltName=DNS:{cn}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage={usage}\n"),
    )
    .expect("write ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
}

fn temp_dir(label: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tollgate-{label}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// DER bytes of the first certificate in a PEM file.
fn der_of(pem_path: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(pem_path).unwrap();
    let b64: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

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
    let dir = temp_dir("tls");
    make_certificates(&dir);
    let d = dir.display();

    let up = TestUpstream::start().await;
    let tls_front = GatewayBuilder::new(&format!(
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

    let trusted = GatewayBuilder::new(&route(
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
    let untrusted = GatewayBuilder::new(&route(&format!("https://localhost:{port}"), ""))
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
    let wrong_name = GatewayBuilder::new(&route(
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
    let _ = std::fs::remove_dir_all(&dir);
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
    let dir = temp_dir("tls-reload");
    make_certificates(&dir);
    let d = dir.display();
    let up = TestUpstream::start().await;
    let gw = GatewayBuilder::new(&echo_route(&up.url()))
        .server_line(&format!(
            "tls = {{ cert = \"{d}/leaf.pem\", key = \"{d}/leaf.key\" }}\nwatch_interval = \"100ms\""
        ))
        .start()
        .await;
    let port = gw.addr.port();
    let first = der_of(&dir.join("leaf.pem"));
    assert_eq!(
        served_certificate(&tls_client(&dir, None), port).await,
        first
    );

    // Renewal: new key and certificate written over the old files.
    make_leaf(&dir, "renewed", "localhost", "serverAuth");
    std::fs::copy(dir.join("renewed.key"), dir.join("leaf.key")).unwrap();
    std::fs::copy(dir.join("renewed.pem"), dir.join("leaf.pem")).unwrap();
    let renewed = der_of(&dir.join("renewed.pem"));
    assert_ne!(first, renewed);
    let deadline = Instant::now() + Duration::from_secs(5);
    while served_certificate(&tls_client(&dir, None), port).await != renewed {
        assert!(
            Instant::now() < deadline,
            "certificate not reloaded:\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A broken certificate is refused; the renewed one keeps being served.
    std::fs::write(dir.join("leaf.pem"), "not a certificate").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gw.log().contains("configuration not reloaded") {
        assert!(
            Instant::now() < deadline,
            "broken certificate not reported:\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gw.log().contains("no certificate in"), "{}", gw.log());
    assert_eq!(
        served_certificate(&tls_client(&dir, None), port).await,
        renewed
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn client_certificates_are_required_or_optional() {
    let dir = temp_dir("mtls");
    make_certificates(&dir);
    make_leaf(&dir, "client", "agent-1", "clientAuth");
    // A client certificate from a CA the gateway does not trust.
    let other = temp_dir("mtls-other");
    make_certificates(&other);
    make_leaf(&other, "client", "intruder", "clientAuth");
    std::fs::copy(other.join("client.pem"), dir.join("intruder.pem")).unwrap();
    std::fs::copy(other.join("client.key"), dir.join("intruder.key")).unwrap();
    let d = dir.display();
    let up = TestUpstream::start().await;
    let tls_line = |auth: &str| {
        format!("tls = {{ cert = \"{d}/leaf.pem\", key = \"{d}/leaf.key\", client_ca = \"{d}/ca.pem\"{auth} }}")
    };

    let required = GatewayBuilder::new(&echo_route(&up.url()))
        .server_line(&tls_line(""))
        .start()
        .await;
    let url = format!("https://localhost:{}/x", required.addr.port());
    assert_eq!(status_over_tls(&dir, Some("client"), &url).await, Some(200));
    assert!(
        status_over_tls(&dir, None, &url).await.is_none(),
        "no certificate let in"
    );
    assert!(
        status_over_tls(&dir, Some("intruder"), &url)
            .await
            .is_none(),
        "untrusted certificate let in"
    );

    let optional = GatewayBuilder::new(&echo_route(&up.url()))
        .server_line(&tls_line(", client_auth = \"optional\""))
        .start()
        .await;
    let url = format!("https://localhost:{}/x", optional.addr.port());
    assert_eq!(status_over_tls(&dir, None, &url).await, Some(200));
    assert_eq!(status_over_tls(&dir, Some("client"), &url).await, Some(200));
    assert!(
        status_over_tls(&dir, Some("intruder"), &url)
            .await
            .is_none(),
        "an untrusted certificate is refused even when certificates are optional"
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&other);
}
