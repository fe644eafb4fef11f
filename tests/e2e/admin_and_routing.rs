//! Admin endpoints, route matching, path rewriting and header handling.

use serde_json::Value;
use tollgate_testkit::client;

use crate::common::gateway;
use crate::common::upstream::TestUpstream;

#[tokio::test(flavor = "multi_thread")]
async fn healthz_and_readyz_answer() {
    let up = TestUpstream::start().await;
    let gw = gateway(&format!(
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
    let gw = gateway(&config).start().await;
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
    let gw = gateway(&format!(
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

/// MCP and LLM routes build the upstream head themselves (the body is read first): the same
/// rewriting as plain routes, and an HTTP/1.1 request line whatever the client spoke (an h2c
/// client's request once went upstream as `HTTP/2`, which HTTP/1.1 servers refuse with 400).
#[tokio::test(flavor = "multi_thread")]
async fn body_routes_rewrite_the_head_for_h1_and_h2c_clients() {
    let up = TestUpstream::start().await;
    let config = format!(
        r#"
[[route]]
name = "anthropic"
match = {{ path_prefix = "/anthropic" }}
upstream = {{ url = "{u}", kind = "llm", provider = "anthropic", strip_prefix = true }}
plugins = []

[[route]]
name = "mcp"
match = {{ path_prefix = "/mcp" }}
upstream = {{ url = "{u}/mcp", kind = "mcp" }}
plugins = []
"#,
        u = up.url()
    );
    let gw = gateway(&config).server_line("h2c = true").start().await;
    let h2c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap();
    let messages = r#"{"model":"m","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}"#;
    let ping = r#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#;
    for (client, version) in [
        (client(), reqwest::Version::HTTP_11),
        (h2c, reqwest::Version::HTTP_2),
    ] {
        for (path, body) in [("/anthropic/v1/messages", messages), ("/mcp", ping)] {
            let mut request = client
                .post(gw.url(path))
                .header("content-type", "application/json")
                .header("x-forwarded-for", "10.1.2.3")
                .header("x-kept", "yes");
            if version == reqwest::Version::HTTP_11 {
                // Connection-specific headers exist in HTTP/1.1 only.
                request = request
                    .header("connection", "keep-alive, x-hop")
                    .header("x-hop", "1")
                    .header("keep-alive", "timeout=5");
            }
            let resp = request.body(body).send().await.unwrap();
            assert_eq!(resp.status(), 200, "{path} over {version:?}");
            assert_eq!(resp.version(), version);
            let answer: Value = resp.json().await.unwrap();
            assert!(
                answer.get("usage").is_some() || answer["id"] == 7,
                "{path}: {answer}"
            );
            let seen = up.recorder.requests().pop().unwrap();
            let header = |name: &str| seen.headers.get(name).map(|v| v.to_str().unwrap());
            assert_eq!(header("host"), Some(up.addr.to_string().as_str()));
            assert_eq!(header("x-forwarded-for"), Some("10.1.2.3, 127.0.0.1"));
            assert_eq!(header("x-kept"), Some("yes"));
            assert_eq!(
                header("content-length"),
                Some(body.len().to_string().as_str())
            );
            for hop in ["x-hop", "keep-alive", "connection", "transfer-encoding"] {
                assert_eq!(
                    header(hop),
                    None,
                    "{hop} forwarded on {path} over {version:?}"
                );
            }
        }
    }
}
