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
    magpie_store::store_conformance!(super::sqlite_file);
}

mod sqlite_memory {
    magpie_store::store_conformance!(|| async {
        magpie_store::Store::open("sqlite::memory:")
            .await
            .expect("open in-memory sqlite")
    });
}

mod mem_state {
    magpie_store::state_conformance!(|| async {
        magpie_store::State::new(magpie_store::mem::MemState::new())
    });
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
        let a = s.create_user("alice", "h").await.expect("create").id;
        let b = s.create_user("bob", "h").await.expect("create").id;
        let m = new_msg(a, b, "persisted");
        send(&s, m.clone()).await;
        send(&s, new_msg(b, a, "reply")).await;
        let conv = ConvId::direct(a, b);
        assert_eq!(s.set_read(b, &conv, 1).await.expect("read"), 1);
        let phone = DeviceId::new("phone").expect("device");
        let settings = magpie_core::ClientSettings {
            search: true,
            ..Default::default()
        };
        s.put_settings(a, Some(&phone), &settings)
            .await
            .expect("settings");
        drop(s);

        let s = Store::open(&url).await.expect("reopen");
        assert_eq!(
            s.user_by_name("alice").await.expect("user").map(|u| u.id),
            Some(a)
        );
        let msgs = s.messages_after(b, &conv, 0, 10).await.expect("read");
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
            s.get_settings(a, Some(&phone)).await.expect("settings"),
            settings
        );
        let c = s.create_user("carol", "h").await.expect("create").id;
        assert!(c.0 > b.0, "ids are not reused");
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
        assert!(State::open("redis://x").await.is_err());
    }
}
