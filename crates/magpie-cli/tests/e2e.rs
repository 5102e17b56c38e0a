//! The command-line client drives a full conversation between two users
//! against a real in-process node: register, login, `listen` over both
//! transports, `send` (to an id and to a username), `history`, `unread`,
//! `read`, `whois`, and failing commands.
//! Every child process is killed if the test ends early (`kill_on_drop`).

use serde_json::Value;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;
use tokio::process::{Child, Command};

/// Generous: a one-shot command on a loaded machine.
const CMD_WAIT: Duration = Duration::from_secs(60);

struct Node {
    running: Option<magpie_server::Running>,
    base: String,
    _data: tempfile::TempDir,
}

async fn start_node() -> Node {
    let data = tempfile::tempdir().unwrap();
    let mut cfg = magpie_server::Config {
        data_dir: data.path().to_path_buf(),
        ..magpie_server::Config::default()
    };
    cfg.http.listen = "127.0.0.1:0".into();
    cfg.tcp.listen = "127.0.0.1:0".into();
    cfg.auth.argon2_m_kib = 64;
    cfg.auth.argon2_t = 1;
    let running = magpie_server::start(cfg).await.unwrap();
    let base = format!("http://{}", running.http_addr);
    Node {
        running: Some(running),
        base,
        _data: data,
    }
}

/// `magpie-cli --server BASE --config-dir DIR --profile PROFILE --json ARGS...`,
/// with no inherited MAGPIE_* environment.
fn cli(node: &Node, dir: &Path, profile: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_magpie-cli"));
    c.args(["--server", &node.base])
        .arg("--config-dir")
        .arg(dir)
        .args(["--profile", profile, "--json"])
        .args(args)
        .env_remove("MAGPIE_PASSWORD")
        .env_remove("MAGPIE_SERVER")
        .env_remove("MAGPIE_CLI_DIR")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    c
}

/// Runs a command to completion (killed if it takes longer than CMD_WAIT).
async fn run(mut cmd: Command) -> Output {
    tokio::time::timeout(CMD_WAIT, cmd.output())
        .await
        .expect("magpie-cli did not finish in time")
        .expect("spawn magpie-cli")
}

/// Registers and logs in each of `names` (password `password123`), each in
/// the profile of its name; their user ids.
async fn sign_up(node: &Node, dir: &Path, names: &[&str]) -> Vec<i64> {
    let mut ids = Vec::new();
    for &name in names {
        ok_json(cli(
            node,
            dir,
            name,
            &["register", name, "--password", "password123"],
        ))
        .await;
        let mut c = cli(node, dir, name, &["login", name]);
        c.env("MAGPIE_PASSWORD", "password123");
        ids.push(ok_json(c).await["user_id"].as_i64().unwrap());
    }
    ids
}

fn describe(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs a command that must succeed and print exactly one JSON line.
async fn ok_json(cmd: Command) -> Value {
    let o = run(cmd).await;
    assert!(o.status.success(), "{}", describe(&o));
    let lines = json_lines(&o);
    assert_eq!(lines.len(), 1, "{}", describe(&o));
    lines.into_iter().next().unwrap()
}

fn json_lines(o: &Output) -> Vec<Value> {
    String::from_utf8(o.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}\n{}", describe(o)))
        })
        .collect()
}

/// Starts `listen` with piped output; the caller waits for it with `finish`.
fn spawn_listen(node: &Node, dir: &Path, profile: &str, extra: &[&str]) -> Child {
    let mut args = vec!["listen", "--timeout-secs", "30"];
    args.extend_from_slice(extra);
    let mut c = cli(node, dir, profile, &args);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c.spawn().expect("spawn listen")
}

async fn finish(child: Child) -> Output {
    tokio::time::timeout(CMD_WAIT, child.wait_with_output())
        .await
        .expect("listen did not exit in time")
        .expect("wait for listen")
}

/// (seq, body, from) of each printed message.
fn messages(lines: &[Value]) -> Vec<(i64, String, i64)> {
    lines
        .iter()
        .map(|m| {
            (
                m["seq"].as_i64().expect("seq"),
                m["body"].as_str().expect("body").to_string(),
                m["from"].as_i64().expect("from"),
            )
        })
        .collect()
}

/// Polls `unread` until `pred` holds (counters are updated by a worker).
async fn unread_until(node: &Node, dir: &Path, pred: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        last = ok_json(cli(node, dir, "alice", &["unread"])).await;
        if pred(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("unread never matched; last answer {last}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_drives_a_full_conversation_between_two_users() {
    let mut node = start_node().await;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();

    // Register with --password, log in with MAGPIE_PASSWORD.
    for name in ["alice", "bob"] {
        let r = ok_json(cli(
            &node,
            dir,
            name,
            &["register", name, "--password", "password123"],
        ))
        .await;
        assert_eq!(r["username"], name);
    }
    let login = |name: &str| {
        let mut c = cli(&node, dir, name, &["login", name]);
        c.env("MAGPIE_PASSWORD", "password123");
        c
    };
    let a = ok_json(login("alice")).await;
    let b = ok_json(login("bob")).await;
    assert_eq!(
        (a["profile"].as_str(), b["profile"].as_str()),
        (Some("alice"), Some("bob"))
    );
    let alice_id = a["user_id"].as_i64().unwrap();
    let bob_id = b["user_id"].as_i64().unwrap();
    assert_ne!(alice_id, bob_id);
    let (alice_s, bob_s) = (alice_id.to_string(), bob_id.to_string());

    // Bob listens over WebSocket (the device default) for two messages.
    let bob_listen = spawn_listen(&node, dir, "bob", &["--count", "2"]);
    let s1 = ok_json(cli(&node, dir, "alice", &["send", &bob_s, "hello", "bob"])).await;
    assert_eq!(
        (s1["seq"].as_i64(), s1["duplicate"].as_bool()),
        (Some(1), Some(false))
    );
    // By username as well as by id.
    let s2 = ok_json(cli(&node, dir, "alice", &["send", "bob", "second"])).await;
    assert_eq!(s2["seq"].as_i64(), Some(2));
    let o = finish(bob_listen).await;
    assert!(o.status.success(), "{}", describe(&o));
    assert_eq!(
        messages(&json_lines(&o)),
        [
            (1, "hello bob".to_string(), alice_id),
            (2, "second".to_string(), alice_id)
        ],
        "{}",
        describe(&o)
    );

    // Alice listens over TCP: her first run starts from the beginning, so it
    // prints her own two messages and then bob's reply.
    let alice_listen = spawn_listen(&node, dir, "alice", &["--transport", "tcp", "--count", "3"]);
    let r = ok_json(cli(&node, dir, "bob", &["send", &alice_s, "hi", "alice"])).await;
    assert_eq!(r["seq"].as_i64(), Some(3));
    let o = finish(alice_listen).await;
    assert!(o.status.success(), "{}", describe(&o));
    let note = format!("listening as user {alice_id}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&note),
        "{}",
        describe(&o)
    );
    assert_eq!(
        messages(&json_lines(&o)),
        [
            (1, "hello bob".to_string(), alice_id),
            (2, "second".to_string(), alice_id),
            (3, "hi alice".to_string(), bob_id)
        ],
        "{}",
        describe(&o)
    );

    // History: newest first, three messages.
    let page = ok_json(cli(&node, dir, "alice", &["history", "@bob"])).await;
    let seqs: Vec<i64> = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [3, 2, 1], "{page}");
    assert_eq!(page["messages"][0]["body"], "hi alice");

    // Unread: one from bob, then none after reading up to 3.
    let u = unread_until(&node, dir, |u| u["total"] == 1).await;
    let conv = u["convs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["peer"].as_i64() == Some(bob_id))
        .unwrap_or_else(|| panic!("no conversation with bob: {u}"))
        .clone();
    assert_eq!(conv["unread"].as_i64(), Some(1), "{u}");
    assert_eq!(conv["last_seq"].as_i64(), Some(3), "{u}");
    let r = ok_json(cli(&node, dir, "alice", &["read", "bob", "3"])).await;
    assert_eq!(r["seq"].as_i64(), Some(3));
    let u = unread_until(&node, dir, |u| u["total"] == 0).await;
    assert!(
        u["convs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["unread"].as_i64() == Some(0)),
        "{u}"
    );

    // A failing command: exit status 1, the error code on stderr (and in-band
    // on stdout with --json).
    let o = run(cli(&node, dir, "alice", &["send", "999999", "anyone?"])).await;
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("error: unknown_recipient"),
        "{}",
        describe(&o)
    );
    assert_eq!(json_lines(&o)[0]["error"]["code"], "unknown_recipient");
    // Who a name is, and a name nobody has.
    let w = ok_json(cli(&node, dir, "bob", &["whois", "alice"])).await;
    assert_eq!(
        (w["id"].as_i64(), w["username"].as_str()),
        (Some(alice_id), Some("alice"))
    );
    let w = ok_json(cli(&node, dir, "bob", &["whois", &alice_s])).await;
    assert_eq!(w["username"], "alice");
    let o = run(cli(&node, dir, "alice", &["send", "nobody", "hi"])).await;
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert_eq!(json_lines(&o)[0]["error"]["code"], "not_found");

    if let Some(r) = node.running.take() {
        r.shutdown(Duration::from_secs(3)).await;
    }
}

/// `follow`, `post`, `feed`, `unfollow` and `search` against a real node.
#[tokio::test(flavor = "multi_thread")]
async fn cli_follows_posts_and_reads_the_feed() {
    let node = start_node().await;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let ids: Vec<String> = sign_up(&node, dir, &["carol", "dave"])
        .await
        .iter()
        .map(i64::to_string)
        .collect();
    let f = ok_json(cli(&node, dir, "dave", &["follow", &ids[0]])).await;
    assert_eq!(f["changed"], true);
    let p1 = ok_json(cli(&node, dir, "carol", &["post", "first", "words"])).await;
    let p2 = ok_json(cli(&node, dir, "carol", &["post", "second"])).await;
    assert_eq!(
        (p1["post"]["body"].as_str(), p1["duplicate"].as_bool()),
        (Some("first words"), Some(false))
    );
    let mut feed = Value::Null;
    for _ in 0..100 {
        feed = ok_json(cli(&node, dir, "dave", &["feed", "--limit", "1"])).await;
        if feed["posts"][0]["id"] == p2["post"]["id"] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(feed["posts"][0]["body"], "second", "{feed}");
    let next = feed["next"].as_str().expect("an older page");
    let older = ok_json(cli(&node, dir, "dave", &["feed", "--before", next])).await;
    assert_eq!(older["posts"][0]["id"], p1["post"]["id"]);
    assert!(older.get("next").is_none(), "{older}");
    ok_json(cli(&node, dir, "dave", &["unfollow", &ids[0]])).await;
    let empty = ok_json(cli(&node, dir, "dave", &["feed"])).await;
    assert_eq!(empty["posts"], serde_json::json!([]));

    // Search: what carol told dave, found by a word inside a Chinese run.
    ok_json(cli(
        &node,
        dir,
        "carol",
        &["send", &ids[1], "这个软件安装简单"],
    ))
    .await;
    let mut found = Value::Null;
    for _ in 0..100 {
        found = ok_json(cli(&node, dir, "dave", &["search", "简单"])).await;
        if found["hits"].as_array().is_some_and(|h| !h.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let marked: Vec<&str> = found["hits"][0]["snippet"]
        .as_array()
        .expect("a hit")
        .iter()
        .filter(|p| p["hit"] == true)
        .map(|p| p["text"].as_str().unwrap())
        .collect();
    assert_eq!(marked, ["简单"], "{found}");
    let none = ok_json(cli(&node, dir, "dave", &["search", "nothing", "here"])).await;
    assert_eq!(none["hits"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_drives_a_group_with_mentions_a_reply_an_edit_and_a_recall() {
    let node = start_node().await;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    sign_up(&node, dir, &["erin", "frank", "grace"]).await;
    let g = ok_json(cli(
        &node,
        dir,
        "erin",
        &["group", "create", "trip", "frank", "grace"],
    ))
    .await;
    assert_eq!(g["members"], 3, "{g}");
    let gid = format!("g:{}", g["id"].as_i64().unwrap());
    let num = g["id"].as_i64().unwrap().to_string();
    let o = run(cli(
        &node,
        dir,
        "grace",
        &["group", "role", &num, "frank", "admin"],
    ))
    .await;
    assert!(!o.status.success(), "only the owner and admins set roles");
    assert_eq!(
        json_lines(&o)[0]["error"]["code"],
        "forbidden",
        "{}",
        describe(&o)
    );
    let r = ok_json(cli(
        &node,
        dir,
        "erin",
        &["group", "role", &num, "frank", "admin"],
    ))
    .await;
    assert_eq!(r["role"], "admin", "{r}");

    let s1 = ok_json(cli(&node, dir, "grace", &["send", &gid, "leaving at 9"])).await;
    let seq1 = s1["seq"].as_i64().unwrap().to_string();
    let reply = ok_json(cli(
        &node,
        dir,
        "erin",
        &["send", &gid, "make it 10", "--reply-to", &seq1],
    ))
    .await;
    let seq2 = reply["seq"].as_i64().unwrap().to_string();
    ok_json(cli(
        &node,
        dir,
        "grace",
        &["edit", &gid, &seq1, "leaving at 10"],
    ))
    .await;
    // Frank is an admin now: he recalls erin's message.
    ok_json(cli(&node, dir, "frank", &["recall", &gid, &seq2])).await;

    let page = ok_json(cli(&node, dir, "frank", &["history", &gid])).await;
    let msgs = page["messages"].as_array().unwrap();
    let by_seq = |s: i64| msgs.iter().find(|m| m["seq"] == s).unwrap();
    // #1 is the role change, announced by the server (a member event).
    assert_eq!(by_seq(1)["meta"]["event"]["kind"], "role", "{page}");
    assert_eq!(by_seq(1)["from"], 0);
    assert_eq!(by_seq(2)["body"], "leaving at 10");
    assert!(by_seq(2)["meta"]["edited_at"].is_i64(), "{page}");
    assert_eq!(by_seq(3)["meta"]["recalled"], true);
    assert_eq!(by_seq(3)["meta"]["reply_to"], 2);
    assert_eq!(by_seq(3)["body"], "");
    assert_eq!(by_seq(4)["meta"]["edit_of"], 2);
    assert_eq!(by_seq(5)["meta"]["recall_of"], 3);

    // Mentions: `@name` and `@all` in the text; `@all` is the owner's and
    // admins'. Frank's count is exact; a mute keeps it and is shown.
    let o = run(cli(&node, dir, "grace", &["send", &gid, "@all", "hurry"])).await;
    assert!(!o.status.success(), "@all by a plain member");
    assert_eq!(
        json_lines(&o)[0]["error"]["code"],
        "forbidden",
        "{}",
        describe(&o)
    );
    let m = ok_json(cli(
        &node,
        dir,
        "erin",
        &["send", &gid, "@frank, pack", "@all"],
    ))
    .await;
    assert!(m["seq"].is_i64(), "{m}");
    ok_json(cli(
        &node,
        dir,
        "grace",
        &["send", &gid, "@frank", "the", "tent!"],
    ))
    .await;
    ok_json(cli(&node, dir, "frank", &["mute", &gid])).await;
    let u = ok_json(cli(&node, dir, "frank", &["unread"])).await;
    let entry = u["convs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["conv"] == gid.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("{gid} in {u}"));
    assert_eq!(
        (entry["unread"].as_i64(), entry["mentions"].as_i64()),
        (Some(2), Some(2)),
        "{u}"
    );
    assert_eq!(entry["muted"], true, "{u}");
    let o = run(cli_text(&node, dir, "frank", &["unread"])).await;
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("2 unread (2 mentions)") && out.contains("muted"),
        "{out}"
    );
    let o = run(cli(&node, dir, "erin", &["send", &gid, "hi", "@nobody"])).await;
    assert!(
        !o.status.success(),
        "a mention of no user is an error before sending"
    );

    // A profile: frank's display name is what others see of him.
    let p = ok_json(cli(
        &node,
        dir,
        "frank",
        &["set-profile", "--name", "Frank F."],
    ))
    .await;
    assert_eq!(p["display_name"], "Frank F.", "{p}");
    let o = run(cli_text(&node, dir, "erin", &["whois", "frank"])).await;
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("is frank (Frank F.)"), "{out}");

    // Members, handing over, leaving, and the text form of history.
    let g = ok_json(cli(&node, dir, "erin", &["group", "owner", &num, "frank"])).await;
    assert_eq!(g["owner"], by_seq(5)["from"], "frank owns the group: {g}");
    ok_json(cli(&node, dir, "grace", &["group", "leave", &num])).await;
    let members = ok_json(cli(&node, dir, "erin", &["group", "members", &num])).await;
    assert_eq!(members.as_array().unwrap().len(), 2, "{members}");
    let o = run(cli_text(&node, dir, "erin", &["history", &gid])).await;
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("(edited)") && out.contains("(recalled)"),
        "{out}"
    );
    assert!(
        out.contains("(reply to #2)") && out.contains("(recalls #3)"),
        "{out}"
    );
}

/// `cli` without `--json`: the text a person reads.
fn cli_text(node: &Node, dir: &Path, profile: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_magpie-cli"));
    c.args(["--server", &node.base])
        .arg("--config-dir")
        .arg(dir)
        .args(["--profile", profile])
        .args(args)
        .env_remove("MAGPIE_SERVER")
        .env_remove("MAGPIE_CLI_DIR")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_hears_and_says_something_in_a_live_room() {
    let node = start_node().await;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    sign_up(&node, dir, &["hana", "ivan"]).await;
    // Ivan listens for one message; hana says it until he has heard one (a
    // room keeps nothing for who was not there: she may speak before he
    // joined).
    let mut ivan = cli_text(
        &node,
        dir,
        "ivan",
        &["room", "stage", "--count", "1", "--timeout-secs", "30"],
    );
    ivan.stdout(Stdio::piped());
    let ivan = ivan.spawn().expect("spawn magpie-cli");
    let heard = tokio::spawn(async move { ivan.wait_with_output().await });
    let deadline = tokio::time::Instant::now() + CMD_WAIT;
    while !heard.is_finished() {
        assert!(tokio::time::Instant::now() < deadline, "ivan heard nothing");
        let said = run(cli(
            &node,
            dir,
            "hana",
            &["room", "stage", "--say", "doors open", "--count", "0"],
        ))
        .await;
        assert!(said.status.success(), "{}", describe(&said));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let o = heard.await.unwrap().expect("ivan's output");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", describe(&o));
    assert!(
        out.contains("[room stage]") && out.contains("doors open"),
        "{out}"
    );
}
