//! Runs the real `magpie-cli` binary against a small fake HTTP server:
//! login saves the profile, an expired access token is refreshed and the
//! profile re-saved, and errors print `error: <code>: <message>` (plus a JSON
//! line with --json) with exit status 1.

use axum::extract::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::process::Output;

fn err(status: StatusCode, code: &str) -> (StatusCode, Json<Value>) {
    (
        status,
        Json(
            json!({"error": {"code": code, "message": format!("fake {code}"), "retryable": false}}),
        ),
    )
}

fn tokens(n: u32) -> Json<Value> {
    Json(
        json!({"user_id": 1, "device": "default", "access_token": format!("a{n}"),
                "expires_in": 60, "refresh_token": format!("r{n}")}),
    )
}

async fn fake_server() -> String {
    let app = axum::Router::new()
        .route("/v1/auth/login", post(|| async { tokens(1) }))
        .route(
            "/v1/auth/refresh",
            post(|Json(body): Json<Value>| async move {
                if body["refresh_token"] == "r1" {
                    Ok(tokens(2))
                } else {
                    Err(err(StatusCode::UNAUTHORIZED, "unauthorized"))
                }
            }),
        )
        .route(
            "/v1/unread",
            get(|headers: HeaderMap| async move {
                match headers.get("authorization").and_then(|v| v.to_str().ok()) {
                    Some("Bearer a2") => Ok(Json(json!({"total": 3, "convs": []}))),
                    _ => Err(err(StatusCode::UNAUTHORIZED, "token_expired")),
                }
            }),
        )
        .route(
            "/v1/messages",
            post(|Json(body): Json<Value>| async move {
                if body["to"] == 9 {
                    return Err(err(StatusCode::NOT_FOUND, "unknown_recipient"));
                }
                Ok(Json(
                    json!({"cmid": body["cmid"], "server_id": "77", "conv": "d:1:2", "seq": 1,
                               "sent_at": 5, "duplicate": false}),
                ))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

async fn cli(dir: &std::path::Path, server: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_magpie-cli"))
        .args(["--config-dir", dir.to_str().unwrap(), "--server", server])
        .args(args)
        .env_remove("MAGPIE_PASSWORD")
        .env_remove("MAGPIE_SERVER")
        .output()
        .await
        .unwrap()
}

fn stdout_json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

fn profile(dir: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("default.json")).unwrap()).unwrap()
}

/// The access and refresh tokens a profile holds ("" where absent).
fn saved_tokens(p: &Value) -> (&str, &str) {
    let get = |k: &str| p[k].as_str().unwrap_or("");
    (get("access_token"), get("refresh_token"))
}

#[tokio::test]
async fn login_refresh_send_and_errors() {
    let server = fake_server().await;
    let dir = tempfile::tempdir().unwrap();

    let o = cli(
        dir.path(),
        &server,
        &["--json", "login", "alice", "--password", "pw"],
    )
    .await;
    assert!(o.status.success(), "{o:?}");
    assert_eq!(stdout_json(&o)["user_id"], 1);
    let p = profile(dir.path());
    assert_eq!(saved_tokens(&p), ("a1", "r1"));
    assert_eq!(p["server"], server.as_str());

    // a1 is rejected as expired: the CLI refreshes, retries and saves a2/r2.
    let o = cli(dir.path(), &server, &["--json", "unread"]).await;
    assert!(o.status.success(), "{o:?}");
    assert_eq!(stdout_json(&o)["total"], 3);
    let p = profile(dir.path());
    assert_eq!(saved_tokens(&p), ("a2", "r2"));

    let o = cli(dir.path(), &server, &["send", "2", "hello", "world"]).await;
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "sent [d:1:2 #1] id 77"
    );

    let o = cli(dir.path(), &server, &["--json", "send", "9", "hi"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr).trim(),
        "error: unknown_recipient: fake unknown_recipient"
    );
    assert_eq!(stdout_json(&o)["error"]["code"], "unknown_recipient");
}

#[tokio::test]
async fn missing_profile_and_unreachable_server() {
    let dir = tempfile::tempdir().unwrap();
    let o = cli(dir.path(), "http://127.0.0.1:1", &["unread"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).starts_with("error: no_profile: "));

    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_magpie-cli"));
    let o = cmd
        .args([
            "--config-dir",
            dir.path().to_str().unwrap(),
            "--server",
            "http://127.0.0.1:1",
            "--json",
        ])
        .args(["register", "carol"])
        .env("MAGPIE_PASSWORD", "from-env")
        .output()
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).starts_with("error: transport: "),
        "{o:?}"
    );
    assert_eq!(stdout_json(&o)["error"]["code"], "transport");

    // No password anywhere: a usage error from clap.
    let o = cli(dir.path(), "http://127.0.0.1:1", &["register", "carol"]).await;
    assert_eq!(o.status.code(), Some(2));
}
