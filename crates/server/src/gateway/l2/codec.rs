//! The second level's value format: a cached response, encoded in CBOR (the `ciborium`
//! crate) behind a 4-byte magic and a version byte.
//!
//! A value of another version (written by an older or newer `resync`), or one that does not
//! decode, is a miss, never an error: the fetch that follows overwrites it. Freshness
//! travels as durations, and the time already spent in Redis comes from the key's remaining
//! `PTTL`, so instances never compare their clocks.

use std::time::{Duration, Instant};

use axum::http::header::{HeaderMap, HeaderName, HeaderValue};
use axum::http::StatusCode;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::gateway::response::CachedResponse;

/// The first bytes of every value.
pub const MAGIC: &[u8; 4] = b"RSGW";
/// The format this build writes and reads.
pub const VERSION: u8 = 1;

/// Version 1 of the stored form.
#[derive(Debug, Serialize, Deserialize)]
struct WireV1 {
    /// The path generation the response was fetched under.
    generation: u64,
    status: u16,
    headers: Vec<(String, Bytes)>,
    body: Bytes,
    initial_age: u64,
    fresh_ms: u64,
    stale_ms: u64,
    vary: Vec<(String, Option<Bytes>)>,
}

/// What a value held.
#[derive(Debug)]
pub enum Decoded {
    /// A response of this format, fetched under `generation`.
    Entry {
        /// The path generation it was fetched under.
        generation: u64,
        /// The response, its freshness counted from when it was stored.
        response: Box<CachedResponse>,
    },
    /// Another version, or bytes that are not a value of this one.
    OtherVersion,
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// `response`, fetched under `generation`, as stored in Redis.
#[must_use]
pub fn encode(response: &CachedResponse, generation: u64) -> Vec<u8> {
    let wire = WireV1 {
        generation,
        status: response.status.as_u16(),
        headers: response
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    Bytes::copy_from_slice(value.as_bytes()),
                )
            })
            .collect(),
        body: response.body.clone(),
        initial_age: response.initial_age,
        fresh_ms: millis(response.fresh_for),
        stale_ms: millis(response.stale_for),
        vary: response
            .vary
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    value
                        .as_ref()
                        .map(|value| Bytes::copy_from_slice(value.as_bytes())),
                )
            })
            .collect(),
    };
    let mut out = Vec::with_capacity(response.body.len() + 256);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    // Writing CBOR into a Vec fails only on an allocation failure, which aborts anyway.
    if ciborium::into_writer(&wire, &mut out).is_err() {
        out.clear();
    }
    out
}

/// The value `bytes`, read at `now` with `remaining` left of its `PTTL`: the response's
/// freshness resumes where it stood when stored.
#[must_use]
pub fn decode(bytes: &[u8], remaining: Duration, now: Instant) -> Decoded {
    let Some(payload) = bytes
        .strip_prefix(MAGIC.as_slice())
        .and_then(|rest| rest.strip_prefix(&[VERSION]))
    else {
        return Decoded::OtherVersion;
    };
    let Ok(wire) = ciborium::from_reader::<WireV1, _>(payload) else {
        return Decoded::OtherVersion;
    };
    wire.into_response(remaining, now)
        .map_or(Decoded::OtherVersion, |(generation, response)| {
            Decoded::Entry {
                generation,
                response: Box::new(response),
            }
        })
}

impl WireV1 {
    fn into_response(self, remaining: Duration, now: Instant) -> Option<(u64, CachedResponse)> {
        let status = StatusCode::from_u16(self.status).ok()?;
        let mut headers = HeaderMap::with_capacity(self.headers.len());
        for (name, value) in self.headers {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).ok()?,
                HeaderValue::from_maybe_shared(value).ok()?,
            );
        }
        let vary = self
            .vary
            .into_iter()
            .map(|(name, value)| {
                Some((
                    HeaderName::from_bytes(name.as_bytes()).ok()?,
                    match value {
                        Some(value) => Some(HeaderValue::from_maybe_shared(value).ok()?),
                        None => None,
                    },
                ))
            })
            .collect::<Option<Box<[_]>>>()?;
        let fresh_for = Duration::from_millis(self.fresh_ms);
        let stale_for = Duration::from_millis(self.stale_ms);
        // Stored with PX = what was left of freshness + stale window: the time spent since
        // is that total minus what Redis says remains.
        let held = fresh_for
            .saturating_add(stale_for)
            .saturating_sub(remaining);
        let stored_at = now.checked_sub(held).unwrap_or(now);
        Some((
            self.generation,
            CachedResponse {
                status,
                headers,
                body: self.body,
                stored_at,
                initial_age: self.initial_age,
                fresh_for,
                stale_for,
                vary,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::policy::Storable;
    use axum::http::header;

    fn response() -> CachedResponse {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        headers.append("x-many", HeaderValue::from_static("1"));
        headers.append("x-many", HeaderValue::from_static("2"));
        let mut request = HeaderMap::new();
        request.insert(header::ACCEPT_LANGUAGE, HeaderValue::from_static("fr"));
        CachedResponse::new(
            StatusCode::OK,
            &headers,
            b"bonjour",
            &Storable {
                fresh_for: Duration::from_secs(10),
                stale_for: Duration::from_secs(5),
                initial_age: 2,
                vary: vec![header::ACCEPT_LANGUAGE, header::ACCEPT],
            },
            &request,
        )
    }

    #[test]
    fn a_response_survives_the_round_trip_with_its_freshness_and_variant() {
        let original = response();
        let bytes = encode(&original, 42);
        assert!(bytes.starts_with(MAGIC));
        let now = Instant::now();
        // 4 s of its 15 s spent in Redis.
        let Decoded::Entry {
            generation,
            response,
        } = decode(&bytes, Duration::from_secs(11), now)
        else {
            panic!("not decoded");
        };
        assert_eq!(generation, 42);
        assert_eq!(response.status, StatusCode::OK);
        assert_eq!(response.body.as_ref(), b"bonjour");
        assert_eq!(response.headers, original.headers);
        assert_eq!(response.vary, original.vary);
        assert_eq!(response.age(now), 2 + 4);
        assert!(response.is_fresh(now + Duration::from_secs(5)));
        assert!(!response.is_fresh(now + Duration::from_secs(6)));
        assert!(response.serves_stale_at(now + Duration::from_secs(10)));
        let mut request = HeaderMap::new();
        request.insert(header::ACCEPT_LANGUAGE, HeaderValue::from_static("fr"));
        assert!(response.matches(&request));
    }

    #[test]
    fn another_version_or_garbage_is_a_miss_not_an_error() {
        let mut older = encode(&response(), 1);
        older[MAGIC.len()] = VERSION - 1;
        let mut newer = encode(&response(), 1);
        newer[MAGIC.len()] = VERSION + 1;
        let truncated = encode(&response(), 1)[..20].to_vec();
        let mut bad_status = encode(&response(), 1);
        // Not CBOR after the header.
        bad_status.truncate(MAGIC.len() + 1);
        bad_status.extend_from_slice(&[0xff; 8]);
        for bytes in [
            older,
            newer,
            truncated,
            bad_status,
            b"plain text".to_vec(),
            vec![],
        ] {
            assert!(
                matches!(
                    decode(&bytes, Duration::from_secs(1), Instant::now()),
                    Decoded::OtherVersion
                ),
                "{bytes:?}"
            );
        }
    }
}
