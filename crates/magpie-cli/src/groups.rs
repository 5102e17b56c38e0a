//! `magpie-cli group …`: create a group, list one's groups and a group's
//! members, add and remove members, set roles, hand over ownership, leave
//! (docs/protocol.md §3.14). Messages to a group: `send g:<id> …`.

use crate::commands::Out;
use crate::error::CliError;
use crate::users::resolve;
use clap::Subcommand;
use magpie_core::{GroupId, GroupInfo, GroupRole, UserId};
use magpie_proto::http::CreateGroupRequest;
use magpie_sdk::HttpClient;

#[derive(Debug, Subcommand, PartialEq, Eq)]
pub enum GroupCommand {
    /// Create a group you own, with these members (ids or usernames)
    Create {
        name: String,
        members: Vec<String>,
        /// Messages from before a join that new members see (0: none)
        #[arg(long, default_value_t = 0)]
        history: i64,
    },
    /// List your groups
    List,
    /// List a group's members and their roles
    Members { group: i64 },
    /// Add members (ids or usernames)
    Add {
        group: i64,
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Remove a member
    Remove { group: i64, user: String },
    /// Make a member an admin or a plain member again
    Role {
        group: i64,
        user: String,
        /// admin or member
        role: String,
    },
    /// Hand a group you own to another member (you become an admin)
    Owner { group: i64, user: String },
    /// Leave a group
    Leave { group: i64 },
}

async fn users(http: &HttpClient, names: &[String]) -> Result<Vec<UserId>, CliError> {
    let mut ids = Vec::with_capacity(names.len());
    for n in names {
        ids.push(resolve(http, n).await?);
    }
    Ok(ids)
}

fn group_line(g: &GroupInfo) -> String {
    format!(
        "g:{} {:?}: {} members, owner {}, last #{}",
        g.id, g.name, g.members, g.owner, g.last_seq
    )
}

pub(crate) async fn run(http: &HttpClient, cmd: GroupCommand, out: Out) -> Result<(), CliError> {
    match cmd {
        GroupCommand::Create {
            name,
            members,
            history,
        } => {
            let req = CreateGroupRequest {
                name,
                members: users(http, &members).await?,
                history,
            };
            let g = http.create_group(&req).await?;
            out.value(&g, || format!("created {}", group_line(&g)));
        }
        GroupCommand::List => {
            let groups = http.my_groups().await?;
            out.value(&groups, || {
                let lines: Vec<String> = groups.iter().map(group_line).collect();
                if lines.is_empty() {
                    "no groups".to_string()
                } else {
                    lines.join("\n")
                }
            });
        }
        GroupCommand::Members { group } => {
            let members = http.members(GroupId(group)).await?;
            out.value(&members, || {
                let lines: Vec<String> = members
                    .iter()
                    .map(|m| {
                        let muted = if m.muted { ", muted" } else { "" };
                        format!("{} ({}{muted})", m.user, m.role.as_str())
                    })
                    .collect();
                lines.join("\n")
            });
        }
        GroupCommand::Add {
            group,
            users: names,
        } => {
            let added = http
                .add_members(GroupId(group), &users(http, &names).await?)
                .await?;
            out.value(&added, || format!("added {} to g:{group}", added.len()));
        }
        GroupCommand::Remove { group, user } => {
            let user = resolve(http, &user).await?;
            http.remove_member(GroupId(group), user).await?;
            out.value(&user, || format!("removed {user} from g:{group}"));
        }
        GroupCommand::Role { group, user, role } => {
            let role = match GroupRole::parse(&role) {
                Some(r @ (GroupRole::Admin | GroupRole::Member)) => r,
                _ => return Err(CliError::usage("role: admin or member")),
            };
            let user = resolve(http, &user).await?;
            let m = http.set_role(GroupId(group), user, role).await?;
            out.value(&m, || {
                format!("{} is {} of g:{group}", m.user, m.role.as_str())
            });
        }
        GroupCommand::Owner { group, user } => {
            let user = resolve(http, &user).await?;
            let g = http.transfer_owner(GroupId(group), user).await?;
            out.value(&g, || format!("{} owns {}", g.owner, group_line(&g)));
        }
        GroupCommand::Leave { group } => {
            let me = http.tokens().map(|t| t.user_id).unwrap_or_default();
            http.remove_member(GroupId(group), me).await?;
            out.value(&group, || format!("left g:{group}"));
        }
    }
    Ok(())
}
