//! [`Reply`]: how the upstream answers a request, and the query-string overrides of it.

use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue, CACHE_CONTROL};
use hyper::StatusCode;

/// How [`TestUpstream`](crate::TestUpstream) answers a request: a status, a delay, extra
/// headers, and a body.
///
/// The default body is a small JSON object naming the request —
/// `{"serial":7,"method":"GET","path":"/items/1?x=2"}` — where `serial` counts the
/// upstream's requests from 1 and is also sent as the `x-upstream-serial` header, so a test
/// tells a fresh response from a cached one. [`body_bytes`](Self::body_bytes) pads that object
/// (or truncates it) to an exact size. Every response says `Content-Type: application/json`
/// unless a header of the reply replaces it.
///
/// ```
/// use std::time::Duration;
/// use test_support::Reply;
///
/// let slow_cacheable = Reply::new()
///     .latency(Duration::from_millis(20))
///     .header("cache-control", "max-age=60")
///     .body_bytes(1024);
/// let failing = Reply::new().status(503);
/// # let _ = (slow_cacheable, failing);
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) latency: Duration,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) body: BodyKind,
    pub(crate) close_connection: bool,
}

/// What the body of a [`Reply`] is.
#[derive(Clone, Debug)]
pub(crate) enum BodyKind {
    /// The JSON object naming the request; with `Some(filler)`, exactly `filler.len()` bytes,
    /// the object's tail taken from the precomputed filler.
    Generated { filler: Option<Bytes> },
    /// One chunk, then the body never ends.
    Endless,
    /// The request's body.
    Echo,
    /// No response at all.
    Hang,
}

impl Default for Reply {
    fn default() -> Self {
        Self::new()
    }
}

impl Reply {
    /// `200 OK` at once, with the JSON object naming the request as its body.
    pub fn new() -> Self {
        Self {
            status: StatusCode::OK,
            latency: Duration::ZERO,
            headers: Vec::new(),
            body: BodyKind::Generated { filler: None },
            close_connection: false,
        }
    }

    /// Answers with `status`.
    ///
    /// # Panics
    ///
    /// When `status` is not in 100..=999.
    pub fn status(mut self, status: u16) -> Self {
        self.status = StatusCode::from_u16(status).expect("an HTTP status code in 100..=999");
        self
    }

    /// Waits `latency` (a tokio sleep) after reading the request, before answering.
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Adds a response header; repeat it for several values (`Set-Cookie`). A header of the
    /// query string (`?header=Name:Value`) replaces every one of the same name.
    ///
    /// # Panics
    ///
    /// When `name` or `value` is not a valid header name or value.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let name = HeaderName::try_from(name).expect("a valid header name");
        let value = HeaderValue::try_from(value).expect("a valid header value");
        self.headers.push((name, value));
        self
    }

    /// Sets `Cache-Control: max-age=<seconds>` (replacing any `Cache-Control` set before).
    pub fn max_age(mut self, seconds: u64) -> Self {
        self.replace_header(CACHE_CONTROL, max_age(seconds));
        self
    }

    /// Makes the body exactly `bytes` long: the JSON object naming the request, padded with
    /// `x` (or cut short when `bytes` is smaller than the object). The padding is built here,
    /// once, not per request.
    pub fn body_bytes(mut self, bytes: usize) -> Self {
        self.body = BodyKind::Generated {
            filler: Some(filler(bytes)),
        };
        self
    }

    /// Sends one chunk of body, then keeps the response open without end (no
    /// `Content-Length`; the body is chunked).
    pub fn endless(mut self) -> Self {
        self.body = BodyKind::Endless;
        self
    }

    /// Never answers: the request is read and recorded, and the connection stays open until
    /// the client closes it or the upstream stops.
    pub fn hang(mut self) -> Self {
        self.body = BodyKind::Hang;
        self
    }

    /// Answers with the request's body as the response body.
    pub fn echo_request_body(mut self) -> Self {
        self.body = BodyKind::Echo;
        self
    }

    /// With `true`, answers with `Connection: close` and closes the connection after the
    /// response.
    pub fn close_connection(mut self, close: bool) -> Self {
        self.close_connection = close;
        self
    }

    fn replace_header(&mut self, name: HeaderName, value: HeaderValue) {
        self.headers.retain(|(existing, _)| *existing != name);
        self.headers.push((name, value));
    }

    /// This reply with the overrides of a request's query string applied, `Ok(None)` when the
    /// query names none, or a message saying which parameter is malformed.
    ///
    /// The parameters: `latency_ms=N`, `status=N`, `bytes=N`, `close=1` (or `0`),
    /// `max_age=N`, and `header=Name:Value` (repeatable; percent-encoded or not). Others are
    /// ignored.
    pub(crate) fn overridden_by(&self, query: &str) -> Result<Option<Reply>, String> {
        let mut reply: Option<Reply> = None;
        let mut query_headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
        for pair in query.split('&') {
            let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
            if !matches!(
                key,
                "latency_ms" | "status" | "bytes" | "close" | "max_age" | "header"
            ) {
                continue;
            }
            let value =
                percent_decode(raw).ok_or_else(|| format!("{key}: bad percent-encoding"))?;
            let number = || {
                value
                    .parse::<u64>()
                    .map_err(|_| format!("{key}={value}: not a whole number"))
            };
            let reply = reply.get_or_insert_with(|| self.clone());
            match key {
                "latency_ms" => reply.latency = Duration::from_millis(number()?),
                "status" => {
                    reply.status = u16::try_from(number()?)
                        .ok()
                        .and_then(|code| StatusCode::from_u16(code).ok())
                        .ok_or_else(|| format!("status={value}: not an HTTP status"))?;
                }
                "bytes" => {
                    let bytes = usize::try_from(number()?)
                        .map_err(|_| format!("bytes={value}: too large"))?;
                    reply.body = BodyKind::Generated {
                        filler: Some(filler(bytes)),
                    };
                }
                "close" => reply.close_connection = number()? != 0,
                "max_age" => reply.replace_header(CACHE_CONTROL, max_age(number()?)),
                _header => {
                    let (name, header_value) = value
                        .split_once(':')
                        .ok_or_else(|| format!("header={value}: not Name:Value"))?;
                    let name = HeaderName::try_from(name.trim())
                        .map_err(|_| format!("header={value}: bad header name"))?;
                    let header_value = HeaderValue::try_from(header_value.trim())
                        .map_err(|_| format!("header={value}: bad header value"))?;
                    query_headers.push((name, header_value));
                }
            }
        }
        if let Some(reply) = reply.as_mut() {
            reply
                .headers
                .retain(|(name, _)| !query_headers.iter().any(|(query, _)| query == name));
            reply.headers.extend(query_headers);
        }
        Ok(reply)
    }
}

/// `max-age=<seconds>`.
fn max_age(seconds: u64) -> HeaderValue {
    HeaderValue::try_from(format!("max-age={seconds}")).expect("digits make a valid header value")
}

/// `bytes` bytes of `x` ending in `"}`, which closes the padded JSON object.
fn filler(bytes: usize) -> Bytes {
    let mut filler = vec![b'x'; bytes];
    if bytes >= 2 {
        filler[bytes - 2..].copy_from_slice(b"\"}");
    }
    Bytes::from(filler)
}

/// Decodes `%XX` escapes and `+` (a space); `None` when an escape is malformed or the result
/// is not UTF-8.
fn percent_decode(raw: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(raw.len());
    let mut input = raw.bytes();
    while let Some(byte) = input.next() {
        match byte {
            b'%' => {
                let high = char::from(input.next()?).to_digit(16)?;
                let low = char::from(input.next()?).to_digit(16)?;
                bytes.push(u8::try_from(high * 16 + low).ok()?);
            }
            b'+' => bytes.push(b' '),
            other => bytes.push(other),
        }
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'r>(reply: &'r Reply, name: &str) -> Vec<&'r str> {
        reply
            .headers
            .iter()
            .filter(|(existing, _)| existing == name)
            .map(|(_, value)| value.to_str().expect("ascii"))
            .collect()
    }

    #[test]
    fn a_query_without_known_parameters_changes_nothing() {
        assert!(Reply::new().overridden_by("a=1&b").expect("ok").is_none());
    }

    #[test]
    fn every_parameter_overrides_the_rule() {
        let rule = Reply::new()
            .header("set-cookie", "a=1")
            .header("x-kept", "yes")
            .max_age(5);
        let reply = rule
            .overridden_by(
                "latency_ms=7&status=404&bytes=64&close=1&max_age=60\
                 &header=Set-Cookie:b%3D2&header=set-cookie:c=3&header=Vary:Accept+Encoding",
            )
            .expect("valid")
            .expect("overridden");
        assert_eq!(reply.latency, Duration::from_millis(7));
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        assert!(reply.close_connection);
        assert!(
            matches!(&reply.body, BodyKind::Generated { filler: Some(filler) } if filler.len() == 64)
        );
        assert_eq!(header(&reply, "cache-control"), ["max-age=60"]);
        assert_eq!(header(&reply, "set-cookie"), ["b=2", "c=3"]);
        assert_eq!(header(&reply, "vary"), ["Accept Encoding"]);
        assert_eq!(header(&reply, "x-kept"), ["yes"]);
    }

    #[test]
    fn malformed_parameters_are_named() {
        for (query, named) in [
            ("status=abc", "status=abc"),
            ("status=42", "status=42"),
            ("latency_ms=-1", "latency_ms=-1"),
            ("header=novalue", "header=novalue"),
            ("bytes=%zz", "bytes"),
        ] {
            let error = Reply::new().overridden_by(query).expect_err(query);
            assert!(error.contains(named), "{query}: {error}");
        }
    }

    #[test]
    fn the_filler_closes_the_object() {
        assert_eq!(&filler(5)[..], b"xxx\"}");
        assert_eq!(&filler(1)[..], b"x");
        assert!(filler(0).is_empty());
    }
}
