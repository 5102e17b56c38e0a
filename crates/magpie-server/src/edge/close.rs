//! Two rules of every HTTP request's way through the edge:
//!
//! - a deadline (`http.request_timeout_ms`) from its headers to its
//!   answer, body included: a body that never comes (shorter than its
//!   `Content-Length`) ends with 408 `request_timeout` instead of holding
//!   the connection and its task forever;
//! - `Connection: close` on refusals of requests with a body.
//!
//! A request refused before its body is read (a missing token, an unknown
//! route, a wrong method) leaves the body on the connection, so the server
//! cannot read the next request from it and closes it after the answer.
//! Saying so lets an HTTP/1 client open a new connection for its next
//! request instead of writing it into one being closed. Any 4xx answer to
//! a request with a body says it: whether the body was read is not known
//! here, and a reconnect after a refusal costs little. (HTTP/2 has
//! no such header and no such problem: each request is its own stream.)

use crate::app::App;
use crate::error::ServerError;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Version, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Duration;

/// Both rules, on every route of `r` (the public and the internal
/// router), inside the guard's (`guarded.rs`): a refusal by the guard
/// closes a connection with a body too, and the deadline's 408 is an
/// access event like any answer.
/// The internal router's requests are recorded but not limited per
/// address: its callers are the deployment's own services, holding the
/// service key.
pub fn guarded(r: Router<App>, app: &App, public: bool) -> Router<App> {
    let r = r.layer(axum::middleware::from_fn_with_state(
        app.clone(),
        request_deadline,
    ));
    let r = if public {
        r.layer(axum::middleware::from_fn_with_state(
            app.clone(),
            super::guarded::guard_request,
        ))
    } else {
        r.layer(axum::middleware::from_fn_with_state(
            app.clone(),
            super::guarded::record_request,
        ))
    };
    r.layer(axum::middleware::from_fn(close_after_refused_bodies))
}

/// Runs the request under the node's deadline.
pub async fn request_deadline(State(app): State<App>, req: Request, next: Next) -> Response {
    let limit = Duration::from_millis(app.cfg.http.request_timeout_ms.max(1));
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => ServerError::TimedOut(format!(
            "the request was not complete within {} ms",
            limit.as_millis()
        ))
        .into_response(),
    }
}

pub async fn close_after_refused_bodies(req: Request, next: Next) -> Response {
    let http1 = matches!(req.version(), Version::HTTP_10 | Version::HTTP_11);
    let has_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0");
    let mut res = next.run(req).await;
    // Refusals are 4xx; a 5xx comes from a handler, which read the body.
    let refused = res.status().is_client_error();
    if http1 && has_body && refused {
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    res
}
