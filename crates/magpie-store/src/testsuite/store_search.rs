//! Store cases for search: each message keeps its search flag, and the
//! rebuild walk (`scan_searchable`) sees every flagged message once.

use super::{accepted, new_msg, users};
use crate::Store;
use magpie_core::{ConvId, NewMessage, Seq, UserId};
use std::collections::BTreeSet;

/// Flagged and unflagged messages in several conversations (on a sharded
/// store, on several shards): paging the walk by two gives exactly the
/// flagged ones, each once, in (conversation, sequence) order per shard,
/// with the flag read back as written.
pub async fn scan_searchable_walks_every_flagged_message_once(s: Store) {
    let u = users(&s, &["a", "b", "c", "d"]).await;
    let mut batch: Vec<NewMessage> = Vec::new();
    for (i, to) in [u[1], u[2], u[3], u[1], u[2], u[3], u[1]]
        .into_iter()
        .enumerate()
    {
        let mut m = new_msg(u[0], to, &format!("m{i}"));
        m.search = i != 3;
        batch.push(m);
    }
    let want: BTreeSet<String> = batch
        .iter()
        .filter(|m| m.search)
        .map(|m| m.body.clone())
        .collect();
    accepted(&s, batch).await;
    let ours = |from: UserId| from == u[0];
    let mut got = Vec::new();
    let mut after: Option<(ConvId, Seq)> = None;
    loop {
        let page = s
            .messages()
            .scan_searchable(after.clone(), 2)
            .await
            .expect("scan");
        let Some(last) = page.last() else { break };
        assert!(page.len() <= 2);
        after = Some((last.conv.clone(), last.seq));
        for m in page {
            assert!(m.search, "only flagged messages: {m:?}");
            if ours(m.from) {
                got.push(m.body);
            }
        }
    }
    let unique: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(unique.len(), got.len(), "each once: {got:?}");
    assert_eq!(unique, want);
    let conv = ConvId::direct(u[0], u[1]);
    let read = s
        .messages()
        .messages_after(u[1], &conv, 0, 10)
        .await
        .expect("history");
    let flags: Vec<bool> = read.iter().map(|m| m.search).collect();
    assert_eq!(
        flags,
        [true, false, true],
        "the flag is stored with the message"
    );
}
