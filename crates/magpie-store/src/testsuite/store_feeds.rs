//! Feed cases (`FeedStore`, docs/feeds.md): follow half-edges and their
//! counts, blocks, the outbox with idempotent and deletable posts, merged
//! outbox pages and inbox keys resolved against the outboxes.

use super::{next_server_id, users};
use crate::{FollowCounts, Store, StoreError};
use magpie_core::{ClientMsgId, NewPost, Post, PostId, UserId, now_ms};

fn new_post(author: UserId, body: &str) -> NewPost {
    NewPost {
        id: PostId::from(next_server_id()),
        author,
        cmid: ClientMsgId::new_v7(),
        body: body.to_string(),
        created_at: now_ms(),
    }
}

/// Both half-edges of `a` following `b`.
async fn follow(s: &Store, a: UserId, b: UserId) -> (bool, bool) {
    let f = s.feeds();
    let out = f.add_following(a, b, now_ms()).await.expect("following");
    let into = f.add_follower(b, a, now_ms()).await.expect("follower");
    (out, into)
}

async fn counts(s: &Store, u: UserId) -> (i64, i64) {
    let FollowCounts {
        followers,
        following,
    } = s.feeds().follow_counts(u).await.expect("counts");
    (followers, following)
}

fn ids(posts: &[Post]) -> Vec<PostId> {
    posts.iter().map(|p| p.id).collect()
}

/// Follows are idempotent per half-edge, listed by id with a cursor, and
/// counted exactly; unfollowing takes both back.
pub async fn follow_edges_lists_and_counts(s: Store) {
    let u = users(&s, &["star", "f1", "f2", "f3", "f4"]).await;
    // By id: a sharded store does not hand out ids in creation order.
    let (star, mut fans) = (u[0], u[1..].to_vec());
    fans.sort();
    assert_eq!(counts(&s, star).await, (0, 0), "no row: zeros");
    for &f in &fans {
        assert_eq!(follow(&s, f, star).await, (true, true));
    }
    assert_eq!(
        follow(&s, fans[0], star).await,
        (false, false),
        "again: nothing new"
    );
    assert_eq!(counts(&s, star).await, (4, 0));
    assert_eq!(counts(&s, fans[0]).await, (0, 1));

    let feeds = s.feeds();
    let first = feeds.followers(star, UserId(0), 3).await.expect("page");
    assert_eq!(first, fans[..3].to_vec(), "by id, limited");
    let rest = feeds.followers(star, first[2], 3).await.expect("page");
    assert_eq!(rest, fans[3..].to_vec(), "after the cursor");
    assert_eq!(
        feeds.following(fans[1], UserId(0), 10).await.unwrap(),
        [star]
    );
    assert!(
        feeds
            .following(star, UserId(0), 10)
            .await
            .unwrap()
            .is_empty()
    );

    assert!(
        feeds
            .remove_following(fans[1], star)
            .await
            .expect("unfollow")
    );
    assert!(
        feeds
            .remove_follower(star, fans[1])
            .await
            .expect("unfollow")
    );
    assert!(!feeds.remove_follower(star, fans[1]).await.expect("again"));
    assert_eq!(counts(&s, star).await, (3, 0));
    assert_eq!(counts(&s, fans[1]).await, (0, 0));
    let left = feeds.followers(star, UserId(0), 10).await.expect("list");
    assert!(!left.contains(&fans[1]));
}

/// Of many concurrent inserts of one half-edge, exactly one is new and the
/// count moves once.
pub async fn concurrent_follows_count_once(s: Store) {
    let u = users(&s, &["star", "fan"]).await;
    let (star, fan) = (u[0], u[1]);
    let adds = (0..8).map(|_| {
        let s = s.clone();
        async move { s.feeds().add_follower(star, fan, now_ms()).await }
    });
    let got = futures_util::future::join_all(adds).await;
    let new = got.iter().filter(|r| matches!(r, Ok(true))).count();
    assert_eq!(new, 1, "{got:?}");
    assert!(got.iter().all(Result::is_ok), "{got:?}");
    assert_eq!(counts(&s, star).await, (1, 0));
}

/// A block refuses both half-edges between the pair on the blocker's
/// side, is listed, and lifts with an unblock.
pub async fn blocks_refuse_follows(s: Store) {
    let u = users(&s, &["alice", "troll", "friend"]).await;
    let (alice, troll) = (u[0], u[1]);
    let feeds = s.feeds();
    assert!(
        feeds
            .set_block(alice, troll, true, now_ms())
            .await
            .expect("block")
    );
    assert!(
        !feeds
            .set_block(alice, troll, true, now_ms())
            .await
            .expect("again")
    );
    let refused = feeds.add_follower(alice, troll, now_ms()).await;
    assert!(
        matches!(refused, Err(StoreError::Forbidden(_))),
        "{refused:?}"
    );
    let refused = feeds.add_following(alice, troll, now_ms()).await;
    assert!(
        matches!(refused, Err(StoreError::Forbidden(_))),
        "{refused:?}"
    );
    assert_eq!(counts(&s, alice).await, (0, 0), "nothing counted");
    // The troll's own side is the troll's to write; the feed read drops it.
    assert!(
        feeds
            .add_following(troll, alice, now_ms())
            .await
            .expect("own side")
    );
    assert_eq!(feeds.blocked(alice, UserId(0), 10).await.unwrap(), [troll]);
    assert!(
        feeds
            .set_block(alice, troll, false, now_ms())
            .await
            .expect("unblock")
    );
    assert!(
        feeds
            .blocked(alice, UserId(0), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        feeds
            .add_follower(alice, troll, now_ms())
            .await
            .expect("now allowed")
    );
}

/// A post is stored once per (author, cmid): a retry answers with the
/// original, whatever it carries; a deleted post leaves every read but
/// still answers a retry, marked deleted and without its body.
pub async fn posts_are_idempotent_and_deletable(s: Store) {
    let u = users(&s, &["author", "other"]).await;
    let feeds = s.feeds();
    let p = new_post(u[0], "first words");
    let made = feeds.create_post(p.clone()).await.expect("post");
    assert!(!made.duplicate);
    assert_eq!(
        (made.post.id, made.post.body.as_str()),
        (p.id, "first words")
    );
    let retry = NewPost {
        id: PostId::from(next_server_id()),
        body: "changed".into(),
        ..p.clone()
    };
    let again = feeds.create_post(retry).await.expect("retry");
    assert!(again.duplicate);
    assert_eq!(again.post, made.post, "the original");
    // The same cmid from another author is another post.
    let theirs = feeds.create_post(NewPost {
        author: u[1],
        id: PostId::from(next_server_id()),
        ..p.clone()
    });
    assert!(!theirs.await.expect("other author").duplicate);

    assert_eq!(
        feeds.posts(&[made.post.key()]).await.unwrap(),
        std::slice::from_ref(&made.post)
    );
    assert!(
        feeds.delete_post(u[1], p.id).await.is_ok_and(|d| !d),
        "not theirs"
    );
    assert!(feeds.delete_post(u[0], p.id).await.expect("delete"));
    assert!(!feeds.delete_post(u[0], p.id).await.expect("again"));
    assert!(feeds.posts(&[made.post.key()]).await.unwrap().is_empty());
    assert!(feeds.outboxes(&[u[0]], None, 10).await.unwrap().is_empty());
    let after = feeds
        .create_post(p.clone())
        .await
        .expect("retry after delete");
    assert!(after.duplicate && after.post.deleted && after.post.body.is_empty());
}

/// Outboxes of several authors merge newest first, page below a cursor,
/// and inbox keys resolve only to existing posts of the named author.
pub async fn outboxes_merge_and_keys_resolve(s: Store) {
    let u = users(&s, &["a", "b", "c", "d", "e"]).await;
    let feeds = s.feeds();
    let mut made = Vec::new();
    for round in 0..4 {
        for a in &u[..3] {
            let p = feeds.create_post(new_post(*a, &format!("{a} {round}")));
            made.push(p.await.expect("post").post);
        }
    }
    let newest: Vec<PostId> = made.iter().rev().map(|p| p.id).collect();
    let page = feeds.outboxes(&u[..3], None, 5).await.expect("page");
    assert_eq!(ids(&page), newest[..5]);
    let next = feeds
        .outboxes(&u[..3], Some(page[4].id), 100)
        .await
        .unwrap();
    assert_eq!(ids(&next), newest[5..], "below the cursor");
    let two = feeds.outboxes(&[u[1], u[4]], None, 100).await.unwrap();
    assert!(two.iter().all(|p| p.author == u[1]) && two.len() == 4);

    let mut keys: Vec<(UserId, PostId)> = made.iter().map(Post::key).collect();
    keys.push((u[3], made[0].id)); // the wrong author: not that post
    keys.push((u[0], PostId(1))); // no such post
    keys.push(made[0].key()); // twice
    let got = feeds.posts(&keys).await.expect("resolve");
    assert_eq!(ids(&got), newest, "each once, newest first");
}
