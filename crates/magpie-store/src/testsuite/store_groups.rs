//! Store cases for groups: membership and roles, read diffusion, positions,
//! unread counts and read-by lists.

use super::{accepted, new_msg, next_server_id, users};
use crate::{Store, StoreError};
use magpie_core::{
    ClientMsgId, ConvId, GroupId, GroupRole, NewMessage, Persistence, Seq, UserId, now_ms,
};

fn group_msg(g: GroupId, from: UserId, body: &str) -> NewMessage {
    NewMessage {
        server_id: next_server_id(),
        conv: ConvId::group(g),
        from,
        to: UserId(0),
        cmid: ClientMsgId::new_v7(),
        body: body.to_string(),
        persistence: Persistence::Forever,
        sent_at: now_ms(),
    }
}

async fn post(s: &Store, g: GroupId, from: UserId, body: &str) -> Seq {
    accepted(s, vec![group_msg(g, from, body)]).await[0].seq
}

async fn unread(s: &Store, user: UserId, g: GroupId) -> i64 {
    s.conversation(user, &ConvId::group(g))
        .await
        .expect("summary")
        .map_or(-1, |c| c.unread)
}

/// Create, add (only new users count), roles, mute, remove, list and page.
pub async fn groups_membership_and_roles(s: Store) {
    let u = users(&s, &["o", "a", "b", "c", "d"]).await;
    let g = s
        .create_group("team", u[0], &[u[1], u[2], u[1], u[0]], 0)
        .await
        .expect("create");
    assert_eq!(
        (g.name.as_str(), g.owner, g.members, g.last_seq),
        ("team", u[0], 3, 0)
    );
    assert!(!g.dissolved);
    let owner = s.member(g.id, u[0]).await.expect("member").expect("owner");
    assert_eq!(owner.role, GroupRole::Owner);
    assert_eq!(
        s.member(g.id, u[1]).await.expect("m").map(|m| m.role),
        Some(GroupRole::Member)
    );
    assert_eq!(s.member(g.id, u[3]).await.expect("m"), None);
    let added = s
        .add_members(g.id, &[u[2], u[3], u[4], u[3]])
        .await
        .expect("add");
    assert_eq!(
        added,
        vec![u[3], u[4]],
        "only users not yet members are added"
    );
    assert!(
        s.set_member(g.id, u[1], Some(GroupRole::Admin), Some(true))
            .await
            .expect("set")
    );
    let a = s.member(g.id, u[1]).await.expect("m").expect("a");
    assert_eq!((a.role, a.muted), (GroupRole::Admin, true));
    assert!(
        !s.set_member(g.id, UserId(9999), None, Some(true))
            .await
            .expect("set")
    );
    assert!(s.remove_member(g.id, u[2]).await.expect("remove"));
    assert!(!s.remove_member(g.id, u[2]).await.expect("again"));
    let info = s.group(g.id).await.expect("group").expect("exists");
    assert_eq!(info.members, 4);
    let page1 = s.members(g.id, UserId(0), 2).await.expect("page");
    let page2 = s.members(g.id, page1[1].user, 2).await.expect("page");
    let all: Vec<UserId> = page1.iter().chain(&page2).map(|m| m.user).collect();
    assert_eq!(all, vec![u[0], u[1], u[3], u[4]]);
    assert_eq!(s.user_groups(u[3]).await.expect("groups"), vec![g.id]);
    assert!(s.user_groups(u[2]).await.expect("groups").is_empty());
    s.rename_group(g.id, "renamed").await.expect("rename");
    s.dissolve_group(g.id).await.expect("dissolve");
    let info = s.group(g.id).await.expect("group").expect("exists");
    assert_eq!((info.name.as_str(), info.dissolved), ("renamed", true));
    assert_eq!(s.group(GroupId(987_654)).await.expect("none"), None);
}

/// One stored copy per message, one sequence per group; only members send,
/// and only members read, from their join on (or `history` before it).
pub async fn group_messages_are_stored_once_and_seen_by_members(s: Store) {
    let u = users(&s, &["o", "a", "x", "late", "hist"]).await;
    let g = s.create_group("g", u[0], &[u[1]], 0).await.expect("create");
    assert_eq!(post(&s, g.id, u[0], "1").await, 1);
    assert_eq!(post(&s, g.id, u[1], "2").await, 2);
    let err = s
        .accept(vec![group_msg(g.id, u[2], "no")])
        .await
        .expect("tx")
        .remove(0);
    assert!(matches!(err, Err(StoreError::Forbidden(_))), "{err:?}");
    let conv = ConvId::group(g.id);
    let seen = s.messages_after(u[1], &conv, 0, 10).await.expect("read");
    assert_eq!(
        seen.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
        ["1", "2"]
    );
    assert!(
        s.messages_after(u[2], &conv, 0, 10)
            .await
            .expect("x")
            .is_empty()
    );
    // A late joiner sees from the join on; with history 1 the last one before.
    s.add_members(g.id, &[u[3]]).await.expect("add");
    assert_eq!(post(&s, g.id, u[0], "3").await, 3);
    let late = s.messages_after(u[3], &conv, 0, 10).await.expect("late");
    assert_eq!(late.iter().map(|m| m.seq).collect::<Vec<_>>(), [3]);
    let before = s
        .messages_before(u[3], &conv, 10, 10)
        .await
        .expect("before");
    assert_eq!(before.iter().map(|m| m.seq).collect::<Vec<_>>(), [3]);
    let h = s.create_group("h", u[0], &[], 1).await.expect("create h");
    post(&s, h.id, u[0], "h1").await;
    post(&s, h.id, u[0], "h2").await;
    s.add_members(h.id, &[u[4]]).await.expect("add");
    let hist = s
        .messages_after(u[4], &ConvId::group(h.id), 0, 10)
        .await
        .expect("hist");
    assert_eq!(
        hist.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
        ["h2"]
    );
    // Muted members and dissolved groups refuse sends; a retry of an
    // accepted send is still its duplicate.
    let first = group_msg(g.id, u[1], "dup");
    accepted(&s, vec![first.clone()]).await;
    s.set_member(g.id, u[1], None, Some(true))
        .await
        .expect("mute");
    let muted = s
        .accept(vec![group_msg(g.id, u[1], "muted")])
        .await
        .expect("tx")
        .remove(0);
    assert!(matches!(muted, Err(StoreError::Forbidden(_))), "{muted:?}");
    let again = accepted(&s, vec![first]).await.remove(0);
    assert!(again.duplicate);
    s.dissolve_group(g.id).await.expect("dissolve");
    let gone = s
        .accept(vec![group_msg(g.id, u[0], "late")])
        .await
        .expect("tx")
        .remove(0);
    assert!(matches!(gone, Err(StoreError::Forbidden(_))), "{gone:?}");
    // Leaving stops reading at once.
    s.remove_member(g.id, u[3]).await.expect("leave");
    assert!(
        s.messages_after(u[3], &conv, 0, 10)
            .await
            .expect("left")
            .is_empty()
    );
    assert_eq!(s.conversation(u[3], &conv).await.expect("summary"), None);
}

/// Unread is last_seq minus the read position (own messages move it), and
/// read-by lists and counts follow the positions exactly.
pub async fn group_unread_and_read_by_follow_positions(s: Store) {
    let u = users(&s, &["o", "a", "b", "c"]).await;
    let g = s
        .create_group("g", u[0], &[u[1], u[2]], 0)
        .await
        .expect("create");
    for i in 0..5 {
        post(&s, g.id, u[0], &format!("m{i}")).await;
    }
    assert_eq!(unread(&s, u[0], g.id).await, 0, "own messages are read");
    assert_eq!(unread(&s, u[1], g.id).await, 5);
    assert_eq!(
        s.set_read(u[1], &ConvId::group(g.id), 3)
            .await
            .expect("read"),
        3
    );
    assert_eq!(
        s.set_read(u[1], &ConvId::group(g.id), 2)
            .await
            .expect("back"),
        3
    );
    assert_eq!(
        s.set_read(u[2], &ConvId::group(g.id), 99)
            .await
            .expect("cap"),
        5
    );
    assert_eq!(unread(&s, u[1], g.id).await, 2);
    assert_eq!(unread(&s, u[2], g.id).await, 0);
    // Seq 4: owner (sender) and b have read it, a has not.
    let rb = s
        .read_by(g.id, 4, true, UserId(0), 10)
        .await
        .expect("read_by");
    assert_eq!((rb.users, rb.read, rb.unread), (vec![u[0], u[2]], 2, 1));
    let not = s
        .read_by(g.id, 4, false, UserId(0), 10)
        .await
        .expect("unread_by");
    assert_eq!(not.users, vec![u[1]]);
    let paged = s.read_by(g.id, 4, true, u[0], 1).await.expect("page");
    assert_eq!(paged.users, vec![u[2]]);
    // A member who joined after seq 4 is in neither list.
    s.add_members(g.id, &[u[3]]).await.expect("add");
    let rb = s
        .read_by(g.id, 4, false, UserId(0), 10)
        .await
        .expect("read_by");
    assert_eq!((rb.read, rb.unread), (2, 1));
    assert_eq!(unread(&s, u[3], g.id).await, 0);
    post(&s, g.id, u[1], "from a").await;
    assert_eq!(unread(&s, u[1], g.id).await, 0, "sending reads up to it");
    assert_eq!(unread(&s, u[3], g.id).await, 1);
    let convs = s.conversations(u[3]).await.expect("convs");
    let c = convs
        .iter()
        .find(|c| c.conv == ConvId::group(g.id))
        .expect("listed");
    let groups_only = s.group_conversations(u[3]).await.expect("groups");
    let in_all: Vec<_> = convs
        .iter()
        .filter(|c| c.conv.group_id().is_some())
        .cloned()
        .collect();
    assert_eq!(
        groups_only, in_all,
        "group_conversations is the groups of conversations"
    );
    assert_eq!(
        (c.last_seq, c.read_seq, c.unread, c.peer),
        (6, 5, 1, UserId(0))
    );
}

/// A refused group send in a batch writes nothing and does not stop the
/// other messages: one outcome each, and no sequence is skipped.
pub async fn refused_send_does_not_stop_the_batch(s: Store) {
    let u = users(&s, &["o", "m", "out"]).await;
    let g = s.create_group("g", u[0], &[u[1]], 0).await.expect("create");
    let batch = vec![
        group_msg(g.id, u[0], "1"),
        group_msg(g.id, u[2], "refused"),
        new_msg(u[1], u[2], "direct"),
        group_msg(g.id, u[1], "2"),
    ];
    let out = s.accept(batch).await.expect("the transaction commits");
    assert!(
        matches!(out[1], Err(StoreError::Forbidden(_))),
        "{:?}",
        out[1]
    );
    let seqs: Vec<_> = out
        .iter()
        .filter_map(|o| o.as_ref().ok().map(|a| (a.conv.clone(), a.seq)))
        .collect();
    let gc = ConvId::group(g.id);
    assert_eq!(
        seqs,
        vec![
            (gc.clone(), 1),
            (ConvId::direct(u[1], u[2]), 1),
            (gc.clone(), 2)
        ]
    );
    let bodies: Vec<_> = s
        .messages_after(u[0], &gc, 0, 10)
        .await
        .expect("read")
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(bodies, ["1", "2"]);
    assert_eq!(
        accepted(&s, vec![group_msg(g.id, u[0], "3")]).await[0].seq,
        3
    );
}
