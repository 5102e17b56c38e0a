//! Serde for the values that travel as strings (`ConvId`, `DeviceId`,
//! `ServerMsgId`, `ClientMsgId`, `Persistence`): written with their
//! `Display`, read from the borrowed text. serde's `try_from = "String"` /
//! `into = "String"` made a `String` for every such field of every message,
//! both ways (four per message per push frame and bus event;
//! docs/performance.md, "The store's key order, the release profile and
//! the decoders").
//!
//! Invariant: the JSON is the same as before — a string holding the value's
//! `Display` form — and what a value accepts is its `from_text`.

use serde::de::{self, Visitor};
use std::fmt;
use std::marker::PhantomData;

/// A value with a text form.
pub(crate) trait TextForm: Sized + fmt::Display {
    /// What the value is, for serde's "expected …" errors.
    const EXPECTING: &'static str;
    type Error: fmt::Display;
    /// Parses and checks the text.
    fn from_text(s: &str) -> Result<Self, Self::Error>;
    /// The same from an owned string (a JSON string with escapes decodes to
    /// one); a value that keeps its text may keep this one.
    fn from_string(s: String) -> Result<Self, Self::Error> {
        Self::from_text(&s)
    }
}

/// `Serialize` and `Deserialize` of a [`TextForm`] type.
macro_rules! text_serde {
    ($t:ty) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_str($crate::text_form::Text::<$t>::new())
            }
        }
    };
}
pub(crate) use text_serde;

/// The visitor: borrowed text is parsed where it lies.
pub(crate) struct Text<T>(PhantomData<T>);

impl<T> Text<T> {
    pub(crate) fn new() -> Self {
        Text(PhantomData)
    }
}

impl<T: TextForm> Visitor<'_> for Text<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(T::EXPECTING)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
        T::from_text(s).map_err(E::custom)
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<T, E> {
        T::from_string(s).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use crate::{ClientMsgId, ConvId, DeviceId, Persistence, ServerMsgId, UserId};

    /// Each type writes the same JSON string as before and reads it back,
    /// from borrowed text and from text with escapes alike.
    #[test]
    fn strings_in_and_out() {
        let conv = ConvId::direct(UserId(3), UserId(12));
        assert_eq!(serde_json::to_string(&conv).expect("conv"), r#""d:3:12""#);
        let back: ConvId = serde_json::from_str(r#""d:3:\u0031\u0032""#).expect("escaped");
        assert_eq!(back, conv);
        let id = ServerMsgId(1234567890123);
        assert_eq!(
            serde_json::to_string(&id).expect("id"),
            r#""1234567890123""#
        );
        assert_eq!(
            serde_json::from_str::<ServerMsgId>(r#""1234567890123""#).expect("id"),
            id
        );
        let cmid = ClientMsgId::new_v7();
        let text = serde_json::to_string(&cmid).expect("cmid");
        assert_eq!(text, format!("\"{}\"", cmid.0.hyphenated()));
        assert_eq!(
            serde_json::from_str::<ClientMsgId>(&text).expect("cmid"),
            cmid
        );
        let p = Persistence::Days(3);
        assert_eq!(serde_json::to_string(&p).expect("p"), r#""days:3""#);
        assert_eq!(
            serde_json::from_str::<Persistence>(r#""days:3""#).expect("p"),
            p
        );
        let d: DeviceId = serde_json::from_str(r#""phone""#).expect("device");
        assert_eq!(d.as_str(), "phone");
    }

    /// What a type refuses, it refuses with its own reason; a value of
    /// another JSON type is refused too.
    #[test]
    fn refusals() {
        let err = serde_json::from_str::<ConvId>(r#""d:2:1""#).expect_err("order");
        assert!(err.to_string().contains("invalid conversation id"), "{err}");
        assert!(serde_json::from_str::<DeviceId>(r#""a b""#).is_err());
        assert!(serde_json::from_str::<ServerMsgId>(r#""12x""#).is_err());
        assert!(serde_json::from_str::<ServerMsgId>("12").is_err());
        assert!(serde_json::from_str::<ClientMsgId>(r#""not-a-uuid""#).is_err());
        assert!(serde_json::from_str::<Persistence>(r#""days:0""#).is_err());
    }
}
