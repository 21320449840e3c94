//! The origin allowlist: a browser page from a site that is not on the list cannot open a
//! connection (cross-site WebSocket hijacking), even with a user's token.
//!
//! Browsers send the `Origin` header on every WebSocket upgrade and cross-origin request,
//! and a page cannot forge it. A request without one is not from a browser page (the SDK, a
//! bot, `curl`); it is let through, since such a client could send any origin it liked.
//! With no origin configured, every origin is allowed.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The origins browsers may connect from, normalised (lower case, no trailing `/`).
#[derive(Clone, Debug)]
pub(crate) struct AllowedOrigins(Arc<Vec<String>>);

impl AllowedOrigins {
    /// Allows exactly `origins` (such as `https://chat.example.com`); none: any origin.
    pub(crate) fn new(origins: &[String]) -> Self {
        Self(Arc::new(origins.iter().map(|o| normalise(o)).collect()))
    }

    /// Whether a request with this `Origin` header value may go on.
    fn allows(&self, origin: Option<&[u8]>) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let Some(origin) = origin else { return true };
        std::str::from_utf8(origin)
            .map(normalise)
            .is_ok_and(|origin| self.0.contains(&origin))
    }
}

fn normalise(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

/// Middleware: `403 Forbidden` for a request from an origin that is not allowed.
pub(crate) async fn check(
    State(allowed): State<AllowedOrigins>,
    request: Request,
    next: Next,
) -> Response {
    let origin = request.headers().get(header::ORIGIN).map(|v| v.as_bytes());
    if allowed.allows(origin) {
        return next.run(request).await;
    }
    crate::metrics::CONNECTIONS_REFUSED.inc(&["origin"]);
    tracing::info!(
        origin = %String::from_utf8_lossy(origin.unwrap_or_default()),
        "request refused: origin not allowed"
    );
    (
        StatusCode::FORBIDDEN,
        "this origin is not allowed to connect (see --allowed-origin)",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_origins_pass_and_requests_without_one_do() {
        let allowed = AllowedOrigins::new(&["https://Chat.example.com/".to_owned()]);
        assert!(allowed.allows(Some(b"https://chat.example.com")));
        assert!(allowed.allows(Some(b"HTTPS://CHAT.EXAMPLE.COM")));
        assert!(!allowed.allows(Some(b"https://evil.example")));
        assert!(!allowed.allows(Some(b"https://chat.example.com.evil.example")));
        assert!(!allowed.allows(Some(b"null")));
        assert!(!allowed.allows(Some(&[0xff, 0xfe])));
        assert!(allowed.allows(None), "not a browser");
    }

    #[test]
    fn an_empty_list_allows_every_origin() {
        let any = AllowedOrigins::new(&[]);
        assert!(any.allows(Some(b"https://anywhere.example")));
    }
}
