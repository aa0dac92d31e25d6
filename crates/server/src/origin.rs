//! Guards against web pages: a page the user visits may send requests to `127.0.0.1:PORT`
//! (a form post needs no preflight) or, through DNS rebinding, read the answers under a name it
//! controls. Like Ollama (`OLLAMA_ORIGINS`), uma refuses requests whose `Origin` is not a
//! local page or one the user allowed (`--allow-origin`), and, when it listens on loopback only,
//! requests whose `Host` is not a loopback name or one the user allowed (`--allow-host`).
//! Clients that are not browsers send no `Origin` and a loopback `Host`: nothing changes for them.

use axum::http::{header, HeaderMap, StatusCode};

use crate::error::ApiError;

/// What the guard accepts.
#[derive(Clone, Debug, Default)]
pub struct OriginPolicy {
    /// Check `Host` (the server listens on loopback only).
    pub check_host: bool,
    /// More host names to accept (`--allow-host`), without ports.
    pub allowed_hosts: Vec<String>,
    /// More origins to accept (`--allow-origin`): exact `scheme://host[:port]`, or `*` for any.
    pub allowed_origins: Vec<String>,
}

/// Names of this machine's loopback interface as a `Host` or an origin's host.
fn is_loopback_name(host: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "::1") || host.ends_with(".localhost")
}

/// `host[:port]` without the port (`[::1]:8080` → `[::1]`).
fn without_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority.find(']').map_or(authority, |end| &authority[..=end]);
    }
    authority.rsplit_once(':').map_or(authority, |(host, _)| host)
}

impl OriginPolicy {
    /// `Ok` when the request's `Host` and `Origin` pass; else a 403 saying which and how to
    /// allow it.
    pub(crate) fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        if self.check_host {
            let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
            let name = without_port(host).to_ascii_lowercase();
            if !is_loopback_name(&name) && !self.allowed_hosts.contains(&name) {
                return Err(forbidden(format!(
                    "Host {host:?} is not allowed: uma listens on loopback and answers loopback \
                     names only (start it with --allow-host NAME to add one)."
                )));
            }
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("");
            let host = origin.split_once("://").map_or("", |(_, rest)| without_port(rest));
            let allowed = is_loopback_name(&host.to_ascii_lowercase())
                || self.allowed_origins.iter().any(|o| o == "*" || o == origin);
            if !allowed {
                return Err(forbidden(format!(
                    "Origin {origin:?} is not allowed: web pages may call uma only from local \
                     pages (start it with --allow-origin {origin} to allow this one)."
                )));
            }
        }
        Ok(())
    }
}

fn forbidden(message: String) -> ApiError {
    ApiError::refused(StatusCode::FORBIDDEN, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(host: &str, origin: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(origin) = origin {
            headers.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        }
        headers
    }

    #[test]
    fn loopback_hosts_and_local_pages_pass_and_the_rest_is_refused() {
        let policy = OriginPolicy { check_host: true, ..OriginPolicy::default() };
        for host in ["127.0.0.1:8080", "localhost:8080", "[::1]:8080", "LOCALHOST", "a.localhost"] {
            assert!(policy.check(&headers(host, None)).is_ok(), "{host}");
        }
        for host in ["evil.example:8080", "192.168.1.5:8080", "127.0.0.1.evil.example", ""] {
            let error = policy.check(&headers(host, None)).expect_err(host);
            assert_eq!(error.status, StatusCode::FORBIDDEN);
        }
        for origin in ["http://localhost:5173", "http://127.0.0.1:8080", "https://[::1]"] {
            assert!(policy.check(&headers("127.0.0.1:8080", Some(origin))).is_ok(), "{origin}");
        }
        for origin in ["https://evil.example", "null", "http://127.0.0.1.evil.example"] {
            assert!(policy.check(&headers("127.0.0.1:8080", Some(origin))).is_err(), "{origin}");
        }
    }

    #[test]
    fn the_user_can_allow_hosts_and_origins() {
        let policy = OriginPolicy {
            check_host: true,
            allowed_hosts: vec!["box.lan".into()],
            allowed_origins: vec!["https://app.example".into()],
        };
        assert!(policy.check(&headers("box.lan:8080", None)).is_ok());
        assert!(policy.check(&headers("x:1", Some("https://app.example"))).is_err());
        assert!(policy.check(&headers("box.lan", Some("https://app.example"))).is_ok());
        assert!(policy.check(&headers("box.lan", Some("https://other.example"))).is_err());
        // Listening on all interfaces: any Host; the Origin check stays.
        let open = OriginPolicy { allowed_origins: vec!["*".into()], ..OriginPolicy::default() };
        assert!(open.check(&headers("192.168.1.5:8080", Some("https://any.example"))).is_ok());
    }
}
