//! Store case for member events (`magpie_core::member_event`): the system
//! user, no member, writes them into a group's conversation.

use super::{accepted, group_msg, users};
use crate::{Store, StoreError};
use magpie_core::{ConvId, MemberEvent, MessageMeta, UserId};

/// Accepted into a group like any message (sequenced after the members'
/// messages, with its event kept), refused once the group is dissolved.
pub async fn the_system_user_writes_member_events(s: Store) {
    let u = users(&s, &["owner", "b"]).await;
    let g = s.groups().create_group("g", u[0], &[u[1]], 0).await;
    let g = g.expect("group").id;
    accepted(&s, vec![group_msg(g, u[1], "hi")]).await;
    let event = MemberEvent::Left { user: u[1] };
    let mut m = group_msg(g, UserId::SYSTEM, &event.text());
    m.meta = Some(Box::new(MessageMeta {
        event: Some(event.clone()),
        ..MessageMeta::default()
    }));
    let acc = accepted(&s, vec![m.clone()]).await;
    assert_eq!(acc[0].seq, 2);
    let conv = ConvId::group(g);
    let got = s.messages().messages_after(u[0], &conv, 1, 10).await;
    let got = got.expect("page");
    assert_eq!(got[0].from, UserId::SYSTEM);
    assert_eq!(
        got[0].meta.as_deref().and_then(|m| m.event.clone()),
        Some(event)
    );

    s.groups().dissolve_group(g).await.expect("dissolve");
    m.cmid = magpie_core::ClientMsgId::new_v7();
    m.server_id = super::next_server_id();
    let out = s.messages().accept(vec![m]).await.expect("batch");
    assert!(
        matches!(out[0], Err(StoreError::Forbidden(_))),
        "a dissolved group takes no event: {:?}",
        out[0]
    );
}
