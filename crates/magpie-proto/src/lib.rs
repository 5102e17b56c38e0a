//! Magpie's wire formats: the WebSocket/TCP frames, the TCP length-prefixed
//! codec, the HTTP request and response bodies, and the error codes.
//!
//! Invariant: this is the only crate that knows how bytes on the wire look.
//! The server and the SDK both use it, so they cannot drift apart.

pub mod codec;
mod decode;
pub mod errors;
pub mod frames;
pub mod http;
pub mod search;

pub use codec::{DEFAULT_MAX_FRAME, MAX_SERVER_FRAME, TcpCodec};
pub use errors::{ErrorBody, ErrorCode};
pub use frames::{
    ClientFrame, ClientOp, ConvSync, DecodeError, ServerFrame, SyncConv, UnreadConv, WireMessage,
    decode_client, encode_push,
};
