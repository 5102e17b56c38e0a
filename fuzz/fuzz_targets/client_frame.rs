//! Arbitrary bytes as a client frame (a WebSocket text message or a TCP
//! frame's payload) through `magpie_proto::decode_client`, the one decoder
//! the server's handshake and session use.
//!
//! Checks: no panic; a frame that decodes re-encodes (`ClientFrame::encode`,
//! what the SDK sends) into bytes that decode to the same frame, so the
//! decoder's fast and careful paths and the encoder agree on every frame
//! the fuzzer can reach; a refusal says why.
#![no_main]

use libfuzzer_sys::fuzz_target;
use magpie_proto::decode_client;

fuzz_target!(|data: &[u8]| {
    match decode_client(data) {
        Ok(frame) => {
            let bytes = frame.encode();
            match decode_client(&bytes) {
                Ok(again) => assert_eq!(again, frame, "{}", String::from_utf8_lossy(&bytes)),
                Err(e) => panic!(
                    "re-encoded frame refused: {e:?}: {}",
                    String::from_utf8_lossy(&bytes)
                ),
            }
        }
        Err(e) => assert!(!e.message.is_empty(), "{e:?}"),
    }
});
