//! Accounts, groups and retention over shards. A user lives where its
//! username hashes and its id says (`map`); a group where its id says,
//! beside its conversation; retention's sweep asks every shard in turn.

use super::ShardedStore;
use crate::RefreshUse;
use crate::backend::{AccountStore, GroupStore, RetentionStore};
use crate::error::Result;
use crate::store::{ProfileRecord, ReadBy, RetentionHit, Retire, UserRecord};
use async_trait::async_trait;
use magpie_core::{
    ClientSettings, DeviceId, GroupId, GroupInfo, GroupRole, MemberInfo, Seq, UserId,
};

#[async_trait]
impl AccountStore for ShardedStore {
    async fn create_user(&self, username: &str, password_hash: &str) -> Result<UserRecord> {
        let k = self.map.of_key(username);
        let user = self
            .on(k, |s| s.accounts().create_user(username, password_hash))
            .await?;
        self.check_id(k, user.id.0, "user")?;
        Ok(user)
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>> {
        let k = self.map.of_key(username);
        self.on(k, |s| s.accounts().user_by_name(username)).await
    }

    async fn user_by_id(&self, id: UserId) -> Result<Option<UserRecord>> {
        let k = self.map.of_id(id.0);
        self.on(k, |s| s.accounts().user_by_id(id)).await
    }

    /// A profile lives with its user's account row.
    async fn put_profile(&self, p: &ProfileRecord) -> Result<()> {
        let k = self.map.of_id(p.user.0);
        self.on(k, |s| s.accounts().put_profile(p)).await
    }

    async fn profiles(&self, users: &[UserId]) -> Result<Vec<ProfileRecord>> {
        let mut by_shard: std::collections::BTreeMap<usize, Vec<UserId>> = Default::default();
        for &u in users {
            by_shard.entry(self.map.of_id(u.0)).or_default().push(u);
        }
        let mut out = Vec::new();
        for (k, us) in by_shard {
            out.extend(self.on(k, |s| s.accounts().profiles(&us)).await?);
        }
        Ok(out)
    }

    /// A family's tokens live together, on the shard its id hashes to (a
    /// replay revokes them all in one statement); tokens without a family
    /// on their own hash's.
    async fn put_refresh(
        &self,
        token_hash: &str,
        family: &str,
        user: UserId,
        device: &DeviceId,
        expires_at: i64,
    ) -> Result<()> {
        let k = self.map.of_key(refresh_key(token_hash, family));
        self.on(k, |s| {
            s.accounts()
                .put_refresh(token_hash, family, user, device, expires_at)
        })
        .await
    }

    async fn use_refresh(&self, token_hash: &str, family: &str) -> Result<RefreshUse> {
        let k = self.map.of_key(refresh_key(token_hash, family));
        self.on(k, |s| s.accounts().use_refresh(token_hash, family))
            .await
    }

    async fn put_settings(
        &self,
        user: UserId,
        device: Option<&DeviceId>,
        s: &ClientSettings,
    ) -> Result<()> {
        let k = self.map.of_id(user.0);
        self.on(k, |st| st.accounts().put_settings(user, device, s))
            .await
    }

    async fn get_settings(
        &self,
        user: UserId,
        device: Option<&DeviceId>,
    ) -> Result<ClientSettings> {
        let k = self.map.of_id(user.0);
        self.on(k, |s| s.accounts().get_settings(user, device))
            .await
    }

    async fn device_settings(&self, user: UserId) -> Result<Vec<(DeviceId, ClientSettings)>> {
        let k = self.map.of_id(user.0);
        self.on(k, |s| s.accounts().device_settings(user)).await
    }
}

#[async_trait]
impl GroupStore for ShardedStore {
    async fn create_group(
        &self,
        name: &str,
        owner: UserId,
        members: &[UserId],
        history: i64,
    ) -> Result<GroupInfo> {
        let k = self.new_group_shard();
        let info = self
            .on(k, |s| {
                s.groups().create_group(name, owner, members, history)
            })
            .await?;
        self.check_id(k, info.id.0, "group")?;
        Ok(info)
    }

    async fn group(&self, id: GroupId) -> Result<Option<GroupInfo>> {
        self.on(self.map.of_id(id.0), |s| s.groups().group(id))
            .await
    }

    async fn rename_group(&self, id: GroupId, name: &str) -> Result<()> {
        self.on(self.map.of_id(id.0), |s| s.groups().rename_group(id, name))
            .await
    }

    async fn dissolve_group(&self, id: GroupId) -> Result<()> {
        self.on(self.map.of_id(id.0), |s| s.groups().dissolve_group(id))
            .await
    }

    async fn add_members(&self, id: GroupId, users: &[UserId]) -> Result<Vec<UserId>> {
        self.on(self.map.of_id(id.0), |s| s.groups().add_members(id, users))
            .await
    }

    async fn remove_member(&self, id: GroupId, user: UserId) -> Result<bool> {
        self.on(self.map.of_id(id.0), |s| s.groups().remove_member(id, user))
            .await
    }

    async fn set_member(
        &self,
        id: GroupId,
        user: UserId,
        role: Option<GroupRole>,
        muted: Option<bool>,
    ) -> Result<bool> {
        let k = self.map.of_id(id.0);
        self.on(k, |s| s.groups().set_member(id, user, role, muted))
            .await
    }

    async fn transfer_owner(&self, id: GroupId, from: UserId, to: UserId) -> Result<()> {
        let k = self.map.of_id(id.0);
        self.on(k, |s| s.groups().transfer_owner(id, from, to))
            .await
    }

    async fn member(&self, id: GroupId, user: UserId) -> Result<Option<MemberInfo>> {
        self.on(self.map.of_id(id.0), |s| s.groups().member(id, user))
            .await
    }

    async fn members(&self, id: GroupId, after: UserId, limit: usize) -> Result<Vec<MemberInfo>> {
        self.on(self.map.of_id(id.0), |s| {
            s.groups().members(id, after, limit)
        })
        .await
    }

    async fn user_groups(&self, user: UserId) -> Result<Vec<GroupId>> {
        let all = self.on_all(|s| s.groups().user_groups(user)).await?;
        let mut all: Vec<GroupId> = all.into_iter().flatten().collect();
        all.sort_by_key(|g| g.0);
        Ok(all)
    }

    async fn read_by(
        &self,
        id: GroupId,
        seq: Seq,
        read: bool,
        after: UserId,
        limit: usize,
    ) -> Result<ReadBy> {
        let k = self.map.of_id(id.0);
        self.on(k, |s| s.groups().read_by(id, seq, read, after, limit))
            .await
    }

    async fn read_counts(&self, id: GroupId, seqs: &[Seq]) -> Result<Vec<(i64, i64)>> {
        let k = self.map.of_id(id.0);
        self.on(k, |s| s.groups().read_counts(id, seqs)).await
    }
}

#[async_trait]
impl RetentionStore for ShardedStore {
    /// By conversation, except the expiry sweep: each shard in turn with
    /// what is left of the limit, so the call removes at most `limit`.
    async fn retire(&self, what: Retire) -> Result<Vec<RetentionHit>> {
        let (now, limit) = match &what {
            Retire::Expired { now, limit } => (*now, *limit),
            Retire::Delivered { conv, .. } | Retire::Read { conv, .. } => {
                let k = self.map.of_conv(conv);
                return self.on(k, |s| s.retention().retire(what)).await;
            }
        };
        let mut hits = Vec::new();
        for k in 0..self.shards.len() {
            let limit = limit.saturating_sub(hits.len());
            if limit == 0 {
                break;
            }
            let expired = Retire::Expired { now, limit };
            hits.extend(self.on(k, |s| s.retention().retire(expired)).await?);
        }
        Ok(hits)
    }
}

/// Where a refresh token lives: its family's key, or its own hash.
fn refresh_key<'a>(token_hash: &'a str, family: &'a str) -> &'a str {
    if family.is_empty() {
        token_hash
    } else {
        family
    }
}
