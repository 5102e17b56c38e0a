//! This node's index from group to the users connected here who are its
//! members: how a super-group broadcast finds its local receivers without a
//! route lookup per member (ARCHITECTURE.md, "super groups").
//!
//! A user is indexed while they have at least one connection on this node
//! (counted here, so two devices coming and going at once cannot drop
//! them): their groups are read from the store when the first connection
//! opens, and `GroupMember` events keep the index current while they stay,
//! including events that arrive while that read is in flight.

use magpie_core::{GroupId, UserId};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};

#[derive(Default)]
pub struct GroupIndex {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    by_group: HashMap<GroupId, HashSet<UserId>>,
    by_user: HashMap<UserId, HashSet<GroupId>>,
    conns: HashMap<UserId, usize>,
    /// Users whose groups are being read, with the groups they left meanwhile
    /// (the read may predate the leave: those must not come back).
    loading: HashMap<UserId, HashSet<GroupId>>,
}

impl GroupIndex {
    /// Whether `user` is indexed (has a connection here).
    pub fn has_user(&self, user: UserId) -> bool {
        self.inner.lock().by_user.contains_key(&user)
    }

    /// A connection of `user` opened; true for the first one here, whose
    /// caller then reads the user's groups and calls `add_groups`.
    pub fn open(&self, user: UserId) -> bool {
        let mut i = self.inner.lock();
        i.by_user.entry(user).or_default();
        let n = i.conns.entry(user).or_default();
        *n += 1;
        let first = *n == 1;
        if first {
            i.loading.insert(user, HashSet::new());
        }
        first
    }

    /// Adds groups of an indexed user (ignored once they have left the node).
    /// Returns the groups that had no member here before.
    pub fn add_groups(&self, user: UserId, groups: Vec<GroupId>) -> Vec<GroupId> {
        let mut i = self.inner.lock();
        let left = i.loading.remove(&user).unwrap_or_default();
        if !i.by_user.contains_key(&user) {
            return Vec::new();
        }
        let groups: Vec<GroupId> = groups.into_iter().filter(|g| !left.contains(g)).collect();
        let mut gained = Vec::new();
        for g in &groups {
            let users = i.by_group.entry(*g).or_default();
            if users.is_empty() {
                gained.push(*g);
            }
            users.insert(user);
        }
        i.by_user.entry(user).or_default().extend(groups);
        gained
    }

    /// Whether any member of `g` is connected here.
    pub fn has_group(&self, g: GroupId) -> bool {
        self.inner.lock().by_group.contains_key(&g)
    }

    /// A connection of `user` closed; the last one unindexes them. Returns
    /// the groups left with no member here.
    pub fn close(&self, user: UserId) -> Vec<GroupId> {
        let last = {
            let mut i = self.inner.lock();
            let n = i.conns.entry(user).or_default();
            *n = n.saturating_sub(1);
            let last = *n == 0;
            if last {
                i.conns.remove(&user);
                i.loading.remove(&user);
            }
            last
        };
        if last {
            self.drop_user(user)
        } else {
            Vec::new()
        }
    }

    /// Forgets `user`; returns the groups left with no member here.
    fn drop_user(&self, user: UserId) -> Vec<GroupId> {
        let mut i = self.inner.lock();
        let mut emptied = Vec::new();
        for g in i.by_user.remove(&user).unwrap_or_default() {
            if let Some(users) = i.by_group.get_mut(&g) {
                users.remove(&user);
                if users.is_empty() {
                    i.by_group.remove(&g);
                    emptied.push(g);
                }
            }
        }
        emptied
    }

    /// A membership change; ignored for users not connected here. Returns
    /// whether `g` gained its first or lost its last member here.
    pub fn set_member(&self, g: GroupId, user: UserId, joined: bool) -> bool {
        let mut i = self.inner.lock();
        if let Some(left) = i.loading.get_mut(&user) {
            if joined {
                left.remove(&g);
            } else {
                left.insert(g);
            }
        }
        let Some(groups) = i.by_user.get_mut(&user) else {
            return false;
        };
        if joined {
            groups.insert(g);
            let users = i.by_group.entry(g).or_default();
            users.insert(user) && users.len() == 1
        } else {
            groups.remove(&g);
            let Some(users) = i.by_group.get_mut(&g) else {
                return false;
            };
            if users.remove(&user) && users.is_empty() {
                i.by_group.remove(&g);
                return true;
            }
            false
        }
    }

    /// The members of `g` connected here.
    pub fn users(&self, g: GroupId) -> Vec<UserId> {
        self.inner
            .lock()
            .by_group
            .get(&g)
            .map(|u| u.iter().copied().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_and_leaves_only_touch_connected_users() {
        let ix = GroupIndex::default();
        let (g, h) = (GroupId(1), GroupId(2));
        assert!(ix.open(UserId(7)));
        // A join arriving while the store read is in flight is kept.
        ix.set_member(h, UserId(7), true);
        ix.add_groups(UserId(7), vec![g]);
        ix.set_member(h, UserId(8), true); // not connected here
        assert_eq!(ix.users(h), vec![UserId(7)]);
        ix.set_member(g, UserId(7), false);
        assert!(ix.users(g).is_empty());
        // A leave arriving while the read is in flight wins over the read.
        assert!(ix.open(UserId(9)));
        ix.set_member(g, UserId(9), false);
        ix.add_groups(UserId(9), vec![g, h]);
        assert_eq!(ix.users(g), Vec::<UserId>::new());
        assert!(ix.users(h).contains(&UserId(9)));
        ix.close(UserId(9));
        // A second device: closing one keeps the user indexed.
        assert!(!ix.open(UserId(7)));
        ix.close(UserId(7));
        assert_eq!(ix.users(h), vec![UserId(7)]);
        ix.close(UserId(7));
        assert!(ix.users(h).is_empty() && !ix.has_user(UserId(7)));
    }
}
