//! Message store cases for read positions and unread counts.

use super::{new_msg, send, summary_of, users};
use crate::{ConvSummary, Store};
use magpie_core::{ConvId, UserId};

/// `owner`'s unread count in `conv`, if it has the conversation.
async fn unread(s: &Store, owner: UserId, conv: &ConvId) -> Option<i64> {
    let summary = s.messages().conversation(owner, conv).await;
    summary.expect("one").map(|c| c.unread)
}

/// Unread counts only what a member received above its read position, per
/// conversation, through a scripted exchange.
pub async fn conversations_count_unread_exactly(s: Store) {
    let messages = s.messages();
    let u = users(&s, &["a", "b", "c"]).await;
    let (a, b, c) = (u[0], u[1], u[2]);
    let ab = ConvId::direct(a, b);
    let ac = ConvId::direct(a, c);
    for (from, to) in [(a, b), (a, b), (a, b), (b, a), (a, b)] {
        send(&s, new_msg(from, to, "hi")).await;
    }
    send(&s, new_msg(c, a, "hey")).await;
    send(&s, new_msg(c, a, "there")).await;

    let summary = |conv: &ConvId, peer, last_seq, read_seq, unread| ConvSummary {
        conv: conv.clone(),
        peer,
        last_seq,
        read_seq,
        unread,
        mentions: 0,
        muted: false,
    };
    let mut of_a = messages.conversations(a).await.expect("list a");
    of_a.sort_by(|x, y| x.conv.cmp(&y.conv));
    let mut want = vec![summary(&ab, b, 5, 0, 1), summary(&ac, c, 2, 0, 2)];
    want.sort_by(|x, y| x.conv.cmp(&y.conv));
    assert_eq!(of_a, want);
    assert_eq!(
        messages.conversations(b).await.expect("list b"),
        vec![summary(&ab, a, 5, 0, 4)]
    );
    assert_eq!(
        summary_of(&s, c, &ac).await,
        Some(summary(&ac, a, 2, 0, 0)),
        "own sends are not unread"
    );
    assert_eq!(summary_of(&s, c, &ab).await, None, "not a member");

    assert_eq!(messages.set_read(b, &ab, 2).await.expect("read"), 2);
    assert_eq!(summary_of(&s, b, &ab).await, Some(summary(&ab, a, 5, 2, 2)));
    // b's own message (seq 4) never counts; reading to 4 leaves seq 5.
    assert_eq!(messages.set_read(b, &ab, 4).await.expect("read"), 4);
    assert_eq!(unread(&s, b, &ab).await, Some(1));
    assert_eq!(messages.set_read(a, &ac, 2).await.expect("read"), 2);
    assert_eq!(unread(&s, a, &ac).await, Some(0));
    // a new message raises it again
    send(&s, new_msg(c, a, "more")).await;
    assert_eq!(summary_of(&s, a, &ac).await, Some(summary(&ac, c, 3, 2, 1)));
    assert!(
        messages
            .conversations(UserId(c.0 + 1000))
            .await
            .expect("stranger")
            .is_empty()
    );
}

/// The read position only moves forward and never past the last sequence;
/// a conversation the owner does not have yields 0 and creates nothing.
pub async fn set_read_caps_and_never_moves_back(s: Store) {
    let messages = s.messages();
    let u = users(&s, &["a", "b", "c"]).await;
    let ab = ConvId::direct(u[0], u[1]);
    for _ in 0..3 {
        send(&s, new_msg(u[0], u[1], "x")).await;
    }
    assert_eq!(
        messages.set_read(u[1], &ab, 100).await.expect("read"),
        3,
        "capped at last_seq"
    );
    assert_eq!(
        messages.set_read(u[1], &ab, 1).await.expect("read"),
        3,
        "never moves back"
    );
    assert_eq!(messages.set_read(u[1], &ab, -5).await.expect("read"), 3);
    assert_eq!(
        summary_of(&s, u[1], &ab)
            .await
            .map(|c| (c.read_seq, c.unread)),
        Some((3, 0))
    );
    send(&s, new_msg(u[0], u[1], "y")).await;
    assert_eq!(
        summary_of(&s, u[1], &ab)
            .await
            .map(|c| (c.read_seq, c.unread)),
        Some((3, 1))
    );
    assert_eq!(messages.set_read(u[1], &ab, 4).await.expect("read"), 4);

    assert_eq!(messages.set_read(u[2], &ab, 2).await.expect("stranger"), 0);
    assert_eq!(summary_of(&s, u[2], &ab).await, None);
    let nowhere = ConvId::direct(u[1], u[2]);
    assert_eq!(
        messages
            .set_read(u[1], &nowhere, 7)
            .await
            .expect("unknown conv"),
        0
    );
    assert!(messages.conversations(u[2]).await.expect("list").is_empty());
}
