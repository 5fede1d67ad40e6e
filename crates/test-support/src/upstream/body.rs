//! The upstream's response body: the JSON object naming a request (at most two chunks, the
//! second a slice of a precomputed filler), or one chunk that never ends.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

/// A response body of the upstream.
#[derive(Debug)]
pub(crate) enum ReplyBody {
    /// Up to two chunks, sent in order; the length is known (`Content-Length`).
    Chunks {
        first: Option<Bytes>,
        second: Option<Bytes>,
    },
    /// One chunk, then pending for ever (chunked, no length).
    Endless { sent: bool },
}

impl ReplyBody {
    pub(crate) fn full(bytes: Bytes) -> Self {
        Self::Chunks {
            first: Some(bytes),
            second: None,
        }
    }

    pub(crate) fn endless() -> Self {
        Self::Endless { sent: false }
    }

    /// The JSON object naming the request: `{"serial":N,"method":"M","path":"P"}`. With a
    /// `filler` (see `Reply::body_bytes`), exactly `filler.len()` bytes: the object opens a
    /// `"pad"` string that the filler's tail fills and closes, and only the short head is
    /// formatted per request.
    pub(crate) fn generated(
        serial: u64,
        method: &str,
        path_and_query: &str,
        filler: Option<&Bytes>,
    ) -> Self {
        let mut head = String::with_capacity(64 + path_and_query.len());
        let _ = write!(head, r#"{{"serial":{serial},"method":"#);
        push_json_string(&mut head, method);
        head.push_str(r#","path":"#);
        push_json_string(&mut head, path_and_query);
        let Some(filler) = filler else {
            head.push('}');
            return Self::full(Bytes::from(head));
        };
        head.push_str(r#","pad":""#);
        let mut head = Bytes::from(head);
        let size = filler.len();
        if head.len() >= size {
            head.truncate(size);
            return Self::full(head);
        }
        let tail = filler.slice(head.len()..);
        Self::Chunks {
            first: Some(head),
            second: Some(tail),
        }
    }
}

/// Appends `value` as a JSON string literal.
fn push_json_string(out: &mut String, value: &str) {
    out.push('"');
    for character in value.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            control if u32::from(control) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(control));
            }
            other => out.push(other),
        }
    }
    out.push('"');
}

impl Body for ReplyBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Self::Chunks { first, second } => Poll::Ready(
                first
                    .take()
                    .or_else(|| second.take())
                    .map(|chunk| Ok(Frame::data(chunk))),
            ),
            Self::Endless { sent: true } => {
                // Never woken: the body stays open until the connection is dropped.
                Poll::Pending
            }
            Self::Endless { sent } => {
                *sent = true;
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"first chunk")))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(
            self,
            Self::Chunks {
                first: None,
                second: None
            }
        )
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Chunks { first, second } => {
                let length = |chunk: &Option<Bytes>| chunk.as_ref().map_or(0, Bytes::len);
                SizeHint::with_exact((length(first) + length(second)) as u64)
            }
            Self::Endless { .. } => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(body: ReplyBody) -> Vec<u8> {
        match body {
            ReplyBody::Chunks { first, second } => first
                .into_iter()
                .chain(second)
                .flat_map(|chunk| chunk.to_vec())
                .collect(),
            ReplyBody::Endless { .. } => panic!("not a full body"),
        }
    }

    #[test]
    fn the_natural_body_is_json_naming_the_request() {
        let body = collect(ReplyBody::generated(7, "GET", "/a?b=\"c\"", None));
        assert_eq!(
            String::from_utf8(body).expect("utf-8"),
            r#"{"serial":7,"method":"GET","path":"/a?b=\"c\""}"#
        );
    }

    #[test]
    fn a_sized_body_is_exact_and_still_json_when_it_fits() {
        let filler = Bytes::from(
            std::iter::repeat_n(b'x', 98)
                .chain(*b"\"}")
                .collect::<Vec<u8>>(),
        );
        let body = ReplyBody::generated(12, "POST", "/items/1", Some(&filler));
        assert_eq!(body.size_hint().exact(), Some(100));
        let text = String::from_utf8(collect(body)).expect("utf-8");
        assert!(
            text.starts_with(r#"{"serial":12,"method":"POST","path":"/items/1","pad":"xx"#),
            "{text}"
        );
        assert!(text.ends_with("x\"}"), "{text}");

        let small = Bytes::from_static(b"x\"}");
        let body = ReplyBody::generated(1, "GET", "/", Some(&small));
        assert_eq!(collect(body), br#"{"s"#);
    }
}
