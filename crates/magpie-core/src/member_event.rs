//! Membership changes as messages of the group's conversation
//! (docs/protocol.md §3.14, "Member events").
//!
//! Each change of a group's membership, roles, name or owner is followed by
//! one message from the system user (0) in the group's conversation, with
//! `meta.event` saying what happened. So it is sequenced, durable, pushed
//! and synced like any message: a device that was away learns of it by
//! sync, in order with the conversation. Only the server writes one: the
//! send path drops an `event` from anyone but the system user.

use crate::group::GroupRole;
use crate::ids::UserId;
use serde::{Deserialize, Serialize};

/// A join of many users names this many of them in its sentence.
pub const NAMED_AT_MOST: usize = 5;

/// What happened, and who did it (`by`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MemberEvent {
    /// `users` were added by `by`.
    Joined { users: Vec<UserId>, by: UserId },
    /// `user` left.
    Left { user: UserId },
    /// `user` was removed by `by`.
    Removed { user: UserId, by: UserId },
    /// `user`'s role is now `role`, set by `by` (the owner).
    Role {
        user: UserId,
        role: GroupRole,
        by: UserId,
    },
    /// The group is now called `name`, renamed by `by`.
    Renamed { name: String, by: UserId },
    /// `from` handed the group to `to` (and is an admin now).
    Owner { from: UserId, to: UserId },
}

impl MemberEvent {
    /// A plain sentence with user ids (`user 3`): see `describe`.
    pub fn text(&self) -> String {
        self.describe(|u| format!("user {u}"))
    }

    /// The users a sentence about this event names, the first
    /// `NAMED_AT_MOST` of a join only.
    pub fn named(&self) -> Vec<UserId> {
        match self {
            MemberEvent::Joined { users, by } => {
                let mut v = vec![*by];
                v.extend(users.iter().take(NAMED_AT_MOST));
                v
            }
            MemberEvent::Left { user } => vec![*user],
            MemberEvent::Removed { user, by } | MemberEvent::Role { user, by, .. } => {
                vec![*by, *user]
            }
            MemberEvent::Renamed { by, .. } => vec![*by],
            MemberEvent::Owner { from, to } => vec![*from, *to],
        }
    }

    /// The message's body: a plain sentence for a client that does not
    /// read `meta.event`, naming each user as `name` says.
    pub fn describe(&self, name: impl Fn(UserId) -> String) -> String {
        match self {
            MemberEvent::Joined { users, by } => {
                let mut list: Vec<String> =
                    users.iter().take(NAMED_AT_MOST).map(|u| name(*u)).collect();
                if users.len() > NAMED_AT_MOST {
                    list.push(format!("{} others", users.len() - NAMED_AT_MOST));
                }
                format!("{} added {}", name(*by), list.join(", "))
            }
            MemberEvent::Left { user } => format!("{} left", name(*user)),
            MemberEvent::Removed { user, by } => format!("{} removed {}", name(*by), name(*user)),
            MemberEvent::Role { user, role, by } => {
                format!("{} made {} {}", name(*by), name(*user), role.as_str())
            }
            MemberEvent::Renamed { name: n, by } => {
                format!("{} renamed the group {n:?}", name(*by))
            }
            MemberEvent::Owner { from, to } => {
                format!("{} handed the group to {}", name(*from), name(*to))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_tagged_objects() {
        let e = MemberEvent::Role {
            user: UserId(3),
            role: GroupRole::Admin,
            by: UserId(1),
        };
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(json, r#"{"kind":"role","user":3,"role":"admin","by":1}"#);
        assert_eq!(serde_json::from_str::<MemberEvent>(&json).unwrap(), e);
        assert_eq!(e.text(), "user 1 made user 3 admin");
        let many = MemberEvent::Joined {
            users: (2..=9).map(UserId).collect(),
            by: UserId(1),
        };
        assert_eq!(many.named().len(), 1 + NAMED_AT_MOST);
        let said = many.describe(|u| format!("u{u}"));
        assert_eq!(said, "u1 added u2, u3, u4, u5, u6, 3 others");
    }
}
