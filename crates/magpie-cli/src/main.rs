//! `magpie-cli`: the command-line client. This module owns the argument
//! grammar and the process exit status; `commands` does the work.

mod chat;
mod commands;
mod error;
mod feeds;
mod groups;
mod listen;
mod profile;
mod rooms;
mod search;
mod users;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

#[derive(Debug, Parser)]
#[command(
    name = "magpie-cli",
    version,
    about = "Command-line client for the Magpie messaging server"
)]
pub struct Cli {
    /// Server base URL [default: the profile's server, else http://127.0.0.1:8080]
    #[arg(long, global = true, env = "MAGPIE_SERVER")]
    pub server: Option<String>,
    /// Profile to use (a saved login)
    #[arg(long, global = true, default_value = "default")]
    pub profile: String,
    /// Print results as JSON lines
    #[arg(long, global = true)]
    pub json: bool,
    /// Where profiles are stored [default: <config dir>/magpie-cli]
    #[arg(long, global = true, env = "MAGPIE_CLI_DIR")]
    pub config_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand, PartialEq, Eq)]
pub enum Command {
    /// Create an account
    Register {
        username: String,
        #[arg(long, env = "MAGPIE_PASSWORD", hide_env_values = true)]
        password: String,
    },
    /// Log in and save the tokens in the profile
    Login {
        username: String,
        #[arg(long, env = "MAGPIE_PASSWORD", hide_env_values = true)]
        password: String,
        /// Device name (1-64 of A-Z a-z 0-9 . _ -) [default: the server's "default"]
        #[arg(long)]
        device: Option<String>,
    },
    /// Send a message to a user or a group
    Send {
        /// A user id, a username (`@name` for one that is all digits), or a group `g:<id>`
        to: String,
        /// The message; words are joined with spaces (put text starting with '-' after `--`)
        #[arg(required = true)]
        text: Vec<String>,
        /// A reply to this message (its sequence in the conversation)
        #[arg(long)]
        reply_to: Option<i64>,
    },
    /// Replace the text of one of your messages
    Edit {
        /// The conversation: a user or a group `g:<id>`
        to: String,
        /// The message's sequence
        seq: i64,
        #[arg(required = true)]
        text: Vec<String>,
    },
    /// Recall (unsend) a message: your own, or any as a group's owner or admin
    Recall {
        /// The conversation: a user or a group `g:<id>`
        to: String,
        /// The message's sequence
        seq: i64,
    },
    /// Mute a conversation's notifications (mentions still reach you)
    Mute {
        /// The conversation: a user or a group `g:<id>`
        to: String,
        /// Unmute instead
        #[arg(long)]
        off: bool,
    },
    /// Groups: create, list, members, roles, leave
    Group {
        #[command(subcommand)]
        command: crate::groups::GroupCommand,
    },
    /// Print incoming messages until Ctrl-C (or --count / --timeout-secs)
    Listen {
        /// Socket transport [default: the device's setting]
        #[arg(long, value_enum)]
        transport: Option<TransportArg>,
        /// Stop after this many messages
        #[arg(long)]
        count: Option<u64>,
        /// Stop after this many seconds
        #[arg(long)]
        timeout_secs: Option<u64>,
    },
    /// Join a live room: print its recent and new messages, say something
    Room {
        /// The room's name
        name: String,
        /// Say this once joined
        #[arg(long)]
        say: Option<String>,
        /// Stop after this many new messages
        #[arg(long)]
        count: Option<u64>,
        /// Stop after this many seconds
        #[arg(long)]
        timeout_secs: Option<u64>,
    },
    /// Show a page of a conversation (with a user, or a group `g:<id>`)
    History {
        /// A user id, a username or a group `g:<id>`
        peer: String,
        /// Only messages before this sequence
        #[arg(long)]
        before: Option<i64>,
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Show unread counts
    Unread,
    /// Mark a conversation read up to a sequence
    Read {
        /// A user id, a username or a group `g:<id>`
        peer: String,
        seq: i64,
    },
    /// Follow a user (id or username): their posts come into your home feed
    Follow { user: String },
    /// Stop following a user (id or username)
    Unfollow { user: String },
    /// Show who a user is: id, username, display name (give id or username)
    Whois { user: String },
    /// Set your display name and avatar URL (an empty value clears it)
    SetProfile {
        /// The name others see instead of your username
        #[arg(long, default_value = "")]
        name: String,
        /// An http(s) URL of your picture
        #[arg(long, default_value = "")]
        avatar: String,
    },
    /// Post to your followers; words are joined with spaces
    Post {
        #[arg(required = true)]
        text: Vec<String>,
    },
    /// Show a page of your home feed, newest first
    Feed {
        /// Only posts older than this post id
        #[arg(long)]
        before: Option<i64>,
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Search the messages you may see; words are joined with spaces
    Search {
        #[arg(required = true)]
        text: Vec<String>,
        /// Only messages from this user id
        #[arg(long)]
        from: Option<i64>,
        /// Best match first instead of newest first
        #[arg(long)]
        relevance: bool,
        /// Where the previous page said to go on
        #[arg(long)]
        cursor: Option<String>,
        #[arg(long)]
        limit: Option<usize>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TransportArg {
    Ws,
    Tcp,
}

impl From<TransportArg> for magpie_core::Transport {
    fn from(t: TransportArg) -> Self {
        match t {
            TransportArg::Ws => magpie_core::Transport::Ws,
            TransportArg::Tcp => magpie_core::Transport::Tcp,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    match commands::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            e.report(json);
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("magpie-cli").chain(args.iter().copied()))
    }

    #[test]
    fn global_options_and_defaults() {
        let cli = parse(&["unread"]).unwrap();
        assert_eq!(cli.profile, "default");
        assert!(!cli.json);
        assert_eq!(cli.command, Command::Unread);
        let cli = parse(&[
            "read",
            "7",
            "12",
            "--json",
            "--profile",
            "bob",
            "--server",
            "http://x:1",
        ])
        .unwrap();
        assert!(cli.json);
        assert_eq!(cli.profile, "bob");
        assert_eq!(cli.server.as_deref(), Some("http://x:1"));
        assert_eq!(
            cli.command,
            Command::Read {
                peer: "7".into(),
                seq: 12
            }
        );
    }

    #[test]
    fn send_joins_the_words_and_keeps_flags() {
        let cli = parse(&["send", "2", "hello", "there", "--json"]).unwrap();
        assert!(cli.json, "flags after the text are still flags");
        assert_eq!(
            cli.command,
            Command::Send {
                reply_to: None,
                to: "2".into(),
                text: vec!["hello".into(), "there".into()]
            }
        );
        let cli = parse(&["send", "2", "--", "-1", "is", "negative"]).unwrap();
        assert_eq!(
            cli.command,
            Command::Send {
                reply_to: None,
                to: "2".into(),
                text: vec!["-1".into(), "is".into(), "negative".into()]
            }
        );
        assert!(parse(&["send", "2"]).is_err());
        let cli = parse(&["send", "bob", "hi"]).unwrap();
        assert_eq!(
            cli.command,
            Command::Send {
                reply_to: None,
                to: "bob".into(),
                text: vec!["hi".into()]
            }
        );
    }

    #[test]
    fn listen_and_history_options() {
        let cli = parse(&[
            "listen",
            "--transport",
            "tcp",
            "--count",
            "3",
            "--timeout-secs",
            "9",
        ])
        .unwrap();
        let want = Command::Listen {
            transport: Some(TransportArg::Tcp),
            count: Some(3),
            timeout_secs: Some(9),
        };
        assert_eq!(cli.command, want);
        assert!(parse(&["listen", "--transport", "udp"]).is_err());
        let cli = parse(&["history", "3", "--before", "10", "--limit", "5"]).unwrap();
        assert_eq!(
            cli.command,
            Command::History {
                peer: "3".into(),
                before: Some(10),
                limit: Some(5)
            }
        );
    }

    #[test]
    fn login_options() {
        let cli = parse(&["login", "alice", "--password", "pw", "--device", "phone"]).unwrap();
        let want = Command::Login {
            username: "alice".into(),
            password: "pw".into(),
            device: Some("phone".into()),
        };
        assert_eq!(cli.command, want);
    }

    #[test]
    fn feed_commands() {
        assert_eq!(
            parse(&["follow", "7"]).unwrap().command,
            Command::Follow { user: "7".into() }
        );
        assert_eq!(
            parse(&["unfollow", "7"]).unwrap().command,
            Command::Unfollow { user: "7".into() }
        );
        let post = parse(&["post", "hello", "all"]).unwrap().command;
        assert_eq!(
            post,
            Command::Post {
                text: vec!["hello".into(), "all".into()]
            }
        );
        assert!(parse(&["post"]).is_err());
        let feed = parse(&["feed", "--before", "99", "--limit", "5"])
            .unwrap()
            .command;
        assert_eq!(
            feed,
            Command::Feed {
                before: Some(99),
                limit: Some(5)
            }
        );
        let search = parse(&["search", "安装", "简单", "--relevance"])
            .unwrap()
            .command;
        assert!(matches!(
            search,
            Command::Search { ref text, relevance: true, .. } if text.join(" ") == "安装 简单"
        ));
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
