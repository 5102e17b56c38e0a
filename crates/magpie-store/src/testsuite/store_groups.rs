//! Group store cases: membership and roles, refused sends.

use super::{accepted, group_msg, new_msg, users};
use crate::{Store, StoreError};
use magpie_core::{ConvId, GroupId, GroupRole, UserId};

/// Create, add (only new users count), roles, mute, remove, list and page.
pub async fn groups_membership_and_roles(s: Store) {
    let groups = s.groups();
    let u = users(&s, &["o", "a", "b", "c", "d"]).await;
    let g = groups
        .create_group("team", u[0], &[u[1], u[2], u[1], u[0]], 0)
        .await
        .expect("create");
    assert_eq!(
        (g.name.as_str(), g.owner, g.members, g.last_seq),
        ("team", u[0], 3, 0)
    );
    assert!(!g.dissolved);
    let owner = groups
        .member(g.id, u[0])
        .await
        .expect("member")
        .expect("owner");
    assert_eq!(owner.role, GroupRole::Owner);
    assert_eq!(
        groups.member(g.id, u[1]).await.expect("m").map(|m| m.role),
        Some(GroupRole::Member)
    );
    assert_eq!(groups.member(g.id, u[3]).await.expect("m"), None);
    let added = groups
        .add_members(g.id, &[u[2], u[3], u[4], u[3]])
        .await
        .expect("add");
    assert_eq!(
        added,
        vec![u[3], u[4]],
        "only users not yet members are added"
    );
    assert!(
        groups
            .set_member(g.id, u[1], Some(GroupRole::Admin), Some(true))
            .await
            .expect("set")
    );
    let a = groups.member(g.id, u[1]).await.expect("m").expect("a");
    assert_eq!((a.role, a.muted), (GroupRole::Admin, true));
    assert!(
        !groups
            .set_member(g.id, UserId(9999), None, Some(true))
            .await
            .expect("set")
    );
    assert!(groups.remove_member(g.id, u[2]).await.expect("remove"));
    assert!(!groups.remove_member(g.id, u[2]).await.expect("again"));
    let info = groups.group(g.id).await.expect("group").expect("exists");
    assert_eq!(info.members, 4);
    let page1 = groups.members(g.id, UserId(0), 2).await.expect("page");
    let page2 = groups.members(g.id, page1[1].user, 2).await.expect("page");
    let all: Vec<UserId> = page1.iter().chain(&page2).map(|m| m.user).collect();
    // By user id: creation order on one database, not across shards.
    let mut expected = vec![u[0], u[1], u[3], u[4]];
    expected.sort();
    assert_eq!(all, expected);
    assert_eq!(groups.user_groups(u[3]).await.expect("groups"), vec![g.id]);
    assert!(groups.user_groups(u[2]).await.expect("groups").is_empty());
    groups.rename_group(g.id, "renamed").await.expect("rename");
    groups.dissolve_group(g.id).await.expect("dissolve");
    let info = groups.group(g.id).await.expect("group").expect("exists");
    assert_eq!((info.name.as_str(), info.dissolved), ("renamed", true));
    assert_eq!(groups.group(GroupId(987_654)).await.expect("none"), None);
}

/// A refused group send in a batch writes nothing and does not stop the
/// other messages: one outcome each, and no sequence is skipped.
pub async fn refused_send_does_not_stop_the_batch(s: Store) {
    let messages = s.messages();
    let groups = s.groups();
    let u = users(&s, &["o", "m", "out"]).await;
    let g = groups
        .create_group("g", u[0], &[u[1]], 0)
        .await
        .expect("create");
    let batch = vec![
        group_msg(g.id, u[0], "1"),
        group_msg(g.id, u[2], "refused"),
        new_msg(u[1], u[2], "direct"),
        group_msg(g.id, u[1], "2"),
    ];
    let out = messages
        .accept(batch)
        .await
        .expect("the transaction commits");
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
    let bodies: Vec<_> = messages
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

/// Every join and leave, and only those, moves the membership version, and
/// `accept` returns the membership its transaction saw with each new group
/// message (none with a duplicate or a direct message): what a node's
/// cached member list is checked against (docs/protocol.md, groups).
pub async fn accept_returns_the_membership_it_saw(s: Store) {
    let groups = s.groups();
    let u = users(&s, &["o", "a", "b"]).await;
    let g = groups
        .create_group("g", u[0], &[u[1]], 0)
        .await
        .expect("create");
    let version = || async { groups.group(g.id).await.expect("read").expect("group") };
    let v0 = version().await.member_version;
    assert_eq!(g.member_version, v0, "create answers the stored version");
    let first = group_msg(g.id, u[0], "1");
    let out = accepted(&s, vec![first.clone(), new_msg(u[0], u[1], "d")]).await;
    assert_eq!(
        out[0].group,
        Some(magpie_core::GroupStamp {
            version: v0,
            members: 2
        })
    );
    assert_eq!(out[1].group, None, "a direct message has no group stamp");
    groups.add_members(g.id, &[u[2]]).await.expect("add");
    let v1 = version().await.member_version;
    assert!(v1 > v0, "a join moves the version: {v0} → {v1}");
    groups
        .set_member(g.id, u[1], Some(GroupRole::Admin), Some(false))
        .await
        .expect("role");
    groups.rename_group(g.id, "renamed").await.expect("rename");
    assert_eq!(
        version().await.member_version,
        v1,
        "only joins and leaves count"
    );
    assert!(groups.remove_member(g.id, u[2]).await.expect("remove"));
    let v2 = version().await.member_version;
    assert!(v2 > v1, "a leave moves the version: {v1} → {v2}");
    let out = accepted(&s, vec![group_msg(g.id, u[1], "2"), first]).await;
    assert_eq!(
        out[0].group,
        Some(magpie_core::GroupStamp {
            version: v2,
            members: 2
        })
    );
    assert!(out[1].duplicate);
    assert_eq!(out[1].group, None, "a stored duplicate has no stamp");
}

/// Ownership moves to a member in one step (the old owner an admin);
/// refused, changing nothing, from a non-owner or to a non-member.
pub async fn ownership_transfers_to_a_member(s: Store) {
    let groups = s.groups();
    let u = users(&s, &["o", "m", "x"]).await;
    let g = groups
        .create_group("team", u[0], &[u[1]], 0)
        .await
        .expect("create")
        .id;
    let role = |who: UserId| {
        let groups = s.groups();
        async move { groups.member(g, who).await.unwrap().map(|m| m.role) }
    };
    for (from, to) in [(u[1], u[0]), (u[0], u[2]), (u[0], u[0])] {
        let refused = groups.transfer_owner(g, from, to).await;
        assert!(
            matches!(refused, Err(StoreError::Forbidden(_))),
            "{from}→{to}: {refused:?}"
        );
    }
    assert_eq!(role(u[0]).await, Some(GroupRole::Owner));
    groups
        .transfer_owner(g, u[0], u[1])
        .await
        .expect("transfer");
    assert_eq!(role(u[1]).await, Some(GroupRole::Owner));
    assert_eq!(role(u[0]).await, Some(GroupRole::Admin));
    assert_eq!(groups.group(g).await.unwrap().unwrap().owner, u[1]);
    let refused = groups.transfer_owner(g, u[0], u[1]).await;
    assert!(
        matches!(refused, Err(StoreError::Forbidden(_))),
        "no longer the owner"
    );
}
