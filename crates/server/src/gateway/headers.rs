//! Header rules of a proxy: hop-by-hop headers dropped both ways, `X-Forwarded-*` added,
//! W3C `traceparent` propagated (or generated).

use std::net::IpAddr;

use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Hop-by-hop headers (RFC 9110 §7.6.1, plus the legacy `Proxy-Connection` and
/// `Keep-Alive`): they describe one connection and are never forwarded.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// `traceparent` (W3C Trace Context).
pub(super) const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// `x-forwarded-for`.
pub(super) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `x-forwarded-proto`.
pub(super) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Removes the hop-by-hop headers, `Upgrade`, and every header the `Connection` header
/// names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
}

/// The headers sent upstream for a client's request: its end-to-end headers without `Host`
/// (the pool's connection sets the upstream's), `X-Forwarded-For` with the peer appended,
/// `X-Forwarded-Proto` kept or set to `http`, and `traceparent` — the client's when it is
/// valid, a new one otherwise. Returns the headers and the trace parent used.
pub(super) fn upstream_request_headers(
    mut headers: HeaderMap,
    peer: Option<IpAddr>,
) -> (HeaderMap, HeaderValue) {
    strip_hop_by_hop(&mut headers);
    headers.remove(header::HOST);
    if let Some(peer) = peer {
        let forwarded = match headers.get(&X_FORWARDED_FOR).map(HeaderValue::to_str) {
            Some(Ok(earlier)) => format!("{earlier}, {peer}"),
            _ => peer.to_string(),
        };
        if let Ok(value) = HeaderValue::from_str(&forwarded) {
            headers.insert(X_FORWARDED_FOR, value);
        }
    }
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    }
    let traceparent = match headers.get(&TRACEPARENT) {
        Some(value) if valid_traceparent(value.as_bytes()) => value.clone(),
        _ => new_traceparent(),
    };
    headers.insert(TRACEPARENT, traceparent.clone());
    (headers, traceparent)
}

/// Whether `value` is a version-00 `traceparent`: `00-<32 hex>-<16 hex>-<2 hex>`, with
/// neither id all zeros (W3C Trace Context §3.2). Later versions may append fields after a
/// `-`; those are accepted when the first four fields are valid.
#[must_use]
pub fn valid_traceparent(value: &[u8]) -> bool {
    let lower_hex = |part: &[u8]| {
        part.iter()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(byte))
    };
    let not_zero = |part: &[u8]| part.iter().any(|byte| *byte != b'0');
    let mut fields = value.split(|byte| *byte == b'-');
    let (Some(version), Some(trace_id), Some(parent_id), Some(flags)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return false;
    };
    let shapes = version.len() == 2
        && trace_id.len() == 32
        && parent_id.len() == 16
        && flags.len() == 2
        && [version, trace_id, parent_id, flags]
            .iter()
            .all(|part| lower_hex(part));
    let extra_allowed = version != b"00" || fields.next().is_none();
    shapes && version != b"ff" && not_zero(trace_id) && not_zero(parent_id) && extra_allowed
}

/// A new sampled `traceparent` with random ids.
#[must_use]
pub fn new_traceparent() -> HeaderValue {
    let trace_id: u128 = rand::random::<u128>().max(1);
    let parent_id: u64 = rand::random::<u64>().max(1);
    let text = format!("00-{trace_id:032x}-{parent_id:016x}-01");
    // Only ASCII hex digits and dashes: always a valid header value.
    HeaderValue::from_str(&text).unwrap_or_else(|_| {
        HeaderValue::from_static("00-00000000000000000000000000000001-0000000000000001-01")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_dropped() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-private"),
        );
        headers.insert("x-private", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key(header::ACCEPT));
    }

    #[test]
    fn forwarded_headers_append_the_peer_and_keep_a_valid_traceparent() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("client.example"));
        headers.insert(X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.1"));
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        headers.insert(TRACEPARENT, HeaderValue::from_static(incoming));
        let peer = Some(IpAddr::from([127, 0, 0, 1]));
        let (sent, trace) = upstream_request_headers(headers, peer);
        assert!(!sent.contains_key(header::HOST));
        assert_eq!(sent[X_FORWARDED_FOR], "10.0.0.1, 127.0.0.1");
        assert_eq!(sent[X_FORWARDED_PROTO], "http");
        assert_eq!(trace, incoming);
        assert_eq!(sent[TRACEPARENT], incoming);
    }

    #[test]
    fn an_invalid_or_missing_traceparent_is_replaced_by_a_new_valid_one() {
        for incoming in [
            None,
            Some("00-0000-bad"),
            Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
        ] {
            let mut headers = HeaderMap::new();
            if let Some(incoming) = incoming {
                headers.insert(TRACEPARENT, HeaderValue::from_static(incoming));
            }
            let (sent, trace) = upstream_request_headers(headers, None);
            assert!(valid_traceparent(trace.as_bytes()), "{trace:?}");
            assert_eq!(sent[TRACEPARENT], trace);
            assert!(!sent.contains_key(X_FORWARDED_FOR));
        }
        assert_ne!(new_traceparent(), new_traceparent());
    }

    #[test]
    fn traceparent_validation_follows_the_format() {
        assert!(valid_traceparent(
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
        ));
        assert!(!valid_traceparent(
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"
        ));
        assert!(!valid_traceparent(
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        assert!(!valid_traceparent(
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"
        ));
        assert!(!valid_traceparent(
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x"
        ));
        assert!(valid_traceparent(
            b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x"
        ));
    }
}
