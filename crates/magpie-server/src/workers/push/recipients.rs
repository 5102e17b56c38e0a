//! Who gets a call for a message (docs/protocol.md, "Offline push
//! webhook"): the direct peer, or a group's members (a super group's: only
//! the users it mentions), never the sender; then only those with no
//! route in the fast state (no device online), not muted in the
//! conversation unless mentioned, and with a device left that did not opt
//! out (`offline_push`).
//!
//! Invariant: the cost of a super group's message grows with its mentions,
//! never with its members (ARCHITECTURE.md, invariant 8).

use crate::app::App;
use crate::error::Result;
use magpie_core::{DeviceId, Message, UserId};
use std::collections::HashSet;

/// Members read per store page of a small group.
const MEMBER_PAGE: usize = 1_000;

/// One recipient to notify, and the devices the call may name.
pub struct Target {
    pub user: UserId,
    pub devices: Vec<DeviceId>,
    pub others: bool,
    pub mentioned: bool,
}

/// The users `m` is for, the sender left out, and whether each is
/// mentioned.
async fn candidates(app: &App, m: &Message) -> Result<Vec<(UserId, bool)>> {
    if let Some(peer) = m.conv.peer_of(m.from) {
        return Ok(if peer == m.from {
            Vec::new() // a note to self
        } else {
            vec![(peer, mentions(m, peer))]
        });
    }
    let Some(group) = m.conv.group_id() else {
        return Ok(Vec::new());
    };
    let Some(info) = app.store.groups().group(group).await? else {
        return Ok(Vec::new());
    };
    if info.members > app.cfg.groups.super_threshold {
        let named = mentioned_users(m).into_iter().filter(|u| *u != m.from);
        // Members who can see it? A mention of a stranger notifies nobody.
        let mut out = Vec::new();
        for u in named {
            let member = app.store.groups().member(group, u).await?;
            if member.is_some_and(|x| x.joined_seq < m.seq) {
                out.push((u, true));
            }
        }
        return Ok(out);
    }
    let mut out = Vec::new();
    let mut after = UserId(0);
    loop {
        let page = app
            .store
            .groups()
            .members(group, after, MEMBER_PAGE)
            .await?;
        let Some(last) = page.last() else { break };
        after = last.user;
        let full = page.len() == MEMBER_PAGE;
        out.extend(
            page.into_iter()
                // Not the sender, nor who joined after it (cannot see it).
                .filter(|x| x.user != m.from && x.joined_seq < m.seq)
                .map(|x| (x.user, mentions(m, x.user))),
        );
        if !full {
            break;
        }
    }
    Ok(out)
}

/// The recipients of `m` to call, in member order.
pub async fn targets(app: &App, m: &Message) -> Result<Vec<Target>> {
    let all = candidates(app, m).await?;
    if all.is_empty() {
        return Ok(Vec::new());
    }
    // Online = any route of any device (what Delivery pushes to).
    let users: Vec<UserId> = all.iter().map(|(u, _)| *u).collect();
    let routes = app.state.routes(&users).await?;
    let offline: Vec<(UserId, bool)> = all
        .into_iter()
        .filter(|(u, _)| routes.get(u).is_none_or(|r| r.is_empty()))
        .collect();
    if offline.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<UserId> = offline.iter().map(|(u, _)| *u).collect();
    let muted: HashSet<UserId> = muted_among(app, m, &ids).await?.into_iter().collect();
    let mut out = Vec::new();
    for (user, mentioned) in offline {
        // Mentions go through a mute.
        if muted.contains(&user) && !mentioned {
            continue;
        }
        let (devices, others) = opted_in(app, user).await?;
        if devices.is_empty() && !others {
            continue;
        }
        out.push(Target {
            user,
            devices,
            others,
            mentioned,
        });
    }
    Ok(out)
}

/// The devices of `user` the call may name: those with settings of their
/// own that allow it; and whether the user default allows it for the
/// user's other devices.
async fn opted_in(app: &App, user: UserId) -> Result<(Vec<DeviceId>, bool)> {
    let accounts = app.store.accounts();
    let others = accounts.get_settings(user, None).await?.offline_push;
    let devices = accounts
        .device_settings(user)
        .await?
        .into_iter()
        .filter(|(_, s)| s.offline_push)
        .map(|(d, _)| d)
        .collect();
    Ok((devices, others))
}

// -- mentions and conversation mutes (docs/protocol.md §5.11)

/// Whether `m` mentions `u`, by name or by `@all`.
fn mentions(m: &Message, u: UserId) -> bool {
    m.meta.as_ref().is_some_and(|x| x.mentions_user(u))
}

/// The users `m` names. Not `@all`: in a super group that would be every
/// member, the cost this path must not pay.
fn mentioned_users(m: &Message) -> Vec<UserId> {
    m.meta
        .as_ref()
        .map(|x| x.mentions.clone())
        .unwrap_or_default()
}

/// Which of `users` muted `m`'s conversation (one store read).
async fn muted_among(app: &App, m: &Message, users: &[UserId]) -> Result<Vec<UserId>> {
    Ok(app.store.messages().muted_among(&m.conv, users).await?)
}
