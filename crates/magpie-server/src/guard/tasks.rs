//! The guard's background work on a node: keeping the local copy of the
//! bans current, sweeping idle rate-limit keys, following gateway logs,
//! and — on the one `workers` node holding the `guard-detector` lease —
//! running the detector over every node's access events.

use super::access::ACCESS_SUBJECT;
use super::bans::BANS_SUBJECT;
use super::detector::Detector;
use crate::app::App;
use magpie_bus::RelayEvent;
use magpie_core::AccessEvent;
use magpie_core::access::LogFormat;
use std::time::Duration;
use tokio::task::JoinHandle;

const DETECTOR_LEASE: &str = "guard-detector";
const SWEEP_EVERY: Duration = Duration::from_secs(10);

pub fn spawn(app: &App) -> Vec<(String, JoinHandle<()>)> {
    let mut tasks = vec![
        (
            "guard-bans".to_string(),
            tokio::spawn(refresh_bans(app.clone())),
        ),
        ("guard-sweep".to_string(), tokio::spawn(sweep(app.clone()))),
    ];
    if app.cfg.cluster.has("workers") {
        tasks.push(("guard-detector".into(), tokio::spawn(detect(app.clone()))));
    }
    for f in &app.cfg.guard.follow {
        match f.format.parse::<LogFormat>() {
            Ok(format) => tasks.push((
                format!("guard-follow {}", f.path),
                tokio::spawn(super::follow::follow(
                    f.path.clone(),
                    format,
                    app.guard.access.clone(),
                    app.shutdown.clone(),
                )),
            )),
            Err(_) => tracing::error!(path = %f.path, format = %f.format,
                "guard.follow: unknown format (combined or apisix); not followed"),
        }
    }
    tasks
}

/// Re-reads the decisions when a node announces a change (or the relay
/// may have lost an announcement), and every `guard.ban_refresh_ms`.
async fn refresh_bans(app: App) {
    let every = Duration::from_millis(app.cfg.guard.ban_refresh_ms.max(10));
    let mut notices = match app.relay.subscribe(BANS_SUBJECT).await {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "ban changes not heard: polling only");
            None
        }
    };
    loop {
        if let Err(e) = app.guard.bans.refresh().await {
            tracing::debug!(error = %e, "bans not refreshed");
        }
        let notice = async {
            match notices.as_mut() {
                Some(n) => n.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            n = notice => {
                if n.is_none() {
                    notices = None;
                }
            }
            _ = tokio::time::sleep(every) => {}
            _ = app.shutdown.cancelled() => return,
        }
    }
}

async fn sweep(app: App) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
            _ = app.shutdown.cancelled() => return,
        }
        app.guard.limits.sweep();
    }
}

/// Subscribes at once (events are not stored: one not heard is gone) and
/// feeds the detector only while holding the lease.
async fn detect(app: App) {
    let mut sub = match app.relay.subscribe(ACCESS_SUBJECT).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "the detector cannot subscribe to access events");
            return;
        }
    };
    let mut detector = Detector::new(app.cfg.guard.rules.clone(), app.guard.bans.clone());
    // Renewed at a third of its life: a holder that died is replaced
    // within one lease.
    let lease = Duration::from_millis(app.cfg.guard.detector_lease_ms.max(30));
    let mut holding = false;
    let mut lease_at = tokio::time::Instant::now();
    loop {
        let now = tokio::time::Instant::now();
        if now >= lease_at {
            let held = app
                .state
                .lease(DETECTOR_LEASE, &app.cfg.node, lease.as_millis() as u64)
                .await
                .unwrap_or(false);
            if held && !holding {
                tracing::info!("running the intrusion detector");
            }
            if holding && !held {
                detector = Detector::new(app.cfg.guard.rules.clone(), app.guard.bans.clone());
            }
            if held {
                detector.sweep();
                if let Err(e) = app.guard.bans.purge().await {
                    tracing::debug!(error = %e, "old decisions not purged");
                }
            }
            holding = held;
            lease_at = now + lease / 3;
        }
        let ev = tokio::select! {
            ev = sub.next() => ev,
            _ = tokio::time::sleep_until(lease_at) => continue,
            _ = app.shutdown.cancelled() => return,
        };
        let Some(RelayEvent::Message { payload, .. }) = ev else {
            if ev.is_none() {
                return;
            }
            continue;
        };
        if !holding {
            continue;
        }
        let Ok(events) = serde_json::from_slice::<Vec<AccessEvent>>(&payload) else {
            continue;
        };
        for d in detector.feed(&events) {
            if let Err(e) = app.guard.bans.add(d).await {
                tracing::warn!(error = %e, "ban decision not made");
            }
        }
    }
}
