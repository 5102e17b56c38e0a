//! The accept plan on its own: no store, only batches and what was "found".

use super::*;
use crate::testsuite::{group_msg, new_msg};
use magpie_core::ServerMsgId;

fn seqs(p: &Plan<'_>) -> Vec<Seq> {
    p.outcomes
        .iter()
        .map(|o| o.as_ref().map_or(-1, |a| a.seq))
        .collect()
}

/// Sequences continue each conversation's stored one, in batch order.
#[test]
fn sequences_continue_per_conversation() {
    let (a, b, c) = (UserId(1), UserId(2), UserId(3));
    let batch = vec![new_msg(a, b, "1"), new_msg(a, c, "2"), new_msg(b, a, "3")];
    let mut found = Found::default();
    found.last_seq.insert(ConvId::direct(a, b), 41);
    let p = plan(&batch, &found, 1000);
    assert_eq!(seqs(&p), vec![42, 1, 43]);
    let ab = ConvId::direct(a, b);
    let ac = ConvId::direct(a, c);
    assert_eq!(p.last_seqs, vec![(&ab, 43), (&ac, 1)]);
    assert!(
        p.outcomes
            .iter()
            .all(|o| !o.as_ref().expect("ok").duplicate)
    );
}

/// Stored pairs and repeats inside the batch write nothing and answer the original.
#[test]
fn duplicates_write_nothing() {
    let (a, b) = (UserId(1), UserId(2));
    let old = new_msg(a, b, "old");
    let fresh = new_msg(a, b, "fresh");
    let mut found = Found::default();
    let original = Accepted {
        server_id: ServerMsgId(9),
        conv: old.conv.clone(),
        seq: 7,
        sent_at: 5,
        duplicate: true,
        group: None,
    };
    found.stored.insert((a, old.cmid), original.clone());
    found.last_seq.insert(old.conv.clone(), 7);
    let batch = vec![old, fresh.clone(), fresh];
    let p = plan(&batch, &found, 1000);
    assert_eq!(p.outcomes[0].as_ref().expect("dup"), &original);
    let (first, repeat) = (
        p.outcomes[1].as_ref().expect("new"),
        p.outcomes[2].as_ref().expect("repeat"),
    );
    assert_eq!((first.seq, first.duplicate), (8, false));
    assert_eq!((repeat.seq, repeat.duplicate), (8, true));
    assert_eq!(p.rows.len(), 1);
    assert_eq!(p.rows[0].msg.body, "fresh");
}

/// A refused group sender gets `Forbidden` (its repeat too) and takes no
/// sequence; a member's message in the same batch goes on.
#[test]
fn refused_group_send_takes_no_sequence() {
    let g = GroupId(4);
    let (member, outsider) = (UserId(1), UserId(2));
    let no = group_msg(g, outsider, "no");
    let batch = vec![no.clone(), group_msg(g, member, "yes"), no];
    let mut found = Found::default();
    found.refused.insert((g, outsider), "not a member".into());
    let p = plan(&batch, &found, 1000);
    assert!(matches!(p.outcomes[0], Err(StoreError::Forbidden(_))));
    assert!(matches!(p.outcomes[2], Err(StoreError::Forbidden(_))));
    assert_eq!(p.outcomes[1].as_ref().expect("member").seq, 1);
    assert_eq!(p.group_reads, vec![(g, member, 1)]);
    assert!(p.summaries.is_empty() && p.boxes().is_empty());
}

/// Both parties' summaries carry the newest sequence; a note to self has one
/// owner, one summary and one index row.
#[test]
fn summaries_and_boxes() {
    let (a, b) = (UserId(1), UserId(2));
    let batch = vec![new_msg(a, b, "1"), new_msg(b, a, "2"), new_msg(a, a, "me")];
    let p = plan(&batch, &Found::default(), 1000);
    let ab = ConvId::direct(a, b);
    let aa = ConvId::direct(a, a);
    let got: Vec<_> = p
        .summaries
        .iter()
        .map(|s| (s.owner, s.conv, s.peer, s.last_seq))
        .collect();
    assert_eq!(got, vec![(a, &aa, a, 1), (a, &ab, b, 2), (b, &ab, a, 2)]);
    let boxes: Vec<_> = p
        .boxes()
        .iter()
        .map(|r| (r.owner, r.other, r.seq, r.box_type))
        .collect();
    assert_eq!(
        boxes,
        vec![
            (a, b, 1, BOX_SENT),
            (b, a, 1, BOX_RECEIVED),
            (b, a, 2, BOX_SENT),
            (a, b, 2, BOX_RECEIVED),
            (a, a, 1, BOX_SENT),
        ]
    );
}

/// Expiry: days from sending, the offline TTL for `none`/`offline`, never for `forever`.
#[test]
fn expiry_follows_persistence() {
    assert_eq!(
        expire_at(Persistence::Days(2), 10, 5),
        Some(10 + 2 * DAY_MS)
    );
    assert_eq!(expire_at(Persistence::Offline, 10, 5), Some(15));
    assert_eq!(expire_at(Persistence::None, 10, 5), Some(15));
    assert_eq!(expire_at(Persistence::Forever, 10, 5), None);
    assert_eq!(expire_at(Persistence::Offline, i64::MAX, 5), Some(i64::MAX));
}

/// Locking order: conversations sorted once each; group senders likewise.
#[test]
fn lock_order_is_sorted_and_unique() {
    let (a, b, c) = (UserId(1), UserId(2), UserId(3));
    let g = GroupId(9);
    let batch = vec![
        new_msg(a, c, "x"),
        new_msg(a, b, "y"),
        new_msg(a, c, "z"),
        group_msg(g, b, "g1"),
        group_msg(g, b, "g2"),
    ];
    let convs = conversations(&batch);
    let mut want = [ConvId::direct(a, b), ConvId::direct(a, c), ConvId::group(g)];
    want.sort();
    assert_eq!(convs, want.iter().collect::<Vec<_>>());
    assert_eq!(group_senders(&batch), vec![(g, b)]);
}
