//! What a cached response is filed under: the method, the target (path and query, byte for
//! byte), a digest of the caller's credentials, and the path's generation — bumped by a
//! write to the path, which makes every earlier entry of that path unreachable at once.

use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::header::{self, HeaderMap};
use resync_cache_core::MemorySize;
use sha2::{Digest, Sha256};

/// The key of one cached response.
///
/// `credentials` is the SHA-256 of the request's `Authorization` and `Cookie` headers (none
/// when it has neither), so two callers with different credentials never share an entry
/// and the secrets themselves are not kept in memory.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    generation: u64,
    head: bool,
    target: Box<str>,
    credentials: Option<[u8; 32]>,
}

impl CacheKey {
    /// The key of a `GET` (or, with `head`, a `HEAD`) of `target` by a caller with these
    /// request headers, in the path's current generation.
    #[must_use]
    pub fn new(
        generation: u64,
        head: bool,
        target: impl Into<Box<str>>,
        headers: &HeaderMap,
    ) -> Self {
        Self {
            generation,
            head,
            target: target.into(),
            credentials: credentials_digest(headers),
        }
    }

    /// The request target (path and query) the key was made for.
    #[must_use]
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Whether it is the key of a `HEAD` (otherwise a `GET`).
    #[must_use]
    pub fn is_head(&self) -> bool {
        self.head
    }

    /// The digest of the caller's `Authorization` and `Cookie` headers, if it sent any.
    #[must_use]
    pub fn credentials(&self) -> Option<&[u8; 32]> {
        self.credentials.as_ref()
    }
}

impl MemorySize for CacheKey {
    fn heap_bytes(&self) -> usize {
        self.target.heap_bytes()
    }
}

/// SHA-256 over every `Authorization` and `Cookie` value, each framed with its name and
/// length so no two different header sets digest alike; `None` without either header.
#[must_use]
pub(super) fn credentials_digest(headers: &HeaderMap) -> Option<[u8; 32]> {
    let mut digest: Option<Sha256> = None;
    for name in [header::AUTHORIZATION, header::COOKIE] {
        for value in headers.get_all(&name) {
            let hasher = digest.get_or_insert_with(Sha256::new);
            hasher.update(name.as_str().as_bytes());
            hasher.update((value.len() as u64).to_le_bytes());
            hasher.update(value.as_bytes());
        }
    }
    digest.map(|hasher| hasher.finalize().into())
}

/// Number of generation slots: paths share a slot when their hashes collide, and a write to
/// one then also invalidates the others' entries (harmless: an extra miss).
const SLOTS: usize = 4096;

/// Per-path generations in a fixed table of counters: bounded memory, no locks. A write to
/// a path bumps its slot; keys made before carry the old generation and are never looked up
/// again (moka evicts them in time, as any unread entry).
#[derive(Debug)]
pub struct Generations {
    slots: Box<[AtomicU64]>,
    hasher: std::hash::RandomState,
}

impl Default for Generations {
    fn default() -> Self {
        Self {
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            hasher: std::hash::RandomState::new(),
        }
    }
}

impl Generations {
    fn slot(&self, path: &str) -> &AtomicU64 {
        let mut hash = self.hasher.hash_one(path);
        hash ^= hash >> 32;
        // The mask keeps the index below SLOTS, the table's length.
        &self.slots[(hash as usize) & (SLOTS - 1)]
    }

    /// The current generation of `path` (without its query).
    #[must_use]
    pub fn current(&self, path: &str) -> u64 {
        self.slot(path).load(Ordering::Acquire)
    }

    /// Makes every entry of `path` (any query, any caller) unreachable.
    pub fn bump(&self, path: &str) {
        self.slot(path).fetch_add(1, Ordering::AcqRel);
    }

    /// Makes every entry of every path unreachable.
    pub fn bump_all(&self) {
        for slot in &*self.slots {
            slot.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// `target` without its query.
#[must_use]
pub(super) fn path_of(target: &str) -> &str {
    target.split_once('?').map_or(target, |(path, _)| path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn credentials_separate_callers_and_anonymous_callers_share() {
        let anonymous = credentials_digest(&headers(&[("accept", "*/*")]));
        assert_eq!(anonymous, None);
        let alice = credentials_digest(&headers(&[("authorization", "Bearer alice")]));
        let bob = credentials_digest(&headers(&[("authorization", "Bearer bob")]));
        let alice_cookie = credentials_digest(&headers(&[("cookie", "Bearer alice")]));
        assert!(alice.is_some());
        assert_ne!(alice, bob);
        assert_ne!(alice, alice_cookie, "the header name is part of the digest");
        let both = credentials_digest(&headers(&[("authorization", "a"), ("cookie", "b")]));
        let swapped = credentials_digest(&headers(&[("authorization", "b"), ("cookie", "a")]));
        assert_ne!(both, swapped);
    }

    #[test]
    fn keys_differ_by_method_target_generation_and_credentials() {
        let none = HeaderMap::new();
        let base = CacheKey::new(0, false, "/a?x=1", &none);
        assert_eq!(base, CacheKey::new(0, false, "/a?x=1", &none));
        assert_ne!(base, CacheKey::new(0, true, "/a?x=1", &none));
        assert_ne!(base, CacheKey::new(0, false, "/a?x=2", &none));
        assert_ne!(base, CacheKey::new(1, false, "/a?x=1", &none));
        let user = headers(&[("cookie", "session=1")]);
        assert_ne!(base, CacheKey::new(0, false, "/a?x=1", &user));
        assert_eq!(base.target(), "/a?x=1");
    }

    #[test]
    fn a_bump_moves_the_path_to_a_new_generation() {
        let generations = Generations::default();
        let before = generations.current("/items/1");
        generations.bump(path_of("/items/1?page=2"));
        assert_eq!(generations.current("/items/1"), before + 1);
        assert_eq!(path_of("/items/1"), "/items/1");
    }
}
