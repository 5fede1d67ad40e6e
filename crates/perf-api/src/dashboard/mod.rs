//! The built-in dashboard: one page at `GET /` and its assets under `/dashboard/assets/`,
//! all compiled into the binary from `assets/` (uPlot vendored in `assets/vendor/uplot/`
//! with its licence), so the page needs nothing from any other host.
//!
//! The page and its assets are served without the API token; the page's own data calls
//! (`/api/performance/health`, `history`, `cache/recommendations`, `pools/recommendations`)
//! carry it. On a 401 the page asks for the token once, in a form, and keeps it in the
//! browser tab's `sessionStorage` (`/#token=…` does the same from a link, and is dropped
//! from the address bar at once).
//!
//! Caching: the page and the dashboard's own script and stylesheet are `no-cache` with a
//! strong `ETag` (their content's hash), so a browser revalidates them and gets a 304 until
//! the binary changes; uPlot's files have its version in their path and are cached for a
//! year as `immutable`.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::api_error::ApiError;

/// The vendored uPlot's version; it is part of the URLs of its files.
pub const UPLOT_VERSION: &str = "1.6.32";

/// The path prefix of the dashboard's assets.
pub const ASSETS_PREFIX: &str = "/dashboard/assets/";

/// What the page may load and connect to: this server only.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

const INDEX: &str = include_str!("../../assets/index.html");

/// One compiled-in file.
#[derive(Debug)]
struct Asset {
    /// Its path under [`ASSETS_PREFIX`].
    path: &'static str,
    body: &'static [u8],
    content_type: &'static str,
    /// Versioned in its path: cached for a year.
    immutable: bool,
    etag: u64,
}

const fn asset(
    path: &'static str,
    body: &'static [u8],
    content_type: &'static str,
    immutable: bool,
) -> Asset {
    Asset {
        path,
        body,
        content_type,
        immutable,
        etag: fnv1a(body),
    }
}

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

const ASSETS: [Asset; 4] = [
    asset(
        "dashboard.js",
        include_bytes!("../../assets/dashboard.js"),
        JAVASCRIPT,
        false,
    ),
    asset(
        "dashboard.css",
        include_bytes!("../../assets/dashboard.css"),
        CSS,
        false,
    ),
    asset(
        "vendor/uplot-1.6.32/uPlot.iife.min.js",
        include_bytes!("../../assets/vendor/uplot/uPlot.iife.min.js"),
        JAVASCRIPT,
        true,
    ),
    asset(
        "vendor/uplot-1.6.32/uPlot.min.css",
        include_bytes!("../../assets/vendor/uplot/uPlot.min.css"),
        CSS,
        true,
    ),
];

const INDEX_ETAG: u64 = fnv1a(INDEX.as_bytes());

/// FNV-1a, 64 bits: the assets' `ETag`s, computed at compile time.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut index = 0;
    while index < bytes.len() {
        // `u64::from` is not callable in a const fn.
        #[allow(clippy::cast_lossless)]
        let byte = bytes[index] as u64;
        hash ^= byte;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        index += 1;
    }
    hash
}

/// The paths of every asset the page loads, under [`ASSETS_PREFIX`].
pub fn asset_paths() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|asset| asset.path)
}

/// `GET /` and `GET /dashboard/assets/{*file}`, merged into [`router`](crate::router).
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/dashboard/assets/{*file}", get(file))
}

async fn index(headers: HeaderMap) -> Response {
    let mut response = respond(&headers, INDEX.as_bytes(), HTML, INDEX_ETAG, false);
    let set = response.headers_mut();
    set.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    set.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

async fn file(Path(path): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().find(|asset| asset.path == path) {
        Some(asset) => respond(
            &headers,
            asset.body,
            asset.content_type,
            asset.etag,
            asset.immutable,
        ),
        None => ApiError::not_found().into_response(),
    }
}

/// The body with its type and cache headers, or a 304 when `If-None-Match` names its tag.
fn respond(
    request: &HeaderMap,
    body: &'static [u8],
    content_type: &'static str,
    etag: u64,
    immutable: bool,
) -> Response {
    let tag = format!("\"{etag:016x}\"");
    let cache_control = if immutable {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let matches = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .any(|candidate| candidate == tag || candidate == "*");
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, content_type)], body).into_response()
    };
    let set = response.headers_mut();
    if let Ok(tag) = HeaderValue::from_str(&tag) {
        set.insert(header::ETAG, tag);
    }
    set.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    set.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_exactly_the_served_assets() {
        let referenced: Vec<&str> = INDEX
            .split(['"', '\''])
            .filter_map(|word| word.strip_prefix(ASSETS_PREFIX))
            .collect();
        let mut served: Vec<&str> = asset_paths().collect();
        let mut sorted = referenced.clone();
        sorted.sort_unstable();
        served.sort_unstable();
        assert_eq!(sorted, served);
    }

    #[test]
    fn the_uplot_paths_carry_its_version() {
        let versioned = format!("vendor/uplot-{UPLOT_VERSION}/");
        for asset in ASSETS.iter().filter(|asset| asset.immutable) {
            assert!(asset.path.starts_with(&versioned), "{}", asset.path);
        }
        let readme = include_str!("../../assets/vendor/uplot/README.md");
        assert!(readme.contains(&format!("`uplot` {UPLOT_VERSION}")));
        let js = std::str::from_utf8(ASSETS[2].body).unwrap();
        assert!(js.contains(&format!("(v{UPLOT_VERSION})")));
    }

    #[test]
    fn etags_follow_the_content() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        // The published FNV-1a 64 test vector.
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        let tags: std::collections::BTreeSet<u64> = ASSETS.iter().map(|asset| asset.etag).collect();
        assert_eq!(tags.len(), ASSETS.len());
    }
}
