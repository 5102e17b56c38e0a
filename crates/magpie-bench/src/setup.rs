//! Setting a run up, before anything is measured: users (registered over
//! the public API), tokens (from the internal API — on each node's internal
//! listener — when the tool has the service key and the internal URLs, so no
//! password hash is paid per device; otherwise by login), connections (a
//! ticket from `POST /v1/connect`, then the socket and `hello`) and groups.
//! Everything runs with bounded concurrency and spreads clients over the
//! given nodes in turn.

use crate::link::Link;
use crate::target::Target;
use anyhow::Context;
use futures_util::{StreamExt, stream};
use magpie_core::{DeviceId, GroupId, Transport, UserId};
use magpie_proto::http::{
    CreateGroupRequest, InternalFollowsRequest, InternalTokenRequest, Tokens,
};
use magpie_sdk::HttpClient;
use std::time::Duration;

const PASSWORD: &str = "magpie-bench-password";

/// A user the run created.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: i64,
    pub name: String,
}

/// Internal API base URLs (one per node, in the order of the public ones)
/// and the service key they accept.
#[derive(Clone)]
struct Internal {
    urls: Vec<String>,
    key: String,
}

#[derive(Clone)]
pub struct Setup {
    http: reqwest::Client,
    urls: Vec<String>,
    /// The nodes' internal API, when the tool can use it.
    internal: Option<Internal>,
    prefix: String,
    pub transport: Transport,
    /// Loopback source addresses to spread sockets over.
    pub spread: usize,
    pub concurrency: usize,
    /// Read buffer per socket: small when holding tens of thousands idle.
    pub read_buf: usize,
}

impl Setup {
    pub fn new(
        target: &Target,
        transport: Transport,
        spread: usize,
        concurrency: usize,
    ) -> anyhow::Result<Setup> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(concurrency)
            .build()?;
        // Unique per run, so runs against one server never collide.
        let prefix = format!("b{:08x}", rand_u32());
        Ok(Setup {
            http,
            urls: target.urls.clone(),
            internal: match &target.service_key {
                Some(key)
                    if !target.internal_urls.is_empty()
                        && target.internal_urls.len() == target.urls.len() =>
                {
                    Some(Internal {
                        urls: target.internal_urls.clone(),
                        key: key.clone(),
                    })
                }
                _ => None,
            },
            prefix,
            transport,
            spread,
            concurrency,
            read_buf: 8 * 1024,
        })
    }

    fn url(&self, i: usize) -> &str {
        &self.urls[i % self.urls.len()]
    }

    fn client(&self, i: usize) -> HttpClient {
        HttpClient::with_client(self.url(i), self.http.clone())
    }

    /// Registers `n` users.
    pub async fn users(&self, n: usize) -> anyhow::Result<Vec<Account>> {
        let made: Vec<anyhow::Result<Account>> = stream::iter(0..n)
            .map(|i| async move {
                let name = format!("{}-{i}", self.prefix);
                let created = self.client(i).register(&name, PASSWORD).await?;
                Ok(Account {
                    id: created.user_id.0,
                    name,
                })
            })
            .buffered(self.concurrency)
            .collect()
            .await;
        made.into_iter().collect()
    }

    /// Tokens for one device of a user.
    pub async fn tokens(&self, acct: &Account, device: &str, i: usize) -> anyhow::Result<Tokens> {
        let device = DeviceId::new(device).context("device id")?;
        match &self.internal {
            Some(internal) => {
                // The same node as `self.url(i)`: both lists are in node order.
                let base = &internal.urls[i % internal.urls.len()];
                let url = format!("{base}/internal/v1/users/{}/tokens", acct.id);
                let resp = self
                    .http
                    .post(url)
                    .bearer_auth(&internal.key)
                    .json(&InternalTokenRequest {
                        device: Some(device),
                    })
                    .send()
                    .await?
                    .error_for_status()?;
                Ok(resp.json().await?)
            }
            None => Ok(self
                .client(i)
                .login(&acct.name, PASSWORD, Some(device))
                .await?),
        }
    }

    /// One password login (a wrong password when `wrong`): what a user's
    /// app does, hash and all.
    pub async fn login(&self, acct: &Account, wrong: bool) -> anyhow::Result<()> {
        let pw = if wrong { "not-the-password" } else { PASSWORD };
        let client = self.client(acct.id as usize);
        client.login(&acct.name, pw, None).await?;
        Ok(())
    }

    /// An authenticated HTTP client for one device of a user.
    pub async fn api(&self, acct: &Account, device: &str, i: usize) -> anyhow::Result<HttpClient> {
        let client = self.client(i);
        client.set_tokens(self.tokens(acct, device, i).await?);
        Ok(client)
    }

    /// Opens the `i`-th connection: the device's tokens, a ticket, the socket.
    pub async fn connect(&self, acct: &Account, device: &str, i: usize) -> anyhow::Result<Link> {
        let api = self.api(acct, device, i).await?;
        self.open(&api, i).await
    }

    /// A ticket for an authenticated device, then the socket and `hello`.
    pub async fn open(&self, api: &HttpClient, i: usize) -> anyhow::Result<Link> {
        let resp = api.connect(Some(self.transport)).await?;
        Link::open(&resp, i, self.spread, self.read_buf).await
    }

    /// One connection per account (its device `bench`), in order.
    pub async fn connect_all(&self, who: &[Account]) -> anyhow::Result<Vec<Link>> {
        let links: Vec<anyhow::Result<Link>> = stream::iter(who.iter().enumerate())
            .map(|(i, acct)| self.connect(acct, "bench", i))
            .buffered(self.concurrency)
            .collect()
            .await;
        links.into_iter().collect()
    }

    /// `followers` follow `followee`, in requests of 2,000 (the
    /// internal API's bulk import: the tool needs the service key); with
    /// `read`, each follower reads its feed once (it becomes active).
    pub async fn import_follows(
        &self,
        followee: i64,
        followers: &[i64],
        read: bool,
    ) -> anyhow::Result<()> {
        let internal = self.internal.as_ref().context(
            "follows are imported on the internal API: give --internal-url and --service-key",
        )?;
        let chunks: Vec<&[i64]> = followers.chunks(2_000).collect();
        let done: Vec<anyhow::Result<()>> = stream::iter(chunks.into_iter().enumerate())
            .map(|(i, chunk)| async move {
                let base = &internal.urls[i % internal.urls.len()];
                let body = InternalFollowsRequest {
                    followee: UserId(followee),
                    followers: chunk.iter().map(|f| UserId(*f)).collect(),
                    read,
                };
                self.http
                    .post(format!("{base}/internal/v1/follows"))
                    .bearer_auth(&internal.key)
                    .json(&body)
                    .send()
                    .await?
                    .error_for_status()?;
                Ok(())
            })
            .buffer_unordered(4)
            .collect()
            .await;
        done.into_iter().collect()
    }

    /// The sum of a counter's series on every node's `/metrics` (a name
    /// with its labels, e.g. `magpie_feed_reads_total{from="pull"}`).
    pub async fn counter(&self, name: &str) -> anyhow::Result<f64> {
        let mut sum = 0.0;
        for url in &self.urls {
            let text = self
                .http
                .get(format!("{url}/metrics"))
                .send()
                .await?
                .text()
                .await?;
            let values = text
                .lines()
                .filter(|l| l.starts_with(name) && !l.starts_with('#'))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
            sum += values.sum::<f64>();
        }
        Ok(sum)
    }

    /// A group owned by `owner` with every one of `members`.
    pub async fn group(&self, owner: &Account, members: &[Account]) -> anyhow::Result<i64> {
        let api = self.api(owner, "owner", 0).await?;
        let info = api
            .create_group(&CreateGroupRequest {
                name: format!("{}-group", self.prefix),
                members: Vec::new(),
                history: 0,
            })
            .await?;
        let ids: Vec<UserId> = members
            .iter()
            .filter(|m| m.id != owner.id)
            .map(|m| UserId(m.id))
            .collect();
        // The server takes at most `groups.max_batch` (1,000) users per call.
        for chunk in ids.chunks(1000) {
            api.add_members(GroupId(info.id.0), chunk).await?;
        }
        Ok(info.id.0)
    }
}

fn rand_u32() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    nanos ^ std::process::id().rotate_left(16)
}
