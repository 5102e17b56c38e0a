//! Ban decisions for operators and gateways, on the internal listener
//! (docs/edge.md):
//!
//! - `GET/POST/DELETE /internal/v1/bans` with the service key: list, add
//!   and lift decisions;
//! - `GET /v1/decisions` and `GET /v1/decisions/stream` with a bouncer's
//!   `X-Api-Key` (`guard.bouncer_keys`): the decisions as CrowdSec's local
//!   API serves them, so existing bouncers (nginx, APISIX, firewall)
//!   enforce Magpie's bans at the gateway.
//!
//! A bouncer's stream answers what changed since its previous pull: the
//! time of each pull is kept per key in the fast state, so any node can
//! answer the next one.

use super::extract::{ApiJson, ApiQuery, Service};
use crate::app::App;
use crate::error::{Result, ServerError};
use crate::guard::bans::{Decision, Scope};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use magpie_core::now_ms;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Deserialize)]
pub struct BanRequest {
    pub scope: Scope,
    pub value: String,
    #[serde(default)]
    pub reason: String,
    /// How long, seconds.
    pub secs: u64,
}

#[derive(Debug, Deserialize, Default)]
pub struct ListQuery {
    /// Include lifted and expired decisions (kept a day).
    #[serde(default)]
    pub all: bool,
}

#[derive(Debug, Deserialize, Default)]
pub struct IdQuery {
    #[serde(default)]
    pub id: Option<String>,
}

pub async fn list(
    State(app): State<App>,
    _: Service,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Json<Vec<Decision>> {
    let now = now_ms();
    let mut all: Vec<Decision> = app
        .guard
        .bans
        .all()
        .into_iter()
        .filter(|d| q.all || d.active(now))
        .collect();
    all.sort_by_key(|d| std::cmp::Reverse(d.created_ms));
    Json(all)
}

pub async fn add(
    State(app): State<App>,
    _: Service,
    ApiJson(req): ApiJson<BanRequest>,
) -> Result<(StatusCode, Json<Decision>)> {
    if req.secs == 0 {
        return Err(ServerError::bad_field("secs must be positive"));
    }
    let reason = if req.reason.is_empty() {
        "manual".to_string()
    } else {
        req.reason.chars().take(200).collect()
    };
    let d = Decision::new(
        req.scope,
        req.value.trim().into(),
        &reason,
        "admin",
        req.secs,
    );
    Ok((StatusCode::CREATED, Json(app.guard.bans.add(d).await?)))
}

pub async fn remove(
    State(app): State<App>,
    _: Service,
    ApiQuery(q): ApiQuery<IdQuery>,
) -> Result<StatusCode> {
    let Some(id) = q.id.filter(|i| !i.is_empty()) else {
        return Err(ServerError::bad_field(
            "id: the decision's id, e.g. ip:198.51.100.7",
        ));
    };
    if app.guard.bans.remove(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ServerError::NotFound(format!(
            "no decision {id:?} in force"
        )))
    }
}

/// A decision as CrowdSec's local API writes it.
#[derive(Debug, Serialize)]
pub struct CsDecision {
    pub id: u64,
    pub origin: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub scope: &'static str,
    pub value: String,
    /// Time left, as Go's `time.Duration` prints it.
    pub duration: String,
    pub scenario: String,
}

fn cs(d: &Decision, now: i64) -> CsDecision {
    let left = ((d.until_ms - now).max(0) / 1000) as u64;
    CsDecision {
        id: d.num,
        origin: format!("magpie/{}", d.origin),
        kind: "ban",
        scope: match d.scope {
            Scope::Ip => "Ip",
            Scope::Range => "Range",
            Scope::User => "User",
        },
        value: d.value.clone(),
        duration: format!("{}h{}m{}s", left / 3600, left / 60 % 60, left % 60),
        scenario: format!("magpie/{}", d.reason),
    }
}

/// The bouncer's key, checked against `guard.bouncer_keys`; returns a
/// short digest naming it in the fast state.
fn bouncer(app: &App, headers: &HeaderMap) -> Result<String> {
    let key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let known = !key.is_empty()
        && app
            .cfg
            .guard
            .bouncer_keys
            .iter()
            .any(|k| super::extract::constant_time_eq(k.as_bytes(), key.as_bytes()));
    if !known {
        return Err(ServerError::Forbidden("unknown bouncer key".into()));
    }
    Ok(hex::encode(&Sha256::digest(key.as_bytes())[..8]))
}

#[derive(Debug, Deserialize, Default)]
pub struct CsQuery {
    pub ip: Option<String>,
    pub scope: Option<String>,
    pub value: Option<String>,
}

/// `GET /v1/decisions`: the decisions in force, filtered like CrowdSec's
/// (`ip`, or `scope` + `value`); `null` when there are none, as there.
pub async fn decisions(
    State(app): State<App>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<CsQuery>,
) -> Result<Json<Option<Vec<CsDecision>>>> {
    bouncer(&app, &headers)?;
    let now = now_ms();
    let ip: Option<std::net::IpAddr> = q.ip.as_deref().and_then(|s| s.parse().ok());
    let out: Vec<CsDecision> = app
        .guard
        .bans
        .all()
        .iter()
        .filter(|d| d.active(now))
        .filter(|d| match ip {
            Some(ip) => match d.scope {
                Scope::Ip => d.value.parse() == Ok(ip),
                Scope::Range => d
                    .value
                    .parse::<ipnet::IpNet>()
                    .is_ok_and(|n| n.contains(&ip)),
                Scope::User => false,
            },
            None => true,
        })
        .filter(|d| {
            let c = cs(d, now);
            q.scope
                .as_deref()
                .is_none_or(|s| s.eq_ignore_ascii_case(c.scope))
                && q.value.as_deref().is_none_or(|v| v == c.value)
        })
        .map(|d| cs(d, now))
        .collect();
    Ok(Json((!out.is_empty()).then_some(out)))
}

#[derive(Debug, Deserialize, Default)]
pub struct StreamQuery {
    #[serde(default)]
    pub startup: bool,
}

#[derive(Debug, Serialize)]
pub struct Stream {
    pub new: Option<Vec<CsDecision>>,
    pub deleted: Option<Vec<CsDecision>>,
}

/// How long a bouncer's last pull is remembered.
const PULL_TTL_MS: u64 = 7 * 24 * 3600 * 1000;

/// `GET /v1/decisions/stream`: at start-up (or a first pull) every
/// decision in force; afterwards those made and those ended since the
/// bouncer's previous pull. Only address and range decisions: a gateway
/// cannot enforce a user ban.
pub async fn stream(
    State(app): State<App>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<StreamQuery>,
) -> Result<Json<Stream>> {
    let who = bouncer(&app, &headers)?;
    let now = now_ms();
    let prev = app
        .state
        .guard_swap(&format!("bouncer:{who}"), &now.to_string(), PULL_TTL_MS)
        .await?
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|_| !q.startup);
    let all = app.guard.bans.all();
    let gateway = all.iter().filter(|d| d.scope != Scope::User);
    let (new, deleted): (Vec<CsDecision>, Vec<CsDecision>) = match prev {
        None => (
            gateway
                .filter(|d| d.active(now))
                .map(|d| cs(d, now))
                .collect(),
            Vec::new(),
        ),
        Some(since) => {
            let mut new = Vec::new();
            let mut deleted = Vec::new();
            // Times are milliseconds: a change in the millisecond of the
            // previous pull is reported again rather than missed (a bouncer
            // applying a ban or a removal twice changes nothing).
            for d in gateway {
                if d.active(now) && d.created_ms >= since {
                    new.push(cs(d, now));
                } else if d.ended(now).is_some_and(|t| t >= since) {
                    deleted.push(cs(d, now));
                }
            }
            (new, deleted)
        }
    };
    Ok(Json(Stream {
        new: (!new.is_empty()).then_some(new),
        deleted: (!deleted.is_empty()).then_some(deleted),
    }))
}
