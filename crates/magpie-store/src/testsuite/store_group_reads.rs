//! Group store cases for read diffusion: one stored copy seen through each
//! member's positions, unread counts and read-by lists.

use super::{accepted, group_msg, group_unread as unread, post, summary_of, users};
use crate::{Store, StoreError};
use magpie_core::{ConvId, UserId};

/// One stored copy per message, one sequence per group; only members send,
/// and only members read, from their join on (or `history` before it).
pub async fn group_messages_are_stored_once_and_seen_by_members(s: Store) {
    let messages = s.messages();
    let groups = s.groups();
    let u = users(&s, &["o", "a", "x", "late", "hist"]).await;
    let g = groups
        .create_group("g", u[0], &[u[1]], 0)
        .await
        .expect("create");
    assert_eq!(post(&s, g.id, u[0], "1").await, 1);
    assert_eq!(post(&s, g.id, u[1], "2").await, 2);
    let err = messages
        .accept(vec![group_msg(g.id, u[2], "no")])
        .await
        .expect("tx")
        .remove(0);
    assert!(matches!(err, Err(StoreError::Forbidden(_))), "{err:?}");
    let conv = ConvId::group(g.id);
    let seen = messages
        .messages_after(u[1], &conv, 0, 10)
        .await
        .expect("read");
    assert_eq!(
        seen.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
        ["1", "2"]
    );
    assert!(
        messages
            .messages_after(u[2], &conv, 0, 10)
            .await
            .expect("x")
            .is_empty()
    );
    // A late joiner sees from the join on; with history 1 the last one before.
    groups.add_members(g.id, &[u[3]]).await.expect("add");
    assert_eq!(post(&s, g.id, u[0], "3").await, 3);
    let late = messages
        .messages_after(u[3], &conv, 0, 10)
        .await
        .expect("late");
    assert_eq!(late.iter().map(|m| m.seq).collect::<Vec<_>>(), [3]);
    let before = messages
        .messages_before(u[3], &conv, 10, 10)
        .await
        .expect("before");
    assert_eq!(before.iter().map(|m| m.seq).collect::<Vec<_>>(), [3]);
    let h = groups
        .create_group("h", u[0], &[], 1)
        .await
        .expect("create h");
    post(&s, h.id, u[0], "h1").await;
    post(&s, h.id, u[0], "h2").await;
    groups.add_members(h.id, &[u[4]]).await.expect("add");
    let hist = messages
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
    groups
        .set_member(g.id, u[1], None, Some(true))
        .await
        .expect("mute");
    let muted = messages
        .accept(vec![group_msg(g.id, u[1], "muted")])
        .await
        .expect("tx")
        .remove(0);
    assert!(matches!(muted, Err(StoreError::Forbidden(_))), "{muted:?}");
    let again = accepted(&s, vec![first]).await.remove(0);
    assert!(again.duplicate);
    groups.dissolve_group(g.id).await.expect("dissolve");
    let gone = messages
        .accept(vec![group_msg(g.id, u[0], "late")])
        .await
        .expect("tx")
        .remove(0);
    assert!(matches!(gone, Err(StoreError::Forbidden(_))), "{gone:?}");
    // Leaving stops reading at once.
    groups.remove_member(g.id, u[3]).await.expect("leave");
    assert!(
        messages
            .messages_after(u[3], &conv, 0, 10)
            .await
            .expect("left")
            .is_empty()
    );
    assert_eq!(summary_of(&s, u[3], &conv).await, None);
}

/// Unread is last_seq minus the read position (own messages move it), and
/// read-by lists and counts follow the positions exactly.
pub async fn group_unread_and_read_by_follow_positions(s: Store) {
    let messages = s.messages();
    let groups = s.groups();
    let u = users(&s, &["o", "a", "b", "c"]).await;
    let g = groups
        .create_group("g", u[0], &[u[1], u[2]], 0)
        .await
        .expect("create");
    for i in 0..5 {
        post(&s, g.id, u[0], &format!("m{i}")).await;
    }
    assert_eq!(unread(&s, u[0], g.id).await, 0, "own messages are read");
    assert_eq!(unread(&s, u[1], g.id).await, 5);
    assert_eq!(
        messages
            .set_read(u[1], &ConvId::group(g.id), 3)
            .await
            .expect("read"),
        3
    );
    assert_eq!(
        messages
            .set_read(u[1], &ConvId::group(g.id), 2)
            .await
            .expect("back"),
        3
    );
    assert_eq!(
        messages
            .set_read(u[2], &ConvId::group(g.id), 99)
            .await
            .expect("cap"),
        5
    );
    assert_eq!(unread(&s, u[1], g.id).await, 2);
    assert_eq!(unread(&s, u[2], g.id).await, 0);
    // Seq 4: owner (sender) and b have read it, a has not.
    let rb = groups
        .read_by(g.id, 4, true, UserId(0), 10)
        .await
        .expect("read_by");
    assert_eq!((rb.users, rb.read, rb.unread), (vec![u[0], u[2]], 2, 1));
    let not = groups
        .read_by(g.id, 4, false, UserId(0), 10)
        .await
        .expect("unread_by");
    assert_eq!(not.users, vec![u[1]]);
    let paged = groups.read_by(g.id, 4, true, u[0], 1).await.expect("page");
    assert_eq!(paged.users, vec![u[2]]);
    // A member who joined after seq 4 is in neither list.
    groups.add_members(g.id, &[u[3]]).await.expect("add");
    let rb = groups
        .read_by(g.id, 4, false, UserId(0), 10)
        .await
        .expect("read_by");
    assert_eq!((rb.read, rb.unread), (2, 1));
    assert_eq!(unread(&s, u[3], g.id).await, 0);
    post(&s, g.id, u[1], "from a").await;
    assert_eq!(unread(&s, u[1], g.id).await, 0, "sending reads up to it");
    assert_eq!(unread(&s, u[3], g.id).await, 1);
    let convs = messages.conversations(u[3]).await.expect("convs");
    let c = convs
        .iter()
        .find(|c| c.conv == ConvId::group(g.id))
        .expect("listed");
    let groups_only = messages.group_conversations(u[3]).await.expect("groups");
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

/// `read_counts` for many messages at once agrees with `read_by` for each,
/// with members who joined late (with and without history), read to
/// different positions, one removed; an unknown group counts nothing.
pub async fn read_counts_agree_with_read_by(s: Store) {
    let groups = s.groups();
    let u = users(&s, &["c0", "c1", "c2", "c3", "c4", "c5"]).await;
    let g = groups
        .create_group("counts", u[0], &[u[1], u[2]], 2)
        .await
        .expect("create");
    for i in 1..=4 {
        post(&s, g.id, u[i % 3], &format!("m{i}")).await;
    }
    groups.add_members(g.id, &[u[3]]).await.expect("add"); // joined at 2 (history 2)
    post(&s, g.id, u[0], "m5").await;
    groups.add_members(g.id, &[u[4], u[5]]).await.expect("add"); // joined at 3
    post(&s, g.id, u[1], "m6").await;
    post(&s, g.id, u[2], "m7").await;
    let conv = ConvId::group(g.id);
    for (who, upto) in [(u[3], 6), (u[4], 4), (u[1], 7)] {
        s.messages().set_read(who, &conv, upto).await.expect("read");
    }
    assert!(groups.remove_member(g.id, u[5]).await.expect("remove"));
    let seqs: Vec<i64> = (1..=7).rev().collect();
    let got = groups.read_counts(g.id, &seqs).await.expect("counts");
    for (s_i, (read, unread)) in seqs.iter().zip(&got) {
        let by = groups
            .read_by(g.id, *s_i, true, UserId(0), 0)
            .await
            .expect("read_by");
        assert_eq!((*read, *unread), (by.read, by.unread), "message {s_i}");
    }
    let late = groups.read_counts(g.id, &[6]).await.expect("one");
    assert_eq!(late, vec![(got[1].0, got[1].1)]);
    let none = groups.read_counts(magpie_core::GroupId(999_999), &[1, 2]);
    assert_eq!(none.await.expect("unknown"), vec![(0, 0), (0, 0)]);
    assert!(
        groups
            .read_counts(g.id, &[])
            .await
            .expect("none")
            .is_empty()
    );
}
