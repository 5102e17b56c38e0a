//! Owns the CLI's error type and how errors are shown: `error: <code>:
//! <message>` on stderr, plus the JSON error body on stdout with `--json`
//! (so scripts reading stdout see the failure in-band).

use magpie_sdk::SdkError;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    pub code: String,
    pub message: String,
    pub retryable: bool,
}

impl CliError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        CliError {
            code: code.to_string(),
            message: message.into(),
            retryable: false,
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new("usage", message)
    }

    pub fn io(path: &Path, e: std::io::Error) -> Self {
        Self::new("io", format!("{}: {e}", path.display()))
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"error": {"code": self.code, "message": self.message, "retryable": self.retryable}})
    }

    pub fn report(&self, json: bool) {
        eprintln!("error: {}: {}", self.code, self.message);
        if json {
            println!("{}", self.to_json());
        }
    }
}

impl From<SdkError> for CliError {
    fn from(e: SdkError) -> Self {
        CliError {
            code: e.code_str().to_string(),
            message: e.message(),
            retryable: e.is_retryable(),
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use magpie_proto::ErrorCode;

    #[test]
    fn sdk_errors_keep_their_code() {
        let e: CliError = SdkError::Server {
            code: ErrorCode::UnknownRecipient,
            message: "no user 9".into(),
            status: Some(404),
        }
        .into();
        assert_eq!(e.to_string(), "unknown_recipient: no user 9");
        assert_eq!(e.to_json()["error"]["code"], "unknown_recipient");
        let e: CliError = SdkError::Timeout.into();
        assert_eq!((e.code.as_str(), e.retryable), ("timeout", true));
    }
}
