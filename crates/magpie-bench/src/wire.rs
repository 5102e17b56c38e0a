//! The frames the tool speaks, kept cheap: client frames are written
//! straight into a reused buffer, server frames are read into a borrowed
//! struct that names only the fields the tool looks at. On two shared cores
//! every microsecond the tool spends is one the server does not get.
//!
//! The shapes are those of `magpie_proto` (docs/protocol.md §4); the
//! round-trip tests below decode what this module writes with the proto
//! crate itself, so the two cannot drift apart.

use serde::Deserialize;
use std::borrow::Cow;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Bodies are padded with words rather than `x` (`--body-words`; the
/// `search` scenario): set once at start, for the whole run.
static WORDS: AtomicBool = AtomicBool::new(false);

pub fn pad_with_words(on: bool) {
    WORDS.store(on, Ordering::Relaxed);
}

/// The words of padded bodies, most frequent first: English and Chinese,
/// picked with a skew towards the front as in real text (a few words in
/// most messages, most words in few). Nothing here needs JSON escaping.
pub const VOCABULARY: &[&str] = &[
    "the",
    "to",
    "and",
    "you",
    "我们",
    "meeting",
    "今天",
    "time",
    "please",
    "好的",
    "will",
    "send",
    "report",
    "明天",
    "project",
    "会议",
    "check",
    "update",
    "问题",
    "team",
    "review",
    "客户",
    "deploy",
    "release",
    "时间",
    "server",
    "安装",
    "build",
    "test",
    "简单",
    "coffee",
    "lunch",
    "文件",
    "design",
    "budget",
    "合同",
    "weekend",
    "customer",
    "invoice",
    "系统",
    "travel",
    "数据",
    "ticket",
    "部署",
    "dinner",
    "price",
    "价格",
    "schedule",
    "测试",
    "bug",
    "feature",
    "需求",
    "office",
    "北京",
    "上海",
    "contract",
    "market",
    "产品",
    "holiday",
    "birthday",
    "手机",
    "quarter",
    "plan",
    "计划",
    "database",
    "migration",
    "服务器",
    "network",
    "latency",
    "延迟",
    "mobile",
    "android",
    "iphone",
    "版本",
    "launch",
    "发布",
    "sales",
    "销售",
    "training",
    "培训",
    "hiring",
    "招聘",
    "interview",
    "面试",
    "salary",
    "工资",
    "expense",
    "报销",
    "airport",
    "机场",
    "hotel",
    "酒店",
    "weather",
    "天气",
    "football",
    "足球",
    "concert",
    "音乐会",
    "museum",
    "博物馆",
    "tantivy",
    "鲍勃",
    "zebra",
    "长城",
];

/// A cheap, deterministic mix of the numbers given (splitmix64).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The `i`-th word of a body: skewed towards the vocabulary's front.
pub fn word(seed: u64, i: u64) -> &'static str {
    let r = mix(seed ^ mix(i));
    let n = VOCABULARY.len() as u64;
    let (a, b) = (r % n, (r >> 32) % n);
    VOCABULARY[(a * b / n) as usize]
}

/// A server frame, as far as the tool cares.
#[derive(Debug, Deserialize)]
pub struct Frame<'a> {
    #[serde(borrow)]
    pub op: Cow<'a, str>,
    #[serde(default)]
    pub rid: Option<u64>,
    #[serde(default)]
    pub seq: Option<i64>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    pub body: Option<Cow<'a, str>>,
    #[serde(default)]
    pub attempt: Option<u32>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    pub code: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    pub message: Option<Cow<'a, str>>,
    /// A live-room message (`room_msg`).
    #[serde(borrow, default)]
    pub msg: Option<RoomMsg<'a>>,
    #[serde(default)]
    pub shed: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub struct RoomMsg<'a> {
    #[serde(borrow)]
    pub body: Cow<'a, str>,
}

/// `Option<Cow<str>>` copies even under `#[serde(borrow)]` (serde borrows
/// only a bare `Cow`), so the option goes through a borrowing newtype.
fn borrowed<'de: 'a, 'a, D>(d: D) -> Result<Option<Cow<'a, str>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    struct Borrowed<'a>(#[serde(borrow)] Cow<'a, str>);
    Ok(Option::<Borrowed<'a>>::deserialize(d)?.map(|b| b.0))
}

pub fn decode(bytes: &[u8]) -> Option<Frame<'_>> {
    serde_json::from_slice(bytes).ok()
}

impl Frame<'_> {
    /// Says what went wrong, once per kind of error, on stderr: a run
    /// full of errors must not go unexplained.
    pub fn report_error(&self) {
        use std::sync::Mutex;
        static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());
        let code = self.code.as_deref().unwrap_or("?").to_string();
        let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
        if !seen.contains(&code) {
            eprintln!(
                "server error {code}: {}",
                self.message.as_deref().unwrap_or("")
            );
            seen.push(code);
        }
    }
}

/// What the tool puts in a message body: when it was (to be) sent, by whom,
/// and its number from that sender; then padding to the wanted size. Only
/// `[0-9a-z.]`, so it needs no JSON escaping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Nanoseconds since the run's clock started.
    pub at_ns: u64,
    pub sender: u32,
    pub n: u64,
}

impl Stamp {
    pub fn write_body(&self, out: &mut Vec<u8>, size: usize) {
        let start = out.len();
        let _ = write!(out, "{}.{}.{}.", self.at_ns, self.sender, self.n);
        if WORDS.load(Ordering::Relaxed) {
            let seed = (u64::from(self.sender) << 40) ^ self.n;
            let mut i = 0;
            while out.len() - start < size {
                out.push(b' ');
                out.extend_from_slice(word(seed, i).as_bytes());
                i += 1;
            }
            return;
        }
        let written = out.len() - start;
        out.resize(start + size.max(written), b'x');
    }

    pub fn parse(body: &str) -> Option<Stamp> {
        let mut it = body.splitn(4, '.');
        Some(Stamp {
            at_ns: it.next()?.parse().ok()?,
            sender: it.next()?.parse().ok()?,
            n: it.next()?.parse().ok()?,
        })
    }
}

/// Where a message goes.
#[derive(Debug, Clone, Copy)]
pub enum Dest {
    User(i64),
    Group(i64),
}

/// Appends a `send` frame with a fresh client message id.
pub fn send(out: &mut Vec<u8>, rid: u64, dest: Dest, stamp: Stamp, body_size: usize) {
    let mut cmid = [0u8; 36];
    let cmid = uuid::Uuid::now_v7().hyphenated().encode_lower(&mut cmid);
    let _ = match dest {
        Dest::User(u) => write!(
            out,
            r#"{{"op":"send","rid":{rid},"to":{u},"cmid":"{cmid}","body":""#
        ),
        Dest::Group(g) => {
            write!(
                out,
                r#"{{"op":"send","rid":{rid},"group":{g},"cmid":"{cmid}","body":""#
            )
        }
    };
    stamp.write_body(out, body_size);
    out.extend_from_slice(b"\"}");
}

/// Appends an `ack` frame for sequences of one conversation.
pub fn ack(out: &mut Vec<u8>, conv: &str, seqs: &[i64]) {
    let _ = write!(out, r#"{{"op":"ack","conv":"{conv}","seqs":["#);
    for (i, s) in seqs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let _ = write!(out, "{s}");
    }
    out.extend_from_slice(b"]}");
}

pub fn room_join(out: &mut Vec<u8>, rid: u64, room: &str) {
    let _ = write!(out, r#"{{"op":"room_join","rid":{rid},"room":"{room}"}}"#);
}

pub fn room_send(out: &mut Vec<u8>, rid: u64, room: &str, stamp: Stamp, body_size: usize) {
    let _ = write!(
        out,
        r#"{{"op":"room_send","rid":{rid},"room":"{room}","body":""#
    );
    stamp.write_body(out, body_size);
    out.extend_from_slice(b"\"}");
}

pub fn pong(out: &mut Vec<u8>) {
    out.extend_from_slice(br#"{"op":"pong"}"#);
}

pub fn hello(out: &mut Vec<u8>, ticket: &str) {
    let _ = write!(out, r#"{{"op":"hello","ticket":"{ticket}"}}"#);
}

#[cfg(test)]
mod tests {
    use super::*;
    use magpie_proto::{ClientOp, decode_client};

    #[test]
    fn written_frames_are_valid_protocol() {
        let stamp = Stamp {
            at_ns: 123,
            sender: 7,
            n: 9,
        };
        let mut b = Vec::new();
        send(&mut b, 5, Dest::User(2), stamp, 40);
        let f = decode_client(&b).expect("send decodes");
        let ClientOp::Send { to, body, .. } = f.op else {
            panic!("not a send: {f:?}")
        };
        assert_eq!((f.rid, to.0, body.len()), (Some(5), 2, 40));
        assert_eq!(Stamp::parse(&body), Some(stamp));

        b.clear();
        ack(&mut b, "d:1:2", &[3, 4]);
        assert!(
            matches!(decode_client(&b).expect("ack").op, ClientOp::Ack { seqs, .. } if seqs == [3, 4])
        );
        b.clear();
        room_send(&mut b, 1, "r1", stamp, 0);
        assert!(matches!(
            decode_client(&b).expect("room").op,
            ClientOp::RoomSend { .. }
        ));
    }

    #[test]
    fn server_frames_decode_borrowed() {
        let msg = magpie_proto::ServerFrame::Msg {
            msg: magpie_core::Message {
                meta: None,
                trace: None,
                server_id: magpie_core::ServerMsgId(1),
                conv: magpie_core::ConvId::direct(magpie_core::UserId(1), magpie_core::UserId(2)),
                seq: 3,
                from: magpie_core::UserId(1),
                to: magpie_core::UserId(2),
                cmid: magpie_core::ClientMsgId::new_v7(),
                body: "1.2.3.xx".into(),
                persistence: magpie_core::Persistence::Forever,
                sent_at: 0,
                search: false,
            },
            attempt: 1,
        }
        .encode();
        let f = decode(&msg).expect("decodes");
        assert_eq!((f.op.as_ref(), f.seq), ("msg", Some(3)));
        assert_eq!(f.body.as_deref(), Some("1.2.3.xx"));
        assert!(
            matches!(f.body, Some(Cow::Borrowed(_))),
            "no copy of plain strings"
        );
    }
}
