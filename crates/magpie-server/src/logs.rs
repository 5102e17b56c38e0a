//! The log filter, changed at run time (`PUT /internal/v1/log`).
//!
//! The binary owns the subscriber (the server is a library: an embedding
//! application or a test may have its own), so it hands over a setter at
//! start-up (`install`); without one, the route answers that levels are
//! not controllable in this process.

use crate::error::{Result, ServerError};
use parking_lot::Mutex;
use std::sync::OnceLock;

type Setter = Box<dyn Fn(&str) -> std::result::Result<(), String> + Send + Sync>;

struct Control {
    set: Setter,
    current: Mutex<String>,
}

static CONTROL: OnceLock<Control> = OnceLock::new();

/// Hands over the process's filter: `initial` as it is now, `set` to
/// replace it (an `EnvFilter` directive string, e.g.
/// `info,magpie_server::conn=debug`). The first call wins.
pub fn install(
    initial: &str,
    set: impl Fn(&str) -> std::result::Result<(), String> + Send + Sync + 'static,
) {
    let _ = CONTROL.set(Control {
        set: Box::new(set),
        current: Mutex::new(initial.to_string()),
    });
}

/// The filter in force, if this process lets it be changed.
pub fn current() -> Option<String> {
    CONTROL.get().map(|c| c.current.lock().clone())
}

/// Replaces the filter; a directive string that does not parse changes
/// nothing.
pub fn set(filter: &str) -> Result<String> {
    let c = CONTROL.get().ok_or_else(|| {
        ServerError::Unavailable("log levels are not controllable in this process".into())
    })?;
    (c.set)(filter).map_err(|e| ServerError::bad_field(format!("filter: {e}")))?;
    *c.current.lock() = filter.to_string();
    tracing::warn!(filter, "log filter changed");
    Ok(filter.to_string())
}
