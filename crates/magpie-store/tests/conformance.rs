//! Runs the conformance suites against the embedded backends, plus the
//! SQLite durability case that needs a real file.

use magpie_store::sqlite::SqliteStore;
use magpie_store::{State, Store};

/// A fresh database file in its own temp dir; the dir is the guard that
/// deletes it when the case ends.
async fn sqlite_file() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("db").join("magpie.sqlite3");
    let store = SqliteStore::open(path.to_str().expect("utf-8 path"))
        .await
        .expect("open sqlite file");
    (Store::new(store), dir)
}

mod sqlite_file {
    magpie_store::accounts_conformance!(super::sqlite_file);
    magpie_store::messages_conformance!(super::sqlite_file);
    magpie_store::groups_conformance!(super::sqlite_file);
    magpie_store::retention_conformance!(super::sqlite_file);
    magpie_store::feeds_conformance!(super::sqlite_file);
}

/// A fresh private in-memory database.
async fn sqlite_memory() -> Store {
    Store::open("sqlite::memory:")
        .await
        .expect("open in-memory sqlite")
}

mod sqlite_memory {
    magpie_store::accounts_conformance!(super::sqlite_memory);
    magpie_store::messages_conformance!(super::sqlite_memory);
    magpie_store::groups_conformance!(super::sqlite_memory);
    magpie_store::retention_conformance!(super::sqlite_memory);
    magpie_store::feeds_conformance!(super::sqlite_memory);
}

mod mem_state {
    magpie_store::state_conformance!(|| async {
        magpie_store::State::new(magpie_store::mem::MemState::new())
    });
}

/// Issue 12's figure on the in-process state: 1,000,000 offline entries
/// over 12 months (the conformance suite runs 50,000 on every backend).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mem_state_million_offline_entries() {
    let st = State::new(magpie_store::mem::MemState::new());
    magpie_store::testsuite::state_cases::offline_big_user_of(&st, 1_000_000).await;
}

mod sqlite_durability {
    use super::*;
    use magpie_core::{ConvId, DeviceId};
    use magpie_store::testsuite::{new_msg, send};

    /// What was acknowledged is there after the store is dropped and
    /// reopened: users, messages, sequences, read positions, settings.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn store_survives_reopen() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("magpie.sqlite3");
        let url = format!("sqlite://{}", path.display());

        let s = Store::open(&url).await.expect("open");
        let u = magpie_store::testsuite::users(&s, &["alice", "bob"]).await;
        let (a, b) = (u[0], u[1]);
        let m = new_msg(a, b, "persisted");
        send(&s, m.clone()).await;
        send(&s, new_msg(b, a, "reply")).await;
        let conv = ConvId::direct(a, b);
        assert_eq!(s.messages().set_read(b, &conv, 1).await.expect("read"), 1);
        let phone = DeviceId::new("phone").expect("device");
        let settings = magpie_core::ClientSettings {
            search: true,
            ..Default::default()
        };
        s.accounts()
            .put_settings(a, Some(&phone), &settings)
            .await
            .expect("settings");
        drop(s);

        let s = Store::open(&url).await.expect("reopen");
        assert_eq!(
            s.accounts()
                .user_by_name("alice")
                .await
                .expect("user")
                .map(|u| u.id),
            Some(a)
        );
        let msgs = s
            .messages()
            .messages_after(b, &conv, 0, 10)
            .await
            .expect("read");
        assert_eq!(
            msgs.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
            vec!["persisted", "reply"]
        );
        let dup = magpie_store::testsuite::accepted(&s, vec![m])
            .await
            .remove(0);
        assert!(
            dup.duplicate && dup.seq == 1,
            "idempotency survives restart"
        );
        let summary = s
            .messages()
            .conversation(b, &conv)
            .await
            .expect("summary")
            .expect("exists");
        assert_eq!(
            (summary.last_seq, summary.read_seq, summary.unread),
            (2, 1, 0)
        );
        assert_eq!(send(&s, new_msg(a, b, "after restart")).await, 3);
        assert_eq!(
            s.accounts()
                .get_settings(a, Some(&phone))
                .await
                .expect("settings"),
            settings
        );
        let c = s
            .accounts()
            .create_user("carol", "h")
            .await
            .expect("create")
            .id;
        assert!(c.0 > b.0, "ids are not reused");
    }

    /// A file written before migrations were versioned (layout 3 under
    /// `user_version`, made here with that layout's SQL, which is migration
    /// 0003 verbatim) opens with its data: the message reads back, its
    /// cmid is still a duplicate, the sequence continues.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unversioned_v3_file_is_adopted() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("old.sqlite3");
        let (a, b) = (magpie_core::UserId(1), magpie_core::UserId(2));
        let m = new_msg(a, b, "from before");
        {
            let c = rusqlite::Connection::open(&path).expect("open");
            c.execute_batch(include_str!("../migrations/sqlite/0003_baseline.sql"))
                .expect("v3 schema");
            c.execute_batch(
                "INSERT INTO users (id, username, password_hash, created_at) VALUES
                     (1, 'alice', 'h', 1), (2, 'bob', 'h', 1);
                 INSERT INTO conversations (conv, last_seq) VALUES ('d:1:2', 1);
                 INSERT INTO user_conv VALUES (1, 'd:1:2', 2, 1, 1), (2, 'd:1:2', 1, 1, 0);
                 PRAGMA user_version = 3;",
            )
            .expect("v3 rows");
            c.execute(
                "INSERT INTO im_msg_content VALUES (?1, 'd:1:2', 1, 1, 2, ?2, ?3, 'forever', ?4, NULL)",
                rusqlite::params![m.server_id.0, &m.cmid.as_bytes()[..], m.body, m.sent_at],
            )
            .expect("v3 message");
        }
        let s = Store::open(&format!("sqlite://{}", path.display()))
            .await
            .expect("open old file");
        let conv = ConvId::direct(a, b);
        let got = s
            .messages()
            .messages_after(b, &conv, 0, 10)
            .await
            .expect("read");
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].cmid, got[0].body.as_str()), (m.cmid, "from before"));
        let dup = magpie_store::testsuite::accepted(&s, vec![m])
            .await
            .remove(0);
        assert!(dup.duplicate && dup.seq == 1);
        assert_eq!(send(&s, new_msg(b, a, "after")).await, 2);
        let bob = s.messages().conversation(b, &conv).await.expect("summary");
        assert_eq!(bob.map(|c| (c.last_seq, c.unread)), Some((2, 1)));
    }

    /// Opening creates missing parent directories; an unknown URL is a config error.
    #[tokio::test]
    async fn open_creates_parents_and_rejects_unknown_urls() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("a").join("b").join("m.sqlite3");
        SqliteStore::open(path.to_str().expect("utf-8"))
            .await
            .expect("open nested");
        assert!(path.exists());
        assert!(matches!(
            Store::open("foo://x").await,
            Err(magpie_store::StoreError::Config(_))
        ));
        // Only SQL databases can be shards (docs/deploy.md, "SQL shards").
        assert!(matches!(
            Store::open("sqlite::memory: sqlite::memory:").await,
            Err(magpie_store::StoreError::Config(_))
        ));
        assert!(State::open("redis://x").await.is_err());
    }
}
