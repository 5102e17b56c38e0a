//! Store cases for replies, edits and recalls (`magpie_core::meta`): the
//! references are kept with the message, and an event rewrites the message
//! it revises in the transaction that stores it.

use super::{accepted, new_msg, users};
use crate::Store;
use magpie_core::{ConvId, Message, MessageMeta, NewMessage, UserId};

/// `m` with references; an edit or recall is not searchable itself, as
/// the send path decides (docs/search.md).
fn with_refs(mut m: NewMessage, refs: MessageMeta) -> NewMessage {
    m.search = refs.revises().is_none();
    m.meta = Some(Box::new(refs));
    m
}

async fn all(s: &Store, owner: UserId, conv: &ConvId) -> Vec<Message> {
    s.messages()
        .messages_after(owner, conv, 0, 100)
        .await
        .expect("page")
}

/// A reply keeps its reference; an edit replaces the text and stamps the
/// time; a recall empties the text, takes it out of search, and a later
/// edit (a race the service lost) leaves it recalled.
pub async fn revisions_rewrite_the_message_they_name(s: Store) {
    let u = users(&s, &["a", "b"]).await;
    let (a, b) = (u[0], u[1]);
    let conv = ConvId::direct(a, b);
    accepted(&s, vec![new_msg(a, b, "one"), new_msg(a, b, "two")]).await;
    let reply = MessageMeta {
        reply_to: Some(1),
        ..MessageMeta::default()
    };
    let edit = |seq| MessageMeta {
        edit_of: Some(seq),
        ..MessageMeta::default()
    };
    let recall = MessageMeta {
        recall_of: Some(2),
        ..MessageMeta::default()
    };
    let batch = vec![
        with_refs(new_msg(b, a, "re"), reply),
        with_refs(new_msg(a, b, "ONE"), edit(1)),
        with_refs(new_msg(a, b, ""), recall),
    ];
    accepted(&s, batch).await;
    accepted(&s, vec![with_refs(new_msg(a, b, "TWO"), edit(2))]).await;

    let got = all(&s, b, &conv).await;
    assert_eq!(got.len(), 6);
    assert_eq!(got[0].body, "ONE");
    let m0 = got[0].meta.as_deref().expect("edited");
    assert_eq!(m0.edited_at, Some(got[3].sent_at));
    assert!(!m0.recalled);
    assert_eq!(got[1].body, "", "recalled, and not edited after");
    assert!(got[1].meta.as_deref().expect("recalled").recalled);
    assert_eq!(got[2].meta.as_deref().and_then(|m| m.reply_to), Some(1));
    assert_eq!(got[3].meta.as_deref().and_then(|m| m.edit_of), Some(1));
    assert_eq!(got[4].meta.as_deref().and_then(|m| m.recall_of), Some(2));
    assert!(got[2].meta.as_deref().unwrap().edited_at.is_none());

    // The rebuild of a search index sees the edited text, not the recalled one.
    let searchable = s.messages().scan_searchable(None, 100).await.expect("scan");
    let bodies: Vec<&str> = searchable
        .iter()
        .filter(|m| m.conv == conv)
        .map(|m| m.body.as_str())
        .collect();
    assert_eq!(bodies, ["ONE", "re"]);
}
