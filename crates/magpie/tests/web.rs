//! The web client's routes (docs/web.md) and its same-origin WebSocket,
//! black-box; the client itself is driven in a browser by `browser.rs`.

mod common;

use common::*;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::Message as WsMsg;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

async fn get(s: &TestServer, path: &str) -> reqwest::Response {
    reqwest::get(format!("{}{path}", s.base)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_and_its_files_are_served_with_a_strict_policy() {
    let s = TestServer::start().await;
    let page = get(&s, "/").await;
    assert_eq!(page.status(), 200);
    let h = page.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<script type="module" src="/web/app.js">"#));
    for (file, ty) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("api.js", "text/javascript; charset=utf-8"),
        ("socket.js", "text/javascript; charset=utf-8"),
        ("view.js", "text/javascript; charset=utf-8"),
        ("search.js", "text/javascript; charset=utf-8"),
        ("state.js", "text/javascript; charset=utf-8"),
        ("compose.js", "text/javascript; charset=utf-8"),
        ("feed.js", "text/javascript; charset=utf-8"),
        ("members.js", "text/javascript; charset=utf-8"),
        ("profile.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
    ] {
        let r = get(&s, &format!("/web/{file}")).await;
        assert_eq!(r.status(), 200, "{file}");
        assert_eq!(r.headers()["content-type"], ty, "{file}");
        assert!(!r.text().await.unwrap().is_empty(), "{file}");
    }
    let missing = get(&s, "/web/secret.js").await;
    assert_eq!(missing.status(), 404);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_can_be_turned_off() {
    let s = TestServer::start_with(|c| c.http.web_client = false).await;
    assert_eq!(get(&s, "/").await.status(), 404);
    assert_eq!(get(&s, "/web/app.js").await.status(), 404);
    assert_eq!(get(&s, "/healthz").await.status(), 200);
}

/// With the default (empty) allow-list, a page of the node's own origin
/// opens its socket; a page of any other origin, or of another port of the
/// same host, is refused.
#[tokio::test(flavor = "multi_thread")]
async fn the_nodes_own_origin_opens_a_websocket() {
    let s = TestServer::start().await;
    let [a] = s.users(["alice"]).await;
    let own = s.base.clone();
    let host = own.trim_start_matches("http://").to_string();
    let (ip, port) = host.rsplit_once(':').unwrap();
    let other_port = format!("http://{ip}:{}", port.parse::<u16>().unwrap() ^ 1);
    for (origin, allowed) in [
        (own.as_str(), true),
        ("https://evil.example", false),
        (other_port.as_str(), false),
    ] {
        let c = s.ticket(&a, "ws").await;
        let mut req = c.address.as_str().into_client_request().unwrap();
        req.headers_mut().insert("origin", origin.parse().unwrap());
        match tokio_tungstenite::connect_async(req).await {
            Ok((mut ws, _)) => {
                assert!(allowed, "{origin} was upgraded");
                let hello = serde_json::json!({"op": "hello", "ticket": c.ticket}).to_string();
                ws.send(WsMsg::Text(hello.into())).await.unwrap();
                ws.close(None).await.ok();
            }
            Err(tungstenite::Error::Http(resp)) => {
                assert!(!allowed, "{origin} refused");
                assert_eq!(resp.status().as_u16(), 403);
            }
            Err(e) => panic!("{origin}: {e}"),
        }
    }
}

/// The operator console is on the internal listener only, with the
/// internal API it calls; the node list it shows needs the service key.
#[tokio::test(flavor = "multi_thread")]
async fn the_console_is_served_on_the_internal_listener_only() {
    let s = TestServer::start().await;
    assert_eq!(get(&s, "/console").await.status(), 404);
    let internal = s.internal();
    let page = reqwest::get(format!("{internal}/console")).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("/console/console.js"));
    for file in ["console.js", "app.css", "magpie-dashboard.json"] {
        let r = reqwest::get(format!("{internal}/console/{file}"))
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{file}");
    }
    let nodes = format!("{internal}/internal/v1/nodes");
    assert_eq!(reqwest::get(&nodes).await.unwrap().status(), 401);
    let r = reqwest::Client::new()
        .get(&nodes)
        .bearer_auth("service-key-for-tests")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["here"], s.app().cfg.node.as_str());
    assert!(
        v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["node"] == v["here"]),
        "{v}"
    );
}
