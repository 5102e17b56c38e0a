//! Store cases for mentions and conversation mute (docs/protocol.md §5.11):
//! a member's mention count is derived from the mention rows and their read
//! position, exact like unread; a mute is a flag of the member's own row.

use super::{accepted, group_msg, new_msg, users};
use crate::Store;
use magpie_core::{ConvId, GroupId, MessageMeta, NewMessage, UserId};

fn mentioning(g: GroupId, from: UserId, users: Vec<UserId>, all: bool) -> NewMessage {
    let mut m = group_msg(g, from, "hey");
    m.meta = MessageMeta::with_mentions(None, users, all);
    m
}

async fn mentions(s: &Store, user: UserId, conv: &ConvId) -> (i64, bool) {
    let c = s
        .messages()
        .conversation(user, conv)
        .await
        .expect("summary");
    let c = c.expect("a member's conversation");
    (c.mentions, c.muted)
}

/// Counts: named mentions and `@all` (one per message however often it
/// names the member), never the sender's own, none after reading past
/// them, none for a recalled message; kept with the message (sync shows
/// them). Mute: per member, per conversation, both kinds.
pub async fn mentions_are_counted_from_read_positions(s: Store) {
    let u = users(&s, &["owner", "b", "c"]).await;
    let (o, b, c) = (u[0], u[1], u[2]);
    let info = s.groups().create_group("g", o, &[b, c], 0).await;
    let g = info.expect("group").id;
    let conv = ConvId::group(g);
    // c sends first: a sender has read what it sent.
    let batch = vec![
        group_msg(g, c, "plain"),
        mentioning(g, c, vec![c], false),
        mentioning(g, o, vec![b], false),
        mentioning(g, o, vec![b, c], true),
    ];
    let seqs: Vec<_> = accepted(&s, batch).await.iter().map(|a| a.seq).collect();
    assert_eq!(mentions(&s, b, &conv).await, (2, false));
    assert_eq!(mentions(&s, c, &conv).await.0, 1, "@all and its name: once");
    assert_eq!(mentions(&s, o, &conv).await.0, 0, "not its own @all");
    let stored = s.messages().messages_after(b, &conv, 0, 10).await;
    let meta = stored.expect("page")[3]
        .meta
        .clone()
        .expect("mentions kept");
    assert!(meta.mention_all && meta.mentions == vec![b, c]);

    s.messages()
        .set_read(b, &conv, seqs[2])
        .await
        .expect("read");
    assert_eq!(mentions(&s, b, &conv).await.0, 1, "read past the first");
    let mut recall = group_msg(g, o, "");
    recall.meta = Some(Box::new(MessageMeta {
        recall_of: Some(seqs[3]),
        ..MessageMeta::default()
    }));
    accepted(&s, vec![recall]).await;
    assert_eq!(mentions(&s, b, &conv).await.0, 0, "a recalled mention");

    assert!(s.messages().set_muted(b, &conv, true).await.expect("mute"));
    assert!(s.messages().set_muted(b, &conv, true).await.expect("again"));
    assert_eq!(mentions(&s, b, &conv).await, (0, true));
    let (ab, x) = (ConvId::direct(o, b), ConvId::direct(b, c));
    accepted(&s, vec![new_msg(o, b, "hi")]).await;
    assert!(
        s.messages()
            .set_muted(o, &ab, true)
            .await
            .expect("mute 1:1")
    );
    assert!(!s.messages().set_muted(o, &x, true).await.expect("not o's"));
    let all = [o, b, c];
    let muted = s.messages().muted_among(&conv, &all).await.expect("among");
    assert_eq!(muted, vec![b]);
    assert_eq!(
        s.messages().muted_among(&ab, &all).await.expect("1:1"),
        vec![o]
    );
    assert!(
        s.messages()
            .set_muted(b, &conv, false)
            .await
            .expect("unmute")
    );
    assert!(
        s.messages()
            .muted_among(&conv, &all)
            .await
            .expect("")
            .is_empty()
    );
}
