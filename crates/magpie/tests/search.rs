//! Message search end to end (docs/search.md, docs/protocol.md §3.17): a
//! corpus in Chinese, Japanese, Korean, English and mixed text is found by
//! every word inside its runs, by nobody outside its conversations; a late
//! joiner finds nothing from before its join (unless the group's history
//! setting shows it), a member who left finds nothing of the group; a
//! sender with `search: false` is found by no one, from the change on, and
//! `search_view: false` finds nothing itself; the
//! socket op answers as HTTP does; a deleted index is rebuilt from the store.

mod common;
use common::*;
use magpie_core::{ClientMsgId, ConvId};
use magpie_proto::http::Tokens;
use magpie_proto::search::SearchParams;
use magpie_proto::{ClientOp, ServerFrame};
use serde_json::{Value, json};
use std::time::Duration;

/// The bodies (snippets joined) `who` finds for `text`, newest first.
async fn find(s: &TestServer, who: &Tokens, query: &str) -> Vec<String> {
    let (st, page) = s.get(who, &format!("/v1/search?{query}")).await;
    assert_eq!(st, 200, "search {query}: {page}");
    bodies(&page)
}

fn bodies(page: &Value) -> Vec<String> {
    page["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let parts = h["snippet"].as_array().unwrap();
            parts.iter().map(|p| p["text"].as_str().unwrap()).collect()
        })
        .collect()
}

fn sorted<const N: usize>(v: [&str; N]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

fn q(text: &str) -> String {
    let mut s = String::from("text=");
    for b in text.as_bytes() {
        s.push_str(&format!("%{b:02X}"));
    }
    s
}

/// Waits until the node's index holds `n` documents.
async fn indexed(s: &TestServer, n: u64) {
    let index = s.app().search.index().expect("a search node").clone();
    let deadline = tokio::time::Instant::now() + WAIT;
    while index.num_docs() != n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} documents indexed, {n} expected",
            index.num_docs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn send(s: &TestServer, from: &Tokens, to: &Tokens, body: &str) {
    let (st, out) = s
        .http_send(from, to.user_id, ClientMsgId::new_v7(), body)
        .await;
    assert_eq!(st, 200, "{out}");
}

async fn send_group(s: &TestServer, from: &Tokens, group: i64, body: &str) {
    let req = json!({"group": group, "cmid": ClientMsgId::new_v7(), "body": body});
    let (st, out) = s.send_json(from, "POST", "/v1/messages", req).await;
    assert_eq!(st, 200, "{out}");
}

async fn add(s: &TestServer, owner: &Tokens, group: i64, who: &Tokens) {
    let path = format!("/v1/groups/{group}/members");
    let (st, out) = s
        .send_json(owner, "POST", &path, json!({"users": [who.user_id]}))
        .await;
    assert!(st == 200 || st == 201, "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_script_is_found_and_only_by_those_who_may_see_it() {
    let s = TestServer::start().await;
    let [alice, bob, carol, dave, erin, frank] = s
        .users(["alice", "bob", "carol", "dave", "erin", "frank"])
        .await;
    for body in [
        "这个软件安装简单",
        "你好，鲍勃",
        "東京タワーに行きました",
        "안녕하세요 반갑습니다",
        "The installers were running late",
        "iPhone价格太贵了",
    ] {
        send(&s, &alice, &bob, body).await;
    }
    for body in ["安装简单 secret", "鲍勃 secret", "installer secret"] {
        send(&s, &carol, &dave, body).await;
    }
    let g = s.create_group(&alice, &[bob.user_id, carol.user_id]).await;
    send_group(&s, &alice, g, "群里说安装简单").await;
    send_group(&s, &bob, g, "early bird 早鸟").await;
    add(&s, &alice, g, &dave).await;
    send_group(&s, &carol, g, "late news 新闻").await;
    let path = format!("/v1/groups/{g}/members/{}", bob.user_id.0);
    let (st, out) = s.call("DELETE", &path, Some(&bob.access_token), None).await;
    assert!(st == 200 || st == 204, "bob leaves: {out}");
    send_group(&s, &alice, g, "after bob left 离开以后").await;
    // A group whose new members see the last 10 messages.
    let body = json!({"name": "open", "members": [bob.user_id], "history": 10});
    let (st, out) = s.send_json(&alice, "POST", "/v1/groups", body).await;
    assert_eq!(st, 201, "{out}");
    let h = out["id"].as_i64().unwrap();
    send_group(&s, &alice, h, "history visible 历史可见").await;
    add(&s, &alice, h, &frank).await;
    indexed(&s, 14).await;

    let mut both = find(&s, &alice, &q("简单")).await;
    both.sort();
    assert_eq!(both, sorted(["这个软件安装简单", "群里说安装简单"]));
    assert_eq!(find(&s, &alice, &q("鲍勃")).await, ["你好，鲍勃"]);
    assert_eq!(find(&s, &bob, &q("鲍勃")).await, ["你好，鲍勃"]);
    assert_eq!(
        find(&s, &alice, &q("タワー")).await,
        ["東京タワーに行きました"]
    );
    assert_eq!(
        find(&s, &alice, &q("東京")).await,
        ["東京タワーに行きました"]
    );
    assert_eq!(
        find(&s, &alice, &q("반갑")).await,
        ["안녕하세요 반갑습니다"]
    );
    assert_eq!(
        find(&s, &alice, &q("installer")).await,
        ["The installers were running late"]
    );
    assert_eq!(
        find(&s, &alice, &q("IPHONE 价格")).await,
        ["iPhone价格太贵了"]
    );
    assert!(
        find(&s, &alice, &q("secret")).await.is_empty(),
        "carol and dave's chat"
    );
    assert!(
        find(&s, &erin, &q("简单")).await.is_empty(),
        "erin has no conversation"
    );
    let mut carols = find(&s, &carol, &q("安装简单")).await;
    carols.sort();
    assert_eq!(carols, sorted(["安装简单 secret", "群里说安装简单"]));

    // Joined late: nothing from before the join; what came after, yes.
    assert!(find(&s, &dave, &q("早鸟")).await.is_empty());
    assert_eq!(find(&s, &dave, &q("安装简单")).await, ["安装简单 secret"]);
    assert_eq!(find(&s, &dave, &q("新闻")).await, ["late news 新闻"]);
    // Unless the group's history setting shows earlier messages.
    assert_eq!(
        find(&s, &frank, &q("历史")).await,
        ["history visible 历史可见"]
    );
    // Left: nothing of the group, as its history shows nothing.
    assert!(find(&s, &bob, &q("离开以后")).await.is_empty());
    assert!(find(&s, &bob, &q("新闻")).await.is_empty());

    // Filters: one conversation, a sender, a time window.
    let gconv = ConvId::group(magpie_core::GroupId(g));
    let only = format!("{}&conv={gconv}", q("简单"));
    assert_eq!(find(&s, &alice, &only).await, ["群里说安装简单"]);
    let theirs = ConvId::direct(carol.user_id, dave.user_id);
    assert!(
        find(&s, &alice, &format!("{}&conv={theirs}", q("secret")))
            .await
            .is_empty()
    );
    let by_bob = format!("{}&from={}", q("bird"), bob.user_id.0);
    assert_eq!(find(&s, &carol, &by_bob).await, ["early bird 早鸟"]);
    let past = format!("{}&until=1", q("简单"));
    assert!(find(&s, &alice, &past).await.is_empty());

    // The documented refusals.
    let (st, err) = s.get(&alice, &format!("/v1/search?{}", q("，！"))).await;
    assert_eq!(
        (st, err["error"]["code"].as_str()),
        (400, Some("bad_field")),
        "{err}"
    );
    let (st, err) = s.get(&alice, "/v1/search?limit=5").await;
    assert_eq!(
        (st, err["error"]["code"].as_str()),
        (400, Some("bad_field")),
        "no text: {err}"
    );
    let (st, err) = s
        .get(&alice, &format!("/v1/search?{}&limit=1000", q("a")))
        .await;
    assert_eq!(st, 400, "{err}");
    let (st, err) = s
        .get(&alice, &format!("/v1/search?{}&cursor=zz", q("a")))
        .await;
    assert_eq!(st, 400, "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn search_false_hides_a_senders_messages_from_the_change_on() {
    let s = TestServer::start().await;
    let [alice, bob] = s.users(["alice", "bob"]).await;
    send(&s, &alice, &bob, "before 之前 quiet").await;
    s.set_settings(&alice, "", json!({"search": false})).await;
    send(&s, &alice, &bob, "while 期间 quiet").await;
    send(&s, &bob, &alice, "bob answers quiet").await;
    s.set_settings(&alice, "", json!({"search": true})).await;
    send(&s, &alice, &bob, "after 之后 quiet").await;
    indexed(&s, 3).await;
    for who in [&alice, &bob] {
        let mut got = find(&s, who, &q("quiet")).await;
        got.sort();
        let want = ["after 之后 quiet", "before 之前 quiet", "bob answers quiet"];
        assert_eq!(got, sorted(want));
        assert!(find(&s, who, &q("期间")).await.is_empty());
    }
    // Out both ways: alice's own queries find nothing, on HTTP and the
    // socket; bob still finds what he may see; back on, alice finds again.
    s.set_settings(&alice, "", json!({"search": false, "search_view": false}))
        .await;
    assert!(find(&s, &alice, &q("quiet")).await.is_empty());
    let mut c = s.conn(&alice, "ws").await;
    let op = ClientOp::Search {
        query: SearchParams {
            text: "quiet".into(),
            ..Default::default()
        },
    };
    match c.request(op).await {
        ServerFrame::SearchResult { page, .. } => assert!(page.hits.is_empty()),
        other => panic!("{other:?}"),
    }
    assert_eq!(find(&s, &bob, &q("quiet")).await.len(), 3);
    let (st, err) = s
        .get(&alice, &format!("/v1/search?{}&limit=1000", q("quiet")))
        .await;
    assert_eq!(
        st, 400,
        "a bad limit is refused whatever the setting: {err}"
    );
    s.set_settings(&alice, "", json!({"search": true})).await;
    assert_eq!(find(&s, &alice, &q("quiet")).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_socket_op_pages_like_http_on_both_transports() {
    let s = TestServer::start().await;
    let [alice, bob] = s.users(["alice", "bob"]).await;
    for i in 0..5 {
        send(&s, &alice, &bob, &format!("第{i}条 报告")).await;
    }
    indexed(&s, 5).await;
    for transport in ["ws", "tcp"] {
        let mut c = s.conn(&bob, transport).await;
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let query = SearchParams {
                text: "报告".into(),
                limit: Some(2),
                cursor: cursor.clone(),
                ..Default::default()
            };
            let got = c.request(ClientOp::Search { query }).await;
            let ServerFrame::SearchResult { page, .. } = got else {
                panic!("{transport}: {got:?}")
            };
            for hit in &page.hits {
                let marked: Vec<&str> = hit
                    .snippet
                    .iter()
                    .filter(|p| p.hit)
                    .map(|p| p.text.as_str())
                    .collect();
                assert_eq!(marked, ["报告"], "{transport}: {hit:?}");
                seen.push(hit.seq);
            }
            match page.next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        assert_eq!(
            seen,
            [5, 4, 3, 2, 1],
            "{transport}: newest first, each once"
        );
        let bad = SearchParams {
            text: "?!".into(),
            ..Default::default()
        };
        let got = c.request(ClientOp::Search { query: bad }).await;
        assert!(
            matches!(
                &got,
                ServerFrame::Error {
                    code: magpie_proto::ErrorCode::BadField,
                    ..
                }
            ),
            "{transport}: {got:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_index_is_rebuilt_from_the_store() {
    let mut s = TestServer::start().await;
    let [alice, bob] = s.users(["alice", "bob"]).await;
    for i in 0..30 {
        send(&s, &alice, &bob, &format!("message {i} 重建")).await;
    }
    s.set_settings(&alice, "", json!({"search": false})).await;
    send(&s, &alice, &bob, "not this one 重建").await;
    indexed(&s, 30).await;
    s.stop().await;
    std::fs::remove_dir_all(s.dir.path().join("search")).unwrap();
    s.restart().await;
    indexed(&s, 30).await;
    let index = s.app().search.index().unwrap().clone();
    let deadline = tokio::time::Instant::now() + WAIT;
    while index.rebuilding() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the rebuild never ended"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut all = Vec::new();
    let mut cursor = String::new();
    loop {
        let (st, page) = s
            .get(&bob, &format!("/v1/search?{}&limit=7{cursor}", q("重建")))
            .await;
        assert_eq!(st, 200, "{page}");
        all.extend(bodies(&page));
        match page["next"].as_str() {
            Some(n) => cursor = format!("&cursor={n}"),
            None => break,
        }
    }
    assert_eq!(all.len(), 30, "{all:?}");
    assert!(!all.iter().any(|b| b.contains("not this one")));
}
