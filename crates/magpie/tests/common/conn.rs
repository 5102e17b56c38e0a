//! Raw client connections of the black-box harness, on either transport:
//! raw so tests see exactly what is on the wire.

use super::{WAIT, frame_rid};
use futures_util::{SinkExt, StreamExt};
use magpie_core::{ClientMsgId, ConvId, Seq, UserId};
use magpie_proto::http::ConnectResponse;
use magpie_proto::{ClientFrame, ClientOp, ServerFrame, TcpCodec};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMsg;
use tokio_util::codec::Framed;

pub enum Wire {
    Ws(tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>),
    Tcp(Framed<TcpStream, TcpCodec>),
}

/// A raw client connection. Frames that arrive while waiting for a reply
/// are kept in `backlog`, so pushes are never lost to a test.
pub struct Conn {
    pub wire: Wire,
    pub backlog: VecDeque<ServerFrame>,
    next_rid: u64,
}

impl Conn {
    pub async fn open(c: &ConnectResponse) -> Conn {
        let wire = match c.transport {
            magpie_core::Transport::Ws => Wire::Ws(
                tokio_tungstenite::connect_async(c.address.as_str())
                    .await
                    .unwrap()
                    .0,
            ),
            magpie_core::Transport::Tcp => {
                let s = TcpStream::connect(c.address.as_str()).await.unwrap();
                Wire::Tcp(Framed::new(s, TcpCodec::new(1 << 20)))
            }
        };
        Conn {
            wire,
            backlog: VecDeque::new(),
            next_rid: 1,
        }
    }

    /// Opens a connection on ticket `c` and says `hello`: the answer must be
    /// a welcome.
    pub async fn hello(c: ConnectResponse) -> Conn {
        let mut conn = Conn::open(&c).await;
        conn.send_op(None, ClientOp::Hello { ticket: c.ticket })
            .await;
        match conn.next().await {
            ServerFrame::Welcome { .. } => conn,
            other => panic!("expected welcome, got {other:?}"),
        }
    }

    pub async fn send_raw(&mut self, bytes: Vec<u8>) {
        match &mut self.wire {
            Wire::Ws(ws) => ws.send(WsMsg::Binary(bytes.into())).await.unwrap(),
            Wire::Tcp(t) => t.send(bytes::Bytes::from(bytes)).await.unwrap(),
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        match &mut self.wire {
            Wire::Ws(ws) => ws.send(WsMsg::Text(text.to_string().into())).await.unwrap(),
            Wire::Tcp(t) => t
                .send(bytes::Bytes::from(text.as_bytes().to_vec()))
                .await
                .unwrap(),
        }
    }

    pub async fn send_op(&mut self, rid: Option<u64>, op: ClientOp) {
        self.send_raw(ClientFrame { rid, op }.encode()).await;
    }

    /// The next frame from the wire; `None` when the connection closed.
    pub async fn recv(&mut self, wait: Duration) -> Option<ServerFrame> {
        self.try_recv(wait)
            .await
            .expect("timed out waiting for a frame")
    }

    /// Like `recv`, but `Err` on timeout instead of panicking.
    pub async fn try_recv(
        &mut self,
        wait: Duration,
    ) -> Result<Option<ServerFrame>, tokio::time::error::Elapsed> {
        let fut = async {
            loop {
                match &mut self.wire {
                    Wire::Ws(ws) => match ws.next().await {
                        Some(Ok(WsMsg::Text(t))) => {
                            return Some(ServerFrame::decode(t.as_bytes()).unwrap());
                        }
                        Some(Ok(WsMsg::Binary(b))) => {
                            return Some(ServerFrame::decode(&b).unwrap());
                        }
                        Some(Ok(WsMsg::Close(_))) | None | Some(Err(_)) => return None,
                        Some(Ok(_)) => continue,
                    },
                    Wire::Tcp(t) => match t.next().await {
                        Some(Ok(b)) => return Some(ServerFrame::decode(&b).unwrap()),
                        _ => return None,
                    },
                }
            }
        };
        tokio::time::timeout(wait, fut).await
    }

    /// The next frame other than pings (answered), backlog first.
    pub async fn next(&mut self) -> ServerFrame {
        if let Some(f) = self.backlog.pop_front() {
            return f;
        }
        loop {
            match self.recv(WAIT).await.expect("connection closed") {
                ServerFrame::Ping => self.send_op(None, ClientOp::Pong).await,
                f => return f,
            }
        }
    }

    /// Sends a request and waits for the frame that answers its rid.
    pub async fn request(&mut self, op: ClientOp) -> ServerFrame {
        let rid = self.next_rid;
        self.next_rid += 1;
        self.send_op(Some(rid), op).await;
        loop {
            let f = match self.recv(WAIT).await.expect("connection closed") {
                ServerFrame::Ping => {
                    self.send_op(None, ClientOp::Pong).await;
                    continue;
                }
                f => f,
            };
            if frame_rid(&f) == Some(rid) {
                return f;
            }
            self.backlog.push_back(f);
        }
    }

    pub async fn send_msg(&mut self, to: UserId, body: &str) -> ServerFrame {
        self.request(ClientOp::Send {
            reply_to: None,
            recall: None,
            mentions: Vec::new(),
            mention_all: false,
            edit: None,
            traceparent: None,
            sample: false,
            to,
            cmid: ClientMsgId::new_v7(),
            body: body.into(),
            persistence: None,
            group: None,
            chain: None,
        })
        .await
    }

    pub async fn send_group(&mut self, group: i64, body: &str) -> ServerFrame {
        self.request(ClientOp::Send {
            reply_to: None,
            recall: None,
            mentions: Vec::new(),
            mention_all: false,
            edit: None,
            traceparent: None,
            sample: false,
            to: UserId(0),
            cmid: ClientMsgId::new_v7(),
            body: body.into(),
            persistence: None,
            group: Some(magpie_core::GroupId(group)),
            chain: None,
        })
        .await
    }

    /// The next pushed message, acknowledged.
    pub async fn expect_msg(&mut self) -> magpie_core::Message {
        loop {
            if let ServerFrame::Msg { msg, .. } = self.next().await {
                self.ack(&msg).await;
                return msg;
            }
        }
    }

    /// Marks `conv` read up to `seq` over the socket; the answer.
    pub async fn read(&mut self, conv: &ConvId, seq: Seq) -> ServerFrame {
        let conv = conv.clone();
        self.request(ClientOp::Read { conv, seq }).await
    }

    /// Acknowledges the delivery of `msg`.
    pub async fn ack(&mut self, msg: &magpie_core::Message) {
        let ack = ClientOp::Ack {
            conv: msg.conv.clone(),
            seqs: vec![msg.seq],
        };
        self.send_op(None, ack).await;
    }

    /// Every message of `conv` after `from`, synced page by page; asserts
    /// that the sequences have no gap.
    pub async fn sync_all(&mut self, conv: &ConvId, from: Seq) -> Vec<magpie_core::Message> {
        let (mut last, mut got) = (from, Vec::new());
        loop {
            let convs = self.sync(&[(conv.clone(), last)], 200).await;
            let Some(c) = convs.into_iter().find(|c| &c.conv == conv) else {
                return got;
            };
            for m in c.messages {
                assert_eq!(m.seq, last + 1, "in order, no gap");
                last = m.seq;
                got.push(m);
            }
            if !c.more {
                return got;
            }
        }
    }

    /// The next frame matching `pred`, skipping others.
    pub async fn expect(&mut self, pred: impl Fn(&ServerFrame) -> bool) -> ServerFrame {
        loop {
            let f = self.next().await;
            if pred(&f) {
                return f;
            }
        }
    }

    pub async fn sync(
        &mut self,
        convs: &[(ConvId, Seq)],
        limit: usize,
    ) -> Vec<magpie_proto::SyncConv> {
        let op = ClientOp::Sync {
            convs: convs.iter().cloned().collect(),
            limit: Some(limit),
        };
        match self.request(op).await {
            ServerFrame::SyncResult { convs, .. } => convs,
            other => panic!("expected sync_result, got {other:?}"),
        }
    }

    /// After a fatal error on a WebSocket: the `error` frame (`want`,
    /// fatal) must come before the close frame; returns the close frame's
    /// code and reason.
    pub async fn ws_fatal_close(&mut self, want: magpie_proto::ErrorCode) -> (u16, String) {
        let Wire::Ws(ws) = &mut self.wire else {
            panic!("not a WebSocket connection")
        };
        let mut saw_error = false;
        let close = loop {
            let next = tokio::time::timeout(WAIT, ws.next())
                .await
                .expect("timed out waiting for the close frame");
            match next {
                Some(Ok(WsMsg::Text(t))) => {
                    if let ServerFrame::Error { code, fatal, .. } =
                        ServerFrame::decode(t.as_bytes()).unwrap()
                    {
                        assert_eq!((code, fatal), (want, true));
                        saw_error = true;
                    }
                }
                Some(Ok(WsMsg::Close(cf))) => break cf,
                Some(Ok(_)) => {}
                other => panic!("the connection ended without a close frame: {other:?}"),
            }
        };
        assert!(saw_error, "no {want:?} error frame before the close");
        let cf = close.expect("a close frame with a code");
        (u16::from(cf.code), cf.reason.to_string())
    }
}
