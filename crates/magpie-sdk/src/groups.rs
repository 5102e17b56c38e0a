//! Groups over HTTP (docs/protocol.md §3.14): create, list, members, roles,
//! leaving, as methods of [`HttpClient`]. Messages to a group go through
//! `Client::send_group` (or `HttpClient::send` with `group`).

use crate::error::Result;
use crate::http::{HttpClient, json};
use magpie_core::{GroupId, GroupInfo, GroupRole, MemberInfo, UserId};
use magpie_proto::http::{
    AddMembersRequest, AddMembersResponse, CreateGroupRequest, GroupList, MemberPatch, MembersPage,
    OwnerRequest,
};
use reqwest::Method;

impl HttpClient {
    /// Creates a group owned by the caller (`POST /v1/groups`).
    pub async fn create_group(&self, req: &CreateGroupRequest) -> Result<GroupInfo> {
        self.call(Method::POST, "/v1/groups", Some(json(req)?), true)
            .await
    }

    /// The caller's groups.
    pub async fn my_groups(&self) -> Result<Vec<GroupInfo>> {
        let list: GroupList = self.call(Method::GET, "/v1/groups", None, true).await?;
        Ok(list.groups)
    }

    /// Adds members to a group the caller manages; returns those added.
    pub async fn add_members(&self, group: GroupId, users: &[UserId]) -> Result<Vec<UserId>> {
        let path = format!("/v1/groups/{group}/members");
        let body = AddMembersRequest {
            users: users.to_vec(),
        };
        let added: AddMembersResponse = self
            .call(Method::POST, &path, Some(json(&body)?), true)
            .await?;
        Ok(added.added)
    }

    /// Removes `user` from `group` (the caller itself: leaves it).
    pub async fn remove_member(&self, group: GroupId, user: UserId) -> Result<()> {
        let path = format!("/v1/groups/{group}/members/{user}");
        self.call(Method::DELETE, &path, None, true).await
    }

    /// Sets a member's role (owner and admins decide; `owner` is refused).
    pub async fn set_role(
        &self,
        group: GroupId,
        user: UserId,
        role: GroupRole,
    ) -> Result<MemberInfo> {
        let path = format!("/v1/groups/{group}/members/{user}");
        let patch = MemberPatch {
            role: Some(role),
            muted: None,
        };
        self.call(Method::PATCH, &path, Some(json(&patch)?), true)
            .await
    }

    /// Hands `group` to member `to`; the caller (the owner) becomes an admin.
    pub async fn transfer_owner(&self, group: GroupId, to: UserId) -> Result<GroupInfo> {
        let path = format!("/v1/groups/{group}/owner");
        let body = OwnerRequest { user: to };
        self.call(Method::PUT, &path, Some(json(&body)?), true)
            .await
    }

    /// Every member of `group`, page after page.
    pub async fn members(&self, group: GroupId) -> Result<Vec<MemberInfo>> {
        let mut all = Vec::new();
        let mut after = UserId(0);
        loop {
            let path = format!("/v1/groups/{group}/members?after={after}&limit=500");
            let page: MembersPage = self.call(Method::GET, &path, None, true).await?;
            all.extend(page.members);
            match page.next {
                Some(next) => after = next,
                None => return Ok(all),
            }
        }
    }
}
