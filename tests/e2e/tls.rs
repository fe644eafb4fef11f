//! HTTPS upstreams: SNI and certificate verification on, a private CA through `ca_file`, and a
//! TLS listener on the gateway itself. The HTTPS upstream is a second tollgate with `[server.tls]`
//! in front of the plain test upstream.

use std::path::Path;

use serde_json::Value;

use crate::common::client;
use crate::common::gateway::GatewayBuilder;
use crate::common::keys::openssl;
use crate::common::upstream::TestUpstream;

/// Makes a CA and a `localhost` server certificate signed by it, with the `openssl` CLI.
fn make_certificates(dir: &Path) {
    let run = |args: &[&str]| openssl(dir, args);
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=tollgate test CA",
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &[
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=localhost",
        ],
    ]
    .concat());
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write ext");
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
    ]);
}

#[tokio::test(flavor = "multi_thread")]
async fn https_upstream_with_private_ca_sni_and_verification() {
    let dir = std::env::temp_dir().join(format!("tollgate-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
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
