//! The console: the admin and playground web UI, compiled into the binary.
//!
//! The files under `console/` are plain ES modules, CSS and one HTML page, embedded with
//! `include_bytes!` so that `cargo build` alone builds the UI (no Node toolchain) and an
//! air-gapped site serves it with nothing to fetch. The page talks only to the documented API.
//!
//! Each file is prepared once, at its first request: gzip-compressed (the page must stay under
//! 250 KB on the wire) and given an `ETag` from its bytes, so a browser revalidates with a 304
//! instead of downloading again. `index.html` gets `<base href>` from
//! `[server].public_base_path`, which makes every relative URL in the console (assets, modules,
//! API calls) work under a reverse proxy's path prefix, whether the proxy strips it or not.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::OnceLock;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use sha2::{Digest as _, Sha256};

use crate::http::{Response, response};

/// The strict policy of issue 20: scripts, styles and connections from this origin only, no
/// inline script or style, never framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'self'; form-action 'self'; \
     frame-ancestors 'none'";

struct File {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! files {
    ($( $name:literal => $content_type:expr ),* $(,)?) => {
        &[$( File {
            name: $name,
            content_type: $content_type,
            bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/console/", $name)),
        } ),*]
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the console. `index.html` is the page; the rest is served under `/console/`.
const FILES: &[File] = files![
    "index.html" => "text/html; charset=utf-8",
    "app.css" => "text/css; charset=utf-8",
    "app.js" => JS,
    "api.js" => JS,
    "dom.js" => JS,
    "session.js" => JS,
    "sse.js" => JS,
    "chart.js" => JS,
    "pages/overview.js" => JS,
    "pages/tenants.js" => JS,
    "pages/keys.js" => JS,
    "pages/playground.js" => JS,
    "pages/requests.js" => JS,
    "pages/agents.js" => JS,
    "pages/knowledge.js" => JS,
    "pages/deployments.js" => JS,
    "pages/providers.js" => JS,
    "favicon.svg" => "image/svg+xml",
];

const INDEX: &str = "index.html";

/// One file as it is served.
struct Prepared {
    content_type: &'static str,
    plain: Bytes,
    /// `None` when compression would not make it smaller.
    gzip: Option<Bytes>,
    etag: HeaderValue,
}

impl Prepared {
    fn new(content_type: &'static str, plain: Vec<u8>) -> Prepared {
        let digest = Sha256::digest(&plain);
        let etag = HeaderValue::from_str(&format!("\"{}\"", hex::encode(&digest[..12])))
            .unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
        let gzip = gzip(&plain).filter(|packed| packed.len() < plain.len()).map(Bytes::from);
        Prepared { content_type, plain: Bytes::from(plain), gzip, etag }
    }
}

fn gzip(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).ok()?;
    encoder.finish().ok()
}

/// The console's files, prepared on first use.
pub struct Console {
    base_path: String,
    prepared: OnceLock<HashMap<&'static str, Prepared>>,
}

impl Console {
    /// `base_path`: `[server].public_base_path`, `""` or `/prefix` without a trailing slash.
    pub fn new(base_path: &str) -> Console {
        Console { base_path: base_path.trim_end_matches('/').to_string(), prepared: OnceLock::new() }
    }

    /// `[server].public_base_path`, fixed for the process's life (a `[server]` change needs a
    /// restart), so requests read it here rather than from the swappable config.
    pub fn base_path(&self) -> &str {
        &self.base_path
    }

    fn prepared(&self) -> &HashMap<&'static str, Prepared> {
        self.prepared.get_or_init(|| {
            FILES
                .iter()
                .map(|file| {
                    let bytes = if file.name == INDEX { self.index() } else { file.bytes.to_vec() };
                    (file.name, Prepared::new(file.content_type, bytes))
                })
                .collect()
        })
    }

    /// The page with its `<base href>`: the one place the prefix is written.
    fn index(&self) -> Vec<u8> {
        let page = FILES.iter().find(|file| file.name == INDEX).map(|file| file.bytes).unwrap_or_default();
        let page = String::from_utf8_lossy(page);
        let base = format!("<base href=\"{}/\">", html_attribute(&self.base_path));
        page.replacen("<base href=\"/\">", &base, 1).into_bytes()
    }

    /// The page (`name` = `None`) or one of its files; `None` when there is no such file.
    pub fn serve(&self, name: Option<&str>, request_headers: &HeaderMap) -> Option<Response> {
        // The page is only served as the page: `/console/index.html` would be a second URL for
        // it, where its relative links would not resolve.
        let name = match name {
            None => INDEX,
            Some(INDEX) => return None,
            Some(name) => name,
        };
        let file = self.prepared().get(name)?;
        let headers_of = |response: &mut Response| {
            let headers = response.headers_mut();
            headers.insert(header::ETAG, file.etag.clone());
            // Revalidate every time: a 304 costs a round trip and no bytes, and an upgraded
            // binary's console is picked up at once.
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
            headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
            headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
            headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
            headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        };
        if etag_matches(request_headers, &file.etag) {
            let mut not_modified = http::Response::new(response::empty());
            *not_modified.status_mut() = StatusCode::NOT_MODIFIED;
            headers_of(&mut not_modified);
            return Some(not_modified);
        }
        let (body, gzipped) = match &file.gzip {
            Some(packed) if accepts_gzip(request_headers) => (packed.clone(), true),
            _ => (file.plain.clone(), false),
        };
        let mut ok = http::Response::new(response::full(body));
        headers_of(&mut ok);
        let headers = ok.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(file.content_type));
        if gzipped {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        Some(ok)
    }
}

fn html_attribute(text: &str) -> String {
    text.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;")
}

fn etag_matches(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    headers.get_all(header::IF_NONE_MATCH).iter().filter_map(|value| value.to_str().ok()).any(|value| {
        value
            .split(',')
            .map(|tag| tag.trim().trim_start_matches("W/"))
            .any(|tag| tag == "*" || tag.as_bytes() == etag.as_bytes())
    })
}

/// Whether `Accept-Encoding` allows gzip (a `q=0` refuses it).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT_ENCODING).iter().filter_map(|value| value.to_str().ok()).any(|value| {
        value.split(',').any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|param| param.replace(' ', "").eq_ignore_ascii_case("q=0"));
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn every_file_is_served_and_the_page_gets_its_base() {
        let console = Console::new("/ares/");
        for file in FILES.iter().filter(|file| file.name != INDEX) {
            let served = console.serve(Some(file.name), &HeaderMap::new()).expect(file.name);
            assert_eq!(served.status(), StatusCode::OK, "{}", file.name);
        }
        let page = console.prepared().get(INDEX).unwrap();
        assert!(String::from_utf8_lossy(&page.plain).contains("<base href=\"/ares/\">"));
        assert!(console.serve(Some("index.html"), &HeaderMap::new()).is_none());
        assert!(console.serve(Some("nope.js"), &HeaderMap::new()).is_none());
    }

    #[test]
    fn gzip_is_sent_only_when_accepted_and_etags_revalidate() {
        let console = Console::new("");
        let plain = console.serve(None, &HeaderMap::new()).unwrap();
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        let packed = console.serve(None, &headers(&[("accept-encoding", "br, gzip;q=0.8")])).unwrap();
        assert_eq!(packed.headers()[header::CONTENT_ENCODING], "gzip");
        let refused = console.serve(None, &headers(&[("accept-encoding", "gzip;q=0, br")])).unwrap();
        assert!(refused.headers().get(header::CONTENT_ENCODING).is_none());
        let etag = plain.headers()[header::ETAG].to_str().unwrap().to_string();
        let mut again = HeaderMap::new();
        again.insert(header::IF_NONE_MATCH, HeaderValue::from_str(&format!("W/{etag}")).unwrap());
        assert_eq!(console.serve(None, &again).unwrap().status(), StatusCode::NOT_MODIFIED);
    }
}
