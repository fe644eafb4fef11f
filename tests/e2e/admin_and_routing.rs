//! Admin endpoints, route matching, path rewriting and header handling.

use serde_json::Value;

use crate::common::client;
use crate::common::gateway::GatewayBuilder;
use crate::common::upstream::TestUpstream;

#[tokio::test(flavor = "multi_thread")]
async fn healthz_and_readyz_answer() {
    let up = TestUpstream::start().await;
    let gw = GatewayBuilder::new(&format!(
        "[[route]]\nname = \"api\"\nmatch = {{ path_prefix = \"/api\" }}\nupstream = {{ url = \"{}\" }}\n",
        up.url()
    ))
    .start()
    .await;
    let client = client();
    for path in ["/healthz", "/readyz"] {
        let resp = client
            .get(format!("http://{}{path}", gw.admin))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn longest_prefix_wins_and_paths_are_rewritten() {
    let up = TestUpstream::start().await;
    let config = format!(
        r#"
[[route]]
name = "short"
match = {{ path_prefix = "/api" }}
upstream = {{ url = "{u}" }}

[[route]]
name = "long"
match = {{ path_prefix = "/api/v2" }}
upstream = {{ url = "{u}/internal" }}

[[route]]
name = "stripped"
match = {{ path_prefix = "/strip", methods = ["GET"] }}
upstream = {{ url = "{u}", strip_prefix = true }}
"#,
        u = up.url()
    );
    let gw = GatewayBuilder::new(&config).start().await;
    let client = client();
    let get = |path: &str| {
        client
            .get(gw.url(path))
            .header("connection", "keep-alive, x-hop")
            .header("x-hop", "1")
            .send()
    };

    let body: Value = get("/api/v1/things?x=1")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["uri"], "/api/v1/things?x=1");
    let body: Value = get("/api/v2/things").await.unwrap().json().await.unwrap();
    assert_eq!(body["uri"], "/internal/things");
    assert_eq!(body["headers"]["host"], up.addr.to_string());
    assert!(
        body["headers"].get("x-hop").is_none(),
        "Connection-nominated header must not be forwarded"
    );
    assert_eq!(body["headers"]["x-forwarded-for"], "127.0.0.1");
    let body: Value = get("/strip/a/b").await.unwrap().json().await.unwrap();
    assert_eq!(body["uri"], "/a/b");
    // Segment boundary: /apix is not under /api.
    let resp = get("/apix").await.unwrap();
    assert_eq!(resp.status(), 404);

    let resp = client.post(gw.url("/strip/a")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(
        resp.headers()["x-tollgate-reason"],
        "route.method_not_allowed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_route_is_a_json_404() {
    let up = TestUpstream::start().await;
    let gw = GatewayBuilder::new(&format!(
        "[[route]]\nname = \"api\"\nmatch = {{ path_prefix = \"/api\" }}\nupstream = {{ url = \"{}\" }}\n",
        up.url()
    ))
    .start()
    .await;
    let resp = client().get(gw.url("/nowhere")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["x-tollgate-reason"], "route.not_found");
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "route.not_found");
    assert!(up.recorder.requests().is_empty());
}
