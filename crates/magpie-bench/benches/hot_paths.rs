//! Micro-benchmarks of the pure functions on the message path (`cargo bench
//! -p magpie-bench`): frame decoding and encoding, id allocation. Whole
//! server figures come from the `magpie-bench` tool (docs/performance.md).

use magpie_core::{ClientMsgId, ConvId, Message, MsgIdGen, Persistence, ServerMsgId, UserId};
use magpie_proto::{ClientFrame, ClientOp, ServerFrame, decode_client};

fn main() {
    divan::main();
}

fn message(body: usize) -> Message {
    Message {
        meta: None,
        trace: None,
        server_id: ServerMsgId(1 << 40),
        conv: ConvId::direct(UserId(1001), UserId(1002)),
        seq: 123_456,
        from: UserId(1001),
        to: UserId(1002),
        cmid: ClientMsgId::new_v7(),
        body: "x".repeat(body),
        persistence: Persistence::Forever,
        sent_at: 1_764_000_000_000,
        search: true,
    }
}

fn send_frame() -> Vec<u8> {
    ClientFrame {
        rid: Some(42),
        op: ClientOp::Send {
            reply_to: None,
            recall: None,
            mentions: Vec::new(),
            mention_all: false,
            edit: None,
            traceparent: None,
            sample: false,
            to: UserId(1002),
            cmid: ClientMsgId::new_v7(),
            body: "x".repeat(64),
            persistence: None,
            group: None,
            chain: None,
        },
    }
    .encode()
}

#[divan::bench]
fn decode_send(b: divan::Bencher) {
    let bytes = send_frame();
    b.bench(|| decode_client(divan::black_box(&bytes)));
}

#[divan::bench]
fn decode_ack(b: divan::Bencher) {
    let bytes = br#"{"op":"ack","conv":"d:1001:1002","seqs":[1,2,3,4,5,6,7,8]}"#;
    b.bench(|| decode_client(divan::black_box(bytes)));
}

#[divan::bench]
fn encode_push(b: divan::Bencher) {
    let msg = message(64);
    b.bench(|| {
        ServerFrame::Msg {
            msg: divan::black_box(&msg).clone(),
            attempt: 1,
        }
        .encode()
    });
}

#[divan::bench]
fn encode_sent(b: divan::Bencher) {
    let msg = message(0);
    b.bench(|| {
        ServerFrame::Sent {
            rid: Some(42),
            cmid: msg.cmid,
            server_id: msg.server_id,
            conv: msg.conv.clone(),
            seq: msg.seq,
            sent_at: msg.sent_at,
            duplicate: false,
        }
        .encode()
    });
}

#[divan::bench]
fn server_id(b: divan::Bencher) {
    let ids = MsgIdGen::new(1);
    b.bench(|| ids.next());
}

#[divan::bench]
fn direct_conv_id(b: divan::Bencher) {
    b.bench(|| {
        ConvId::direct(
            divan::black_box(UserId(1002)),
            divan::black_box(UserId(1001)),
        )
    });
}

/// One bus event for a send batch of 256 messages, written and read back:
/// what the publish stage and each consuming worker pay per batch.
#[divan::bench]
fn batch_event_round_trip(b: divan::Bencher) {
    let event = magpie_core::BusEvent::Messages {
        msgs: (0..256).map(|_| message(64)).collect(),
    };
    let id = magpie_core::EventId::Messages {
        first: magpie_core::ServerMsgId(1),
        count: 256,
    };
    b.bench(|| {
        let env = magpie_core::Envelope::seal(divan::black_box(&event), &id).expect("encodes");
        magpie_core::Envelope::open(&env.payload).expect("decodes")
    });
}

/// What each consuming worker pays to open that batch event, and what it
/// paid with serde's derive for the internally tagged enum (which buffers
/// the whole event before reading the variant).
#[divan::bench(args = ["open", "derive"])]
fn batch_event_open(b: divan::Bencher, how: &str) {
    let event = magpie_core::BusEvent::Messages {
        msgs: (0..256).map(|_| message(64)).collect(),
    };
    let payload = serde_json::to_vec(&event).expect("encodes");
    b.bench(|| match how {
        "open" => magpie_core::Envelope::open(divan::black_box(&payload)).expect("decodes"),
        _ => serde_json::from_slice::<magpie_core::BusEvent>(divan::black_box(&payload))
            .expect("decodes"),
    });
}

/// Fan-out planning of the broadcast path: the members of a super group
/// connected to this node, from the local index (10,000 of them here).
#[divan::bench]
fn supergroup_local_members(b: divan::Bencher) {
    let index = magpie_server::services::delivery::group_index::GroupIndex::default();
    let g = magpie_core::GroupId(7);
    for u in 1..=10_000 {
        index.open(UserId(u));
        index.add_groups(UserId(u), vec![g]);
    }
    b.bench(|| index.users(divan::black_box(g)).len());
}
