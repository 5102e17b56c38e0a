//! Loading the configuration: defaults < TOML < environment < flags.

use clap::Args;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use magpie_server::Config;
use std::path::PathBuf;

#[derive(Args, Clone, Debug, Default)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, short, env = "MAGPIE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory of the embedded backends (data_dir).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// HTTP and WebSocket listen address (http.listen).
    #[arg(long)]
    pub http_listen: Option<String>,
    /// TCP listen address; "" disables TCP (tcp.listen).
    #[arg(long)]
    pub tcp_listen: Option<String>,
    /// Internal API listen address, never the public one; "" disables the
    /// internal API (internal.listen).
    #[arg(long)]
    pub internal_listen: Option<String>,
    /// Node name (node).
    #[arg(long)]
    pub node: Option<String>,
    /// Durable store URL (store).
    #[arg(long)]
    pub store: Option<String>,
    /// Fast state URL (state).
    #[arg(long)]
    pub state: Option<String>,
    /// Bus URL (bus).
    #[arg(long)]
    pub bus: Option<String>,
    /// Relay URL (relay; default: derived from the bus).
    #[arg(long)]
    pub relay: Option<String>,
    /// Roles to run, comma-separated: edge, conn, workers, search (cluster.roles; default all).
    #[arg(long, value_delimiter = ',')]
    pub roles: Option<Vec<String>>,
    /// Node number embedded in server ids, unique per cluster (node_num).
    #[arg(long)]
    pub node_num: Option<u16>,
    /// Log as JSON lines.
    #[arg(long)]
    pub log_json: bool,
    /// How long shutdown waits for clients to leave, ms.
    #[arg(long, default_value_t = 5000)]
    pub shutdown_grace_ms: u64,
}

pub fn load(args: &ServeArgs) -> anyhow::Result<Config> {
    let mut fig = Figment::from(Serialized::defaults(Config::default()));
    if let Some(path) = &args.config {
        anyhow::ensure!(path.exists(), "config file {} not found", path.display());
        fig = fig.merge(Toml::file(path));
    }
    fig = fig.merge(
        Env::prefixed("MAGPIE_")
            // Variables of other tools share the prefix: the CLI's, and the
            // test suite's `MAGPIE_TEST_*`.
            .filter(|k| !k.as_str().to_ascii_lowercase().starts_with("test_"))
            .split("__")
            .ignore(&["config", "log", "server", "cli_dir", "password"]),
    );
    let mut cfg: Config = fig.extract()?;
    if let Some(v) = &args.data_dir {
        cfg.data_dir = v.clone();
    }
    if let Some(v) = &args.http_listen {
        cfg.http.listen = v.clone();
    }
    if let Some(v) = &args.tcp_listen {
        cfg.tcp.listen = v.clone();
    }
    if let Some(v) = &args.internal_listen {
        cfg.internal.listen = v.clone();
    }
    if let Some(v) = &args.node {
        cfg.node = v.clone();
    }
    if let Some(v) = &args.store {
        cfg.store = v.clone();
    }
    if let Some(v) = &args.state {
        cfg.state = v.clone();
    }
    if let Some(v) = &args.bus {
        cfg.bus = v.clone();
    }
    if let Some(v) = &args.relay {
        cfg.relay = v.clone();
    }
    if let Some(v) = &args.roles {
        cfg.cluster.roles = v.clone();
    }
    if let Some(v) = args.node_num {
        cfg.node_num = v;
    }
    Ok(cfg)
}

fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => {
            let env = format!("MAGPIE_{}", prefix.replace('.', "__").to_uppercase());
            out.push(format!("  {prefix} = {other}    [{env}]"));
        }
    }
}

/// Every configuration key with its default and environment variable, for `--help`.
pub fn keys_help() -> String {
    let mut lines = vec![
        "Configuration keys (TOML key = default [environment variable]); see docs/config.md:"
            .to_string(),
    ];
    if let Ok(v) = serde_json::to_value(Config::default()) {
        flatten("", &v, &mut lines);
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure type is fixed
    fn layers_apply_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "m.toml",
                "node = \"from-file\"\n[http]\nlisten = \"127.0.0.1:1\"\n[session]\nwindow = 7\n",
            )?;
            jail.set_env("MAGPIE_HTTP__LISTEN", "127.0.0.1:2");
            jail.set_env("MAGPIE_INTERNAL__LISTEN", "127.0.0.1:3");
            let args = ServeArgs {
                config: Some("m.toml".into()),
                node: Some("from-flag".into()),
                ..Default::default()
            };
            let cfg = load(&args).map_err(|e| e.to_string())?;
            assert_eq!(cfg.node, "from-flag");
            assert_eq!(cfg.http.listen, "127.0.0.1:2");
            assert_eq!(cfg.internal.listen, "127.0.0.1:3");
            assert_eq!(cfg.session.window, 7);
            assert_eq!(cfg.tcp.listen, "127.0.0.1:8081");
            let flagged = ServeArgs {
                internal_listen: Some(String::new()),
                ..Default::default()
            };
            let cfg = load(&flagged).map_err(|e| e.to_string())?;
            assert_eq!(
                cfg.internal.listen, "",
                "the flag wins over the environment"
            );
            Ok(())
        });
    }

    #[test]
    fn help_lists_every_key() {
        let h = keys_help();
        for key in [
            "http.listen",
            "session.idle_timeout_ms",
            "limits.idempotency_ttl_secs",
            "internal.listen",
            "internal.service_key",
        ] {
            assert!(h.contains(key), "{key} missing from help");
        }
    }
}
