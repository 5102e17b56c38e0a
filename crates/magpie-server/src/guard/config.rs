//! The `[guard]` section: limits at every entrance, the login guard, ban
//! rules and access logs (docs/edge.md, docs/config.md). Every key has a
//! production default; `0` turns a rate or cap off.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GuardConfig {
    /// Peers (CIDRs) whose `X-Forwarded-For` / `X-Real-IP` names the
    /// client; from anyone else those headers are ignored.
    pub trusted_proxies: Vec<IpNet>,
    /// Addresses never banned and never limited per address (per-user
    /// limits still apply): loopback by default, add the gateway's own.
    pub allow: Vec<IpNet>,
    /// Open connections one address may hold on one node (HTTP, WebSocket
    /// and TCP together).
    pub conns_per_ip: usize,
    pub rates: RatesConfig,
    pub login: LoginGuardConfig,
    /// How often a node re-reads the ban decisions' version from the fast
    /// state, ms. Changes are announced on the relay and applied at once;
    /// this poll catches an announcement lost unseen.
    pub ban_refresh_ms: u64,
    /// The detector's lease (one node runs it), ms: renewed every third;
    /// a holder that died is replaced within it.
    pub detector_lease_ms: u64,
    /// The detector's rules; the defaults are listed in docs/edge.md.
    /// Setting this replaces them all.
    pub rules: Vec<RuleConfig>,
    /// Write an access log here ("" = none).
    pub access_log: String,
    /// Its format: `combined` (nginx) or `apisix` (JSON lines).
    pub access_log_format: String,
    /// Access logs of a gateway in front of Magpie to follow and feed to
    /// the detector.
    pub follow: Vec<FollowConfig>,
    /// API keys of CrowdSec-compatible bouncers reading
    /// `/v1/decisions[/stream]` on the internal listener.
    pub bouncer_keys: Vec<String>,
}

/// A token bucket: `rate` tokens a second, at most `burst` saved up.
/// `rate = 0` turns it off.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    pub rate: f64,
    pub burst: u32,
}

impl Rate {
    pub const fn new(rate: f64, burst: u32) -> Rate {
        Rate { rate, burst }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RatesConfig {
    /// HTTP requests per address.
    pub http_ip: Rate,
    /// New connections (HTTP, WebSocket, TCP) per address.
    pub connect_ip: Rate,
    /// Login attempts per address.
    pub login_ip: Rate,
    /// Registrations per address.
    pub register_ip: Rate,
    /// Socket frames per user (every device together, on one node).
    pub frames_user: Rate,
    /// Messages sent per user, socket and HTTP (on one node).
    pub sends_user: Rate,
    /// Typing indicators forwarded per user (on one node).
    pub typing_user: Rate,
    /// User look-ups (by name or id) per user (on one node).
    pub lookups_user: Rate,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginGuardConfig {
    /// Failures are counted per account and per address over this window.
    pub window_secs: u64,
    /// From this many failures on, a login needs a solved captcha.
    pub captcha_after: u64,
    /// From this many failures on, logins are refused (`locked_out`)
    /// until the window ends.
    pub lockout_after: u64,
    /// How long a captcha can be answered.
    pub captcha_ttl_secs: u64,
}

/// What a rule counts and who it bans (docs/edge.md, "Rules").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuleConfig {
    pub name: String,
    /// Magpie error codes it counts (events Magpie wrote).
    pub codes: Vec<String>,
    /// HTTP statuses it counts in events without a code (a gateway's log).
    pub status: Vec<u16>,
    /// Only paths starting with this ("" = any).
    pub path_prefix: String,
    /// Only look-ups that found nothing.
    pub miss: bool,
    /// `ip` or `user`: whose bucket an event fills.
    pub by: String,
    /// Events a bucket holds; one more overflows it (a ban).
    pub capacity: u32,
    /// Events a bucket leaks a second.
    pub leak_per_sec: f64,
    /// How long the ban lasts.
    pub ban_secs: u64,
}

impl Default for RuleConfig {
    fn default() -> Self {
        RuleConfig {
            name: String::new(),
            codes: Vec::new(),
            status: Vec::new(),
            path_prefix: String::new(),
            miss: false,
            by: "ip".into(),
            capacity: 20,
            leak_per_sec: 0.1,
            ban_secs: 600,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FollowConfig {
    pub path: String,
    /// `combined` (nginx) or `apisix`.
    pub format: String,
}

fn rule(name: &str, codes: &[&str], status: &[u16], f: impl FnOnce(&mut RuleConfig)) -> RuleConfig {
    let mut r = RuleConfig {
        name: name.into(),
        codes: codes.iter().map(|c| c.to_string()).collect(),
        status: status.to_vec(),
        ..RuleConfig::default()
    };
    f(&mut r);
    r
}

/// The notes' three rules, plus brute-force logins, floods and chain abuse.
pub fn default_rules() -> Vec<RuleConfig> {
    vec![
        rule(
            "invalid_tokens",
            &["unauthorized", "bad_ticket"],
            &[401],
            |r| {
                r.capacity = 20;
                r.leak_per_sec = 0.2;
            },
        ),
        rule("captcha", &[], &[], |r| {
            r.path_prefix = "/v1/auth/captcha".into();
            r.capacity = 20;
            r.leak_per_sec = 0.1;
            r.ban_secs = 900;
        }),
        rule("lookups", &[], &[], |r| {
            r.miss = true;
            r.capacity = 50;
            r.leak_per_sec = 1.0;
        }),
        rule(
            "brute_force",
            &["bad_credentials", "captcha_required", "locked_out"],
            &[401, 429],
            |r| {
                r.path_prefix = "/v1/auth/login".into();
                r.capacity = 30;
                r.leak_per_sec = 0.05;
                r.ban_secs = 3_600;
            },
        ),
        rule("flood_ip", &["rate_limited"], &[429], |r| {
            r.capacity = 200;
            r.leak_per_sec = 5.0;
            r.ban_secs = 300;
        }),
        rule("flood_user", &["rate_limited"], &[], |r| {
            r.by = "user".into();
            r.capacity = 200;
            r.leak_per_sec = 5.0;
            r.ban_secs = 300;
        }),
        // A device whose chained sends keep leaving gaps is told to slow
        // down (`chain.gap_limit`); one that goes on regardless is banned.
        rule("chain_abuse", &["chain_slow_down"], &[], |r| {
            r.by = "user".into();
            r.capacity = 20;
            r.leak_per_sec = 0.1;
            r.ban_secs = 600;
        }),
    ]
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            trusted_proxies: Vec::new(),
            allow: ["127.0.0.0/8", "::1/128"]
                .iter()
                .filter_map(|n| n.parse().ok())
                .collect(),
            conns_per_ip: 1_000,
            rates: RatesConfig::default(),
            login: LoginGuardConfig::default(),
            ban_refresh_ms: 2_000,
            detector_lease_ms: 10_000,
            rules: default_rules(),
            access_log: String::new(),
            access_log_format: "combined".into(),
            follow: Vec::new(),
            bouncer_keys: Vec::new(),
        }
    }
}

impl Default for RatesConfig {
    fn default() -> Self {
        RatesConfig {
            http_ip: Rate::new(200.0, 400),
            connect_ip: Rate::new(20.0, 100),
            login_ip: Rate::new(1.0, 20),
            register_ip: Rate::new(0.2, 10),
            frames_user: Rate::new(2_000.0, 4_000),
            sends_user: Rate::new(1_000.0, 2_000),
            typing_user: Rate::new(5.0, 10),
            lookups_user: Rate::new(5.0, 50),
        }
    }
}

impl Default for LoginGuardConfig {
    fn default() -> Self {
        LoginGuardConfig {
            window_secs: 900,
            captcha_after: 5,
            lockout_after: 10,
            captcha_ttl_secs: 300,
        }
    }
}
