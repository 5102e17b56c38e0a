//! Who a small group's message goes to: its member list, cached on each
//! node (`groups.member_cache` groups at most, `generations.rs`).
//!
//! Invariant: a message is never pushed from a list older than the
//! membership it was accepted under. The store bumps a group's
//! `member_version` with every join and leave, and `accept` returns the
//! version its transaction saw (`GroupStamp`, under the group row's lock).
//! A cached list is labelled with a version read *before* its pages, so the
//! label is never newer than the list; a list serves a message only if its
//! label is at least the message's stamp. A removed member thus gets no
//! push of a message accepted after the removal, on every node, without any
//! invalidation message between nodes (docs/protocol.md, groups).

use super::Delivery;
use crate::metrics::meters;
use crate::services::generations::Generations;
use magpie_core::{GroupId, GroupStamp, UserId};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

/// Members read per page when a small group's audience is listed.
const MEMBER_PAGE: usize = 1000;

/// Each group of a batch with the newest membership its messages were
/// accepted under.
pub type Stamps = HashMap<GroupId, GroupStamp>;

/// Records `stamp` for `g`, keeping the newest.
pub fn note_stamp(stamps: &mut Stamps, g: GroupId, stamp: GroupStamp) {
    let e = stamps.entry(g).or_insert(stamp);
    if stamp.version > e.version {
        *e = stamp;
    }
}

/// A member list and the version it is at least as new as.
type Labelled = (i64, Arc<[UserId]>);

pub(crate) struct MemberLists {
    lists: Mutex<Generations<GroupId, Labelled>>,
    /// 0 turns the cache off: every batch reads the list.
    bound: usize,
}

impl MemberLists {
    pub(crate) fn new(bound: usize) -> MemberLists {
        MemberLists {
            lists: Mutex::new(Generations::new(bound)),
            bound,
        }
    }

    /// The cached list of `g` if it is at least as new as `version`.
    fn at_least(&self, g: GroupId, version: i64) -> Option<Arc<[UserId]>> {
        let (label, list) = self.lists.lock().get(g)?;
        (label >= version).then_some(list)
    }

    /// Keeps `list` unless a newer one is cached.
    fn put(&self, g: GroupId, label: i64, list: Arc<[UserId]>) {
        if self.bound == 0 {
            return;
        }
        let mut lists = self.lists.lock();
        if lists.get(g).is_none_or(|(have, _)| have < label) {
            lists.insert(g, (label, list));
        }
    }
}

impl Delivery {
    /// The members of `g` at membership `version` or later: the cached list,
    /// or the store's (cached under `version`, which was read before it).
    /// Empty if the read fails: the members sync.
    pub(super) async fn members_at(&self, g: GroupId, version: i64) -> Arc<[UserId]> {
        if let Some(list) = self.member_lists.at_least(g, version) {
            meters().member_list_hits.increment(1);
            return list;
        }
        match self.read_members(g).await {
            Some(list) => {
                let list: Arc<[UserId]> = list.into();
                self.member_lists.put(g, version, Arc::clone(&list));
                list
            }
            None => Arc::from(Vec::new()),
        }
    }

    /// Every member of a group (paged reads, one for a group of fewer than
    /// `MEMBER_PAGE`); `None` if a read fails.
    async fn read_members(&self, g: GroupId) -> Option<Vec<UserId>> {
        let mut out = Vec::new();
        let mut after = UserId(0);
        loop {
            match self.store.groups().members(g, after, MEMBER_PAGE).await {
                Ok(page) if !page.is_empty() => {
                    let last_page = page.len() < MEMBER_PAGE;
                    after = page[page.len() - 1].user;
                    out.extend(page.into_iter().map(|m| m.user));
                    // A short page is the last: no read of an empty one.
                    if last_page {
                        return Some(out);
                    }
                }
                Ok(_) => return Some(out),
                Err(e) => {
                    tracing::warn!(error = %e, group = %g, "member list failed; members will sync");
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(ids: &[i64]) -> Arc<[UserId]> {
        ids.iter().map(|&i| UserId(i)).collect()
    }

    #[test]
    fn a_list_serves_only_messages_no_newer_than_its_label() {
        let m = MemberLists::new(100);
        let g = GroupId(7);
        m.put(g, 3, list(&[1, 2]));
        assert!(m.at_least(g, 3).is_some());
        assert!(m.at_least(g, 2).is_some());
        assert!(m.at_least(g, 4).is_none(), "a newer membership reads again");
        // An older list never replaces a newer one.
        m.put(g, 2, list(&[1]));
        assert_eq!(m.at_least(g, 3).unwrap().len(), 2);
        m.put(g, 5, list(&[1, 3]));
        assert_eq!(&*m.at_least(g, 5).unwrap(), &*list(&[1, 3]));
    }

    #[test]
    fn a_bound_of_zero_caches_nothing() {
        let m = MemberLists::new(0);
        m.put(GroupId(1), 1, list(&[1]));
        assert!(m.at_least(GroupId(1), 0).is_none());
    }

    #[test]
    fn stamps_keep_the_newest_membership() {
        let mut s = Stamps::new();
        let g = GroupId(1);
        note_stamp(
            &mut s,
            g,
            GroupStamp {
                version: 4,
                members: 10,
            },
        );
        note_stamp(
            &mut s,
            g,
            GroupStamp {
                version: 2,
                members: 9,
            },
        );
        assert_eq!(s[&g].version, 4);
        note_stamp(
            &mut s,
            g,
            GroupStamp {
                version: 6,
                members: 11,
            },
        );
        assert_eq!(
            s[&g],
            GroupStamp {
                version: 6,
                members: 11
            }
        );
    }
}
