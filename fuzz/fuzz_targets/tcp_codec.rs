//! Arbitrary bytes as a TCP stream through `magpie_proto::TcpCodec` (a
//! 4-byte big-endian length, then the payload), the way the server's TCP
//! transport reads: decode until it needs more bytes or fails; each frame's
//! payload then goes to `decode_client`.
//!
//! The first byte picks how the stream is cut into reads. Checks: the same
//! frames and the same error come out whether the stream arrives at once or
//! in small pieces; every frame is within the limit; a failure is only ever
//! "too large"; encoding the frames again gives back exactly the bytes they
//! were decoded from.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use magpie_proto::codec::is_too_large;
use magpie_proto::{TcpCodec, decode_client};
use tokio_util::codec::{Decoder, Encoder};

/// Small, so the fuzzer reaches the limit.
const MAX: usize = 4096;

/// The frames of `input` fed `chunk` bytes at a time, and whether the
/// decoder failed (it is not called again after, like the server).
fn decode_all(input: &[u8], chunk: usize) -> (Vec<BytesMut>, bool) {
    let mut codec = TcpCodec::new(MAX);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(e) => {
                    assert!(is_too_large(&e), "{e}");
                    return (frames, true);
                }
            }
        }
    }
    (frames, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let whole = decode_all(stream, stream.len().max(1));
    let pieces = decode_all(stream, usize::from(cut % 16) + 1);
    assert_eq!(whole, pieces);
    let (frames, _) = whole;
    let mut codec = TcpCodec::new(MAX);
    let mut again = BytesMut::new();
    for frame in &frames {
        assert!(frame.len() <= MAX);
        let _ = decode_client(frame);
        codec
            .encode(Bytes::copy_from_slice(frame), &mut again)
            .expect("a decoded frame is within the limit");
    }
    assert_eq!(&again[..], &stream[..again.len()]);
});
