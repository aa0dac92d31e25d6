//! The web page for people (`GET /`): a single-page app (chat, the server's memory and load,
//! "will it fit?") whose files live in `crates/server/web/` and are compiled into the binary, so
//! it works offline and never loads anything from another site. The page talks only to uma's
//! public API on its own origin: `/v1/models`, `/v1/chat/completions`, `/health` and the plan
//! endpoint of [`plan`].
//!
//! The page holds no secret, so it is served without the API key; every call it makes carries
//! the key the user typed (the API asks for it). Each file is served with its content type, a
//! strict Content-Security-Policy (scripts and styles from this origin only, no inline code,
//! requests to this origin only) and an `ETag` of its content: browsers revalidate
//! (`Cache-Control: no-cache`) and get `304 Not Modified` until the binary changes.

pub(crate) mod plan;

use std::sync::{Arc, OnceLock};

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

use crate::state::AppState;

/// What the page may load and call: its own files and its own origin, nothing inline, no frames,
/// no forms posted anywhere.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; manifest-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One file of the page.
#[derive(Debug)]
pub(crate) struct Asset {
    /// The URL path it is served at.
    pub(crate) path: &'static str,
    pub(crate) content_type: &'static str,
    pub(crate) body: &'static [u8],
}

/// Every file of the page, compiled in.
pub(crate) const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../../web/index.html"),
    },
    Asset {
        path: "/assets/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../web/app.js"),
    },
    Asset {
        path: "/assets/markdown.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../web/markdown.js"),
    },
    Asset {
        path: "/assets/style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../web/style.css"),
    },
    Asset {
        path: "/assets/icon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../../web/icon.svg"),
    },
];

/// The page's routes (no authentication: the files hold no secret), or none with `--no-web`.
pub(crate) fn router(enabled: bool) -> Router<Arc<AppState>> {
    let mut router = Router::new();
    if enabled {
        for (index, asset) in ASSETS.iter().enumerate() {
            router = router.route(asset.path, get(move |request: Request| serve(index, request)));
        }
    }
    router
}

/// The `ETag` of each asset: a quoted prefix of the SHA-256 of its bytes, computed once.
fn etags() -> &'static [HeaderValue] {
    static ETAGS: OnceLock<Vec<HeaderValue>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|asset| {
                let digest = Sha256::digest(asset.body);
                let hex: String = digest[..12].iter().map(|byte| format!("{byte:02x}")).collect();
                HeaderValue::from_str(&format!("\"{hex}\"")).expect("hex digits are a header value")
            })
            .collect()
    })
}

/// Whether `If-None-Match` names `etag` (or `*`): the browser's copy is current.
fn matches_etag(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let Some(etag) = etag.to_str().ok() else { return false };
    headers.get_all(header::IF_NONE_MATCH).iter().filter_map(|value| value.to_str().ok()).any(
        |list| {
            list.split(',')
                .map(str::trim)
                .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
        },
    )
}

async fn serve(index: usize, request: Request) -> Response {
    let (Some(asset), Some(etag)) = (ASSETS.get(index), etags().get(index)) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let fresh = matches_etag(request.headers(), etag);
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type))], asset.body)
            .into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, etag.clone());
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers
        .insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    headers.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    response
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn etags_are_distinct_quoted_content_hashes() {
        let tags = etags();
        assert_eq!(tags.len(), ASSETS.len());
        for tag in tags {
            let text = tag.to_str().unwrap();
            assert!(text.len() == 26 && text.starts_with('"') && text.ends_with('"'), "{text}");
        }
        let mut unique: Vec<_> = tags.iter().collect();
        unique.dedup();
        assert_eq!(unique.len(), ASSETS.len());
    }

    #[test]
    fn if_none_match_lists_and_weak_tags_match() {
        let etag = HeaderValue::from_static("\"abc\"");
        let mut headers = HeaderMap::new();
        assert!(!matches_etag(&headers, &etag));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"x\", W/\"abc\""));
        assert!(matches_etag(&headers, &etag));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"abcd\""));
        assert!(!matches_etag(&headers, &etag));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(matches_etag(&headers, &etag));
    }

    #[test]
    fn the_page_has_no_inline_code_and_loads_only_its_own_files() {
        let html = std::str::from_utf8(ASSETS[0].body).unwrap();
        // Inline scripts, inline handlers and styles would be blocked by the policy anyway:
        // the page must not depend on them.
        assert!(!html.contains("<script>") && !html.contains(" style="), "inline code");
        assert!(!html.to_ascii_lowercase().contains(" onclick="), "inline handlers");
        for url in ["http://", "https://", "//"] {
            let outside = html.match_indices(url).any(|(at, _)| {
                let before = &html[..at];
                before.ends_with("src=\"") || before.ends_with("href=\"")
            });
            assert!(!outside, "{url} in a src or href");
        }
        for asset in ASSETS {
            let text = String::from_utf8_lossy(asset.body);
            assert!(!text.contains("innerHTML"), "{} sets innerHTML", asset.path);
            assert!(!text.contains("eval("), "{} calls eval", asset.path);
        }
    }
}
