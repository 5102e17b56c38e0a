//! Store cases for accepting messages: sequences, idempotency and who sees what.

use super::{accepted, new_msg, send, summary_of, users};
use crate::{Page, Store};
use magpie_core::{Accepted, ConvId, Message, NewMessage, Seq, UserId};

/// Every page of two of `conv` as `owner` sees it, from `first` on, through
/// `messages_after` or `messages_before`.
async fn pages(s: &Store, owner: UserId, conv: &ConvId, first: Page) -> Vec<Vec<Seq>> {
    let mut out = Vec::new();
    let mut at = first;
    loop {
        let page = match at {
            Page::After(x) => s.messages().messages_after(owner, conv, x, 2).await,
            Page::Before(x) => s.messages().messages_before(owner, conv, x, 2).await,
        };
        let page = page.expect("page");
        let Some(last) = page.last().map(|m| m.seq) else {
            return out;
        };
        at = match at {
            Page::After(_) => Page::After(last),
            Page::Before(_) => Page::Before(last),
        };
        out.push(seqs(&page));
    }
}

fn seqs(ms: &[Message]) -> Vec<Seq> {
    ms.iter().map(|m| m.seq).collect()
}

/// Users a and b, and one message from a to b accepted: its ids.
async fn one_accepted(s: &Store, body: &str) -> (Vec<UserId>, NewMessage, Accepted) {
    let u = users(s, &["a", "b"]).await;
    let first = new_msg(u[0], u[1], body);
    let orig = accepted(s, vec![first.clone()]).await.remove(0);
    (u, first, orig)
}

/// Sequences start at 1 and are contiguous per conversation, within a batch
/// and across calls, independently for each conversation.
pub async fn accept_allocates_contiguous_seqs_per_conversation(s: Store) {
    let u = users(&s, &["a", "b", "c"]).await;
    let batch = vec![
        new_msg(u[0], u[1], "1"),
        new_msg(u[1], u[0], "2"),
        new_msg(u[0], u[2], "x1"),
    ];
    let acc = accepted(&s, batch.clone()).await;
    assert_eq!(acc.iter().map(|a| a.seq).collect::<Vec<_>>(), vec![1, 2, 1]);
    for (a, m) in acc.iter().zip(&batch) {
        assert!(!a.duplicate);
        assert_eq!(
            (a.server_id, &a.conv, a.sent_at),
            (m.server_id, &m.conv, m.sent_at)
        );
    }
    assert_eq!(send(&s, new_msg(u[0], u[1], "3")).await, 3);
    assert_eq!(send(&s, new_msg(u[2], u[0], "x2")).await, 2);
    assert_eq!(send(&s, new_msg(u[1], u[2], "y1")).await, 1);
}

/// A repeated (from, cmid) returns the original ids, even with another body,
/// and stores nothing new.
pub async fn duplicate_returns_original_and_writes_nothing(s: Store) {
    let messages = s.messages();
    let (u, first, orig) = one_accepted(&s, "original").await;
    let again = NewMessage {
        server_id: super::next_server_id(),
        body: "changed".into(),
        sent_at: first.sent_at + 5,
        ..first.clone()
    };
    let dup = accepted(&s, vec![again]).await.remove(0);
    assert!(dup.duplicate);
    assert_eq!(
        (dup.server_id, &dup.conv, dup.seq, dup.sent_at),
        (orig.server_id, &orig.conv, orig.seq, orig.sent_at)
    );
    assert_eq!(
        messages
            .lookup_cmid(u[0], first.cmid)
            .await
            .expect("lookup"),
        Some(dup)
    );
    // The same cmid from another sender is another message.
    let other = NewMessage {
        cmid: first.cmid,
        ..new_msg(u[1], u[0], "theirs")
    };
    assert_eq!(send(&s, other).await, 2);

    let stored = messages
        .messages_after(u[1], &first.conv, 0, 10)
        .await
        .expect("read");
    assert_eq!(seqs(&stored), vec![1, 2]);
    assert_eq!(stored[0].body, "original");
    assert_eq!(
        summary_of(&s, u[1], &first.conv).await.map(|c| c.last_seq),
        Some(2)
    );
    assert_eq!(
        messages
            .lookup_cmid(u[1], magpie_core::ClientMsgId::new_v7())
            .await
            .expect("lookup"),
        None
    );
}

/// The second occurrence of a (from, cmid) inside one batch is a duplicate
/// of the first.
pub async fn duplicate_within_one_batch(s: Store) {
    let messages = s.messages();
    let u = users(&s, &["a", "b"]).await;
    let m = new_msg(u[0], u[1], "once");
    let twin = NewMessage {
        server_id: super::next_server_id(),
        ..m.clone()
    };
    let acc = accepted(&s, vec![m.clone(), new_msg(u[0], u[1], "next"), twin]).await;
    assert_eq!(
        acc.iter().map(|a| (a.seq, a.duplicate)).collect::<Vec<_>>(),
        vec![(1, false), (2, false), (1, true)]
    );
    assert_eq!(acc[2].server_id, m.server_id);
    assert_eq!(
        messages
            .messages_after(u[0], &m.conv, 0, 10)
            .await
            .expect("read")
            .len(),
        2
    );
    // The sequence the twin did not take is not skipped afterwards.
    let after = accepted(&s, vec![new_msg(u[1], u[0], "later")]).await;
    assert_eq!(after[0].seq, 3, "no gap after a duplicate in a batch");
}

/// A retry of a stored message between fresh ones in one batch: the retry
/// is answered with the original and the fresh ones take the next
/// sequences, with no gap and no second copy (an engine that finds the
/// retry only when writing must undo what it wrote before it).
pub async fn stored_retry_between_fresh_messages(s: Store) {
    let messages = s.messages();
    let (u, first, orig) = one_accepted(&s, "first").await;
    let retry = NewMessage {
        server_id: super::next_server_id(),
        ..first.clone()
    };
    let batch = vec![new_msg(u[0], u[1], "x"), retry, new_msg(u[1], u[0], "y")];
    let acc = accepted(&s, batch).await;
    assert_eq!(
        acc.iter().map(|a| (a.seq, a.duplicate)).collect::<Vec<_>>(),
        vec![(2, false), (1, true), (3, false)]
    );
    assert_eq!(acc[1].server_id, orig.server_id);
    let stored = messages
        .messages_after(u[1], &first.conv, 0, 10)
        .await
        .expect("read");
    assert_eq!(seqs(&stored), vec![1, 2, 3]);
    assert_eq!(
        stored.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
        vec!["first", "x", "y"]
    );
    assert_eq!(
        summary_of(&s, u[0], &first.conv).await.map(|c| c.last_seq),
        Some(3)
    );
    let after = accepted(&s, vec![new_msg(u[0], u[1], "z")]).await;
    assert_eq!(after[0].seq, 4, "no gap after a retry in a batch");
}

/// Twenty racing sends of one cmid: exactly one is new, all report its ids.
pub async fn concurrent_duplicates_agree(s: Store) {
    let u = users(&s, &["a", "b"]).await;
    let m = new_msg(u[0], u[1], "race");
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (s, m) = (
                s.clone(),
                NewMessage {
                    server_id: super::next_server_id(),
                    ..m.clone()
                },
            );
            tokio::spawn(async move { accepted(&s, vec![m]).await.remove(0) })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.expect("task"));
    }
    assert_eq!(
        results.iter().filter(|a| !a.duplicate).count(),
        1,
        "{results:?}"
    );
    assert!(
        results
            .iter()
            .all(|a| a.seq == 1 && a.server_id == results[0].server_id && a.conv == m.conv)
    );
    assert_eq!(
        summary_of(&s, u[0], &m.conv).await.map(|c| c.last_seq),
        Some(1)
    );
}

/// Both parties read the same messages, paging forwards and backwards; a
/// third user sees nothing.
pub async fn messages_visible_to_both_parties_with_paging(s: Store) {
    let messages = s.messages();
    let u = users(&s, &["a", "b", "c"]).await;
    let mut sent = Vec::new();
    for i in 0..5 {
        let (from, to) = if i % 2 == 0 {
            (u[0], u[1])
        } else {
            (u[1], u[0])
        };
        let m = new_msg(from, to, &format!("m{i}"));
        let seq = send(&s, m.clone()).await;
        sent.push(Message::from_new(m, seq));
    }
    let conv = ConvId::direct(u[0], u[1]);
    for owner in [u[0], u[1]] {
        assert_eq!(
            messages
                .messages_after(owner, &conv, 0, 100)
                .await
                .expect("after"),
            sent,
            "owner {owner}"
        );
        let forward = pages(&s, owner, &conv, Page::After(0)).await;
        assert_eq!(forward, vec![vec![1, 2], vec![3, 4], vec![5]]);
        let backward = pages(&s, owner, &conv, Page::Before(Seq::MAX)).await;
        assert_eq!(backward, vec![vec![5, 4], vec![3, 2], vec![1]]);
    }
    assert_eq!(
        seqs(
            &messages
                .messages_before(u[0], &conv, 4, 10)
                .await
                .expect("before")
        ),
        vec![3, 2, 1]
    );
    assert!(
        messages
            .messages_after(u[2], &conv, 0, 100)
            .await
            .expect("outsider")
            .is_empty()
    );
    assert!(
        messages
            .messages_before(u[2], &conv, Seq::MAX, 100)
            .await
            .expect("outsider")
            .is_empty()
    );
}

/// A note to self is stored once, visible to its author, and never unread.
pub async fn note_to_self_has_one_copy(s: Store) {
    let messages = s.messages();
    let u = users(&s, &["a"]).await[0];
    let conv = ConvId::direct(u, u);
    let m = new_msg(u, u, "remember");
    assert_eq!(send(&s, m.clone()).await, 1);
    assert_eq!(send(&s, new_msg(u, u, "again")).await, 2);
    let got = messages
        .messages_after(u, &conv, 0, 10)
        .await
        .expect("read");
    assert_eq!(seqs(&got), vec![1, 2]);
    assert_eq!(got[0], Message::from_new(m, 1));
    let summary = messages.conversations(u).await.expect("list");
    assert_eq!(summary.len(), 1);
    assert_eq!(
        (summary[0].peer, summary[0].last_seq, summary[0].unread),
        (u, 2, 0)
    );
}

/// The system user (id 0) sends without having a user row.
pub async fn system_user_may_send_without_a_user_row(s: Store) {
    let messages = s.messages();
    let u = users(&s, &["a"]).await[0];
    let m = new_msg(UserId::SYSTEM, u, "welcome");
    assert_eq!(send(&s, m.clone()).await, 1);
    assert_eq!(
        messages
            .messages_after(u, &m.conv, 0, 10)
            .await
            .expect("read"),
        vec![Message::from_new(m.clone(), 1)]
    );
    let c = summary_of(&s, u, &m.conv).await.expect("has summary");
    assert_eq!((c.peer, c.unread), (UserId::SYSTEM, 1));
    assert_eq!(
        messages
            .messages_after(UserId::SYSTEM, &m.conv, 0, 10)
            .await
            .expect("outbox")
            .len(),
        1
    );
}
