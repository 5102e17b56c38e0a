//! The TCP framing: a 4-byte big-endian length, then that many bytes of
//! UTF-8 JSON (the same frames as WebSocket text messages).
//!
//! A length above the limit cannot be skipped safely (the peer may be
//! misframed), so the decoder fails and the connection is closed after an
//! error frame.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

/// Default limit for frames from clients: 64 KiB.
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024;

/// Limit for frames from the server. Larger than the client limit: a sync
/// or history page carries up to `limits.max_page` messages of up to
/// `max_frame_bytes` each. Clients must accept frames this large.
pub const MAX_SERVER_FRAME: usize = 16 * 1024 * 1024;

/// Decodes frames up to one limit and encodes frames up to another (a
/// server reads small client frames and writes large sync pages).
pub struct TcpCodec {
    read: LengthDelimitedCodec,
    write: LengthDelimitedCodec,
}

fn codec(max_frame: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .big_endian()
        .max_frame_length(max_frame)
        .new_codec()
}

impl TcpCodec {
    /// The same limit both ways.
    pub fn new(max_frame: usize) -> Self {
        Self::with_limits(max_frame, max_frame)
    }

    pub fn with_limits(read_max: usize, write_max: usize) -> Self {
        TcpCodec {
            read: codec(read_max),
            write: codec(write_max),
        }
    }
}

/// Whether a decode error is a frame over the limit (as opposed to an I/O error).
pub fn is_too_large(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::InvalidData
}

impl Decoder for TcpCodec {
    type Item = BytesMut;
    type Error = std::io::Error;
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, std::io::Error> {
        self.read.decode(src)
    }
}

impl Encoder<Bytes> for TcpCodec {
    type Error = std::io::Error;
    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), std::io::Error> {
        self.write.encode(item, dst)
    }
}
