//! Group management and its permission rules, stated once here:
//! - only members see a group, its members, its messages and read-by lists;
//! - owners and admins rename it and add members; the owner alone dissolves
//!   it, changes roles and hands the group to a member (one owner at a time);
//! - a member may leave, except the owner (who dissolves instead);
//! - the owner removes or mutes anyone else, an admin only plain members;
//! - a muted member, and anyone once the group is dissolved, cannot send;
//! - every change of members, roles, name or owner is announced in the
//!   group's conversation (`group_events.rs`).

use super::missing::Missing;
use super::{Events, Messaging, Users};
use crate::config::Config;
use crate::error::{Result, ServerError};
use magpie_core::{GroupId, GroupInfo, GroupRole, MemberEvent, MemberInfo, Seq, UserId};
use magpie_store::ReadBy;
use magpie_store::Store;
use std::sync::Arc;

/// Longest group name, in characters.
const MAX_NAME: usize = 100;

fn check_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(ServerError::bad_field(format!(
            "name: 1 to {MAX_NAME} characters"
        )));
    }
    Ok(name.to_string())
}

/// A group the caller is not in answers exactly like one that does not
/// exist, so group ids cannot be probed (docs/protocol.md §3.14).
fn no_group(g: GroupId) -> ServerError {
    ServerError::NotFound(format!("no group {g}"))
}

pub struct Groups {
    pub(super) cfg: Arc<Config>,
    store: Store,
    events: Events,
    pub(super) users: Arc<Users>,
    /// Member events are sent as messages (`group_events.rs`).
    pub(super) messaging: Arc<Messaging>,
    /// Group ids found not to exist, a few seconds (`missing.rs`).
    missing: Missing<GroupId>,
}

impl Groups {
    pub fn new(
        cfg: Arc<Config>,
        store: Store,
        events: Events,
        users: Arc<Users>,
        messaging: Arc<Messaging>,
    ) -> Groups {
        Groups {
            cfg,
            store,
            events,
            users,
            messaging,
            missing: Missing::new(),
        }
    }

    /// The group and the caller's membership, or why not.
    pub(crate) async fn membership(
        &self,
        user: UserId,
        g: GroupId,
    ) -> Result<(GroupInfo, MemberInfo)> {
        if self.missing.is_missing(g) {
            return Err(no_group(g));
        }
        let Some(info) = self.store.groups().group(g).await? else {
            self.missing.mark(g);
            return Err(no_group(g));
        };
        let me = self
            .store
            .groups()
            .member(g, user)
            .await?
            .ok_or_else(|| no_group(g))?;
        Ok((info, me))
    }

    /// Membership of someone who manages the group (owner or admin).
    async fn managing(&self, user: UserId, g: GroupId) -> Result<(GroupInfo, MemberInfo)> {
        let (info, me) = self.membership(user, g).await?;
        if !me.role.manages() {
            return Err(ServerError::Forbidden(format!(
                "only the owner and admins manage group {g}"
            )));
        }
        if info.dissolved {
            return Err(ServerError::Forbidden(format!("group {g} is dissolved")));
        }
        Ok((info, me))
    }

    async fn check_users(&self, users: &[UserId]) -> Result<()> {
        for &u in users {
            if u.0 < 0 {
                return Err(ServerError::bad_field(format!(
                    "users: {u} is not a user id"
                )));
            }
            if u == UserId::SYSTEM || !self.users.exists(u).await? {
                return Err(ServerError::UnknownRecipient(u.0));
            }
        }
        Ok(())
    }

    pub async fn create_group(
        &self,
        owner: UserId,
        name: &str,
        members: &[UserId],
        history: i64,
    ) -> Result<GroupInfo> {
        let name = check_name(name)?;
        if history < 0 {
            return Err(ServerError::bad_field("history: must not be negative"));
        }
        if members.len() > self.cfg.groups.max_batch {
            return Err(ServerError::bad_field(format!(
                "members: at most {} per request",
                self.cfg.groups.max_batch
            )));
        }
        self.check_users(members).await?;
        let info = self
            .store
            .groups()
            .create_group(&name, owner, members, history)
            .await?;
        self.missing.found(info.id);
        let mut all = vec![owner];
        all.extend(members.iter().copied().filter(|u| *u != owner));
        self.membership_changed(info.id, &all, true).await;
        Ok(info)
    }

    pub async fn group_info(&self, user: UserId, g: GroupId) -> Result<GroupInfo> {
        Ok(self.membership(user, g).await?.0)
    }

    /// The caller's groups.
    pub async fn my_groups(&self, user: UserId) -> Result<Vec<GroupInfo>> {
        let mut out = Vec::new();
        for g in self.store.groups().user_groups(user).await? {
            if let Some(info) = self.store.groups().group(g).await? {
                out.push(info);
            }
        }
        Ok(out)
    }

    pub async fn rename_group(&self, user: UserId, g: GroupId, name: &str) -> Result<GroupInfo> {
        let name = check_name(name)?;
        self.managing(user, g).await?;
        self.store.groups().rename_group(g, &name).await?;
        let info = self.group_info(user, g).await?;
        self.announce(g, MemberEvent::Renamed { name, by: user })
            .await;
        Ok(info)
    }

    pub async fn dissolve_group(&self, user: UserId, g: GroupId) -> Result<()> {
        let (_, me) = self.managing(user, g).await?;
        if me.role != GroupRole::Owner {
            return Err(ServerError::Forbidden(
                "only the owner dissolves a group".into(),
            ));
        }
        Ok(self.store.groups().dissolve_group(g).await?)
    }

    pub async fn add_members(
        &self,
        user: UserId,
        g: GroupId,
        users: &[UserId],
    ) -> Result<Vec<UserId>> {
        self.managing(user, g).await?;
        if users.len() > self.cfg.groups.max_batch {
            return Err(ServerError::bad_field(format!(
                "users: at most {} per request",
                self.cfg.groups.max_batch
            )));
        }
        self.check_users(users).await?;
        let added = self.store.groups().add_members(g, users).await?;
        self.membership_changed(g, &added, true).await;
        if !added.is_empty() {
            let event = MemberEvent::Joined {
                users: added.clone(),
                by: user,
            };
            self.announce(g, event).await;
        }
        Ok(added)
    }

    /// Tells every connection node, so their group indexes follow (a super
    /// group's next broadcast reaches a new member, misses one who left).
    async fn membership_changed(&self, g: GroupId, users: &[UserId], joined: bool) {
        let at = magpie_core::now_ms();
        let events = users
            .iter()
            .map(|&user| {
                let ev = magpie_core::BusEvent::GroupMember {
                    group: g,
                    user,
                    joined,
                };
                let id = magpie_core::EventId::Member {
                    group: g,
                    user,
                    joined,
                    at,
                };
                (ev, id)
            })
            .collect();
        if let Err(e) = self.events.publish_all(events).await {
            tracing::warn!(error = %e, group = %g, "membership event not published; indexes catch up on reconnect");
        }
    }

    /// Removes `target` (or leaves, when `target` is the caller).
    pub async fn remove_member(&self, user: UserId, g: GroupId, target: UserId) -> Result<()> {
        let (_, me) = self.membership(user, g).await?;
        if target == user {
            if me.role == GroupRole::Owner {
                return Err(ServerError::Forbidden(
                    "the owner cannot leave: dissolve the group instead".into(),
                ));
            }
        } else {
            let (_, me) = self.managing(user, g).await?;
            let them = self.store.groups().member(g, target).await?;
            let them =
                them.ok_or_else(|| ServerError::NotFound(format!("{target} is not a member")))?;
            outranks(me.role, them.role)?;
        }
        if self.store.groups().remove_member(g, target).await? {
            self.membership_changed(g, &[target], false).await;
            let event = match target == user {
                true => MemberEvent::Left { user },
                false => MemberEvent::Removed {
                    user: target,
                    by: user,
                },
            };
            self.announce(g, event).await;
        }
        Ok(())
    }

    pub async fn set_member(
        &self,
        user: UserId,
        g: GroupId,
        target: UserId,
        role: Option<GroupRole>,
        muted: Option<bool>,
    ) -> Result<MemberInfo> {
        let (_, me) = self.managing(user, g).await?;
        let them = self.store.groups().member(g, target).await?;
        let them =
            them.ok_or_else(|| ServerError::NotFound(format!("{target} is not a member")))?;
        if let Some(r) = role {
            if me.role != GroupRole::Owner {
                return Err(ServerError::Forbidden(
                    "only the owner changes roles".into(),
                ));
            }
            if r == GroupRole::Owner || target == user {
                return Err(ServerError::bad_field(
                    "role: admin or member, for someone other than the owner",
                ));
            }
        }
        if muted.is_some() {
            outranks(me.role, them.role)?;
        }
        self.store
            .groups()
            .set_member(g, target, role, muted)
            .await?;
        let now = self.store.groups().member(g, target).await?;
        let now = now.ok_or_else(|| ServerError::NotFound(format!("{target} is not a member")))?;
        if role.is_some() && now.role != them.role {
            let event = MemberEvent::Role {
                user: target,
                role: now.role,
                by: user,
            };
            self.announce(g, event).await;
        }
        Ok(now)
    }

    /// `user`, the owner, makes member `to` the owner and becomes an admin.
    pub async fn transfer_owner(&self, user: UserId, g: GroupId, to: UserId) -> Result<GroupInfo> {
        let (_, me) = self.managing(user, g).await?;
        if me.role != GroupRole::Owner {
            return Err(ServerError::Forbidden(
                "only the owner hands the group over".into(),
            ));
        }
        if to == user {
            return Err(ServerError::bad_field("user: another member"));
        }
        if self.store.groups().member(g, to).await?.is_none() {
            return Err(ServerError::NotFound(format!("{to} is not a member")));
        }
        self.store.groups().transfer_owner(g, user, to).await?;
        let info = self.group_info(user, g).await?;
        self.announce(g, MemberEvent::Owner { from: user, to })
            .await;
        Ok(info)
    }

    pub async fn group_members(
        &self,
        user: UserId,
        g: GroupId,
        after: UserId,
        limit: Option<usize>,
    ) -> Result<Vec<MemberInfo>> {
        self.membership(user, g).await?;
        let limit = limit.unwrap_or(100).clamp(1, self.cfg.limits.max_page);
        Ok(self.store.groups().members(g, after, limit).await?)
    }

    /// Who has (`read`) or has not read message `seq`, paged, with both counts.
    pub async fn read_by(
        &self,
        user: UserId,
        g: GroupId,
        seq: Seq,
        read: bool,
        after: UserId,
        limit: Option<usize>,
    ) -> Result<ReadBy> {
        let (info, _) = self.membership(user, g).await?;
        if seq < 1 || seq > info.last_seq {
            return Err(ServerError::NotFound(format!(
                "no message {seq} in group {g}"
            )));
        }
        let limit = limit.unwrap_or(100).clamp(1, self.cfg.limits.max_page);
        Ok(self
            .store
            .groups()
            .read_by(g, seq, read, after, limit)
            .await?)
    }
}

/// The owner acts on anyone else; an admin only on plain members.
fn outranks(me: GroupRole, them: GroupRole) -> Result<()> {
    let ok = match me {
        GroupRole::Owner => them != GroupRole::Owner,
        GroupRole::Admin => them == GroupRole::Member,
        GroupRole::Member => false,
    };
    if ok {
        Ok(())
    } else {
        Err(ServerError::Forbidden(format!(
            "a group {} cannot do that to a group {}",
            me.as_str(),
            them.as_str()
        )))
    }
}
