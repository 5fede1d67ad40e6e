//! Where the second level keeps things in Redis.
//!
//! Every key of one path shares the hash tag `{<path digest>}`, so on a Redis Cluster they
//! live in one slot: a lookup reads the path's generation and the entry in one pipeline, and
//! an invalidation is one command.
//!
//! - `resync:gw:{P}:gen` — the path's generation: a random number, replaced by every write
//!   to the path. An entry stored under another generation is never served, so a write
//!   invalidates every query and every caller's entry of the path at once, including those
//!   stored late by fetches that were already in flight. Absent means generation 0.
//! - `resync:gw:{P}:e:V` — the encoded response of one variant `V` (method, target and the
//!   caller's credential digest), with `PX` at its freshness plus stale window.
//! - `resync:gw:{P}:l:V` — the fetch lease of that variant (`SET NX PX`): the instance that
//!   holds it fetches from the upstream; the others wait for the entry.
//!
//! The path digest is hex SHA-256 (first 8 bytes), so no path character can break the tag.

use sha2::{Digest, Sha256};

/// The channel invalidations are published on: `<instance id> <path>`.
pub const CHANNEL: &str = "resync:gateway:invalidate";

/// The Redis keys of one variant of one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L2Keys {
    /// The path's generation.
    pub generation: String,
    /// The variant's encoded response.
    pub entry: String,
    /// The variant's fetch lease.
    pub lease: String,
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        // Writing to a String cannot fail.
        let _ = write!(text, "{byte:02x}");
    }
    text
}

/// `resync:gw:{<path digest>}`: the prefix every key of `path` starts with.
fn path_prefix(path: &str) -> String {
    let digest = Sha256::digest(path.as_bytes());
    format!("resync:gw:{{{}}}", hex(&digest[..8]))
}

/// The generation key of `path` (without its query).
#[must_use]
pub fn generation_key(path: &str) -> String {
    format!("{}:gen", path_prefix(path))
}

impl L2Keys {
    /// The keys of a `GET` (or, with `head`, `HEAD`) of `target` whose path is `path`, by a
    /// caller whose credentials digest to `credentials`.
    #[must_use]
    pub fn new(path: &str, head: bool, target: &str, credentials: Option<&[u8; 32]>) -> Self {
        let prefix = path_prefix(path);
        let mut variant = Sha256::new();
        variant.update(if head { b"HEAD " } else { b"GET  " });
        variant.update((target.len() as u64).to_le_bytes());
        variant.update(target.as_bytes());
        match credentials {
            Some(digest) => {
                variant.update([1]);
                variant.update(digest);
            }
            None => variant.update([0]),
        }
        let variant = hex(&variant.finalize()[..16]);
        Self {
            generation: format!("{prefix}:gen"),
            entry: format!("{prefix}:e:{variant}"),
            lease: format!("{prefix}:l:{variant}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash tag: what Redis Cluster hashes (the text between the first `{` and the next
    /// `}`).
    fn tag(key: &str) -> &str {
        let open = key.find('{').unwrap_or(0);
        let close = key[open..].find('}').map_or(key.len(), |at| open + at);
        &key[open + 1..close]
    }

    #[test]
    fn every_key_of_a_path_shares_one_hash_tag() {
        let a = L2Keys::new("/plan/1", false, "/plan/1?x=1", None);
        let b = L2Keys::new("/plan/1", true, "/plan/1?y={}", Some(&[7; 32]));
        let generation = generation_key("/plan/1");
        let tags = [
            tag(&a.generation),
            tag(&a.entry),
            tag(&a.lease),
            tag(&b.entry),
            tag(&b.lease),
            tag(&generation),
        ];
        assert!(
            tags.iter().all(|t| *t == tags[0] && t.len() == 16),
            "{tags:?}"
        );
        assert_ne!(
            tag(&L2Keys::new("/plan/2", false, "/plan/2", None).entry),
            tags[0]
        );
    }

    #[test]
    fn method_target_and_credentials_make_distinct_variants() {
        let base = L2Keys::new("/p", false, "/p?a", None);
        assert_eq!(base, L2Keys::new("/p", false, "/p?a", None));
        for other in [
            L2Keys::new("/p", true, "/p?a", None),
            L2Keys::new("/p", false, "/p?b", None),
            L2Keys::new("/p", false, "/p?a", Some(&[0; 32])),
        ] {
            assert_eq!(other.generation, base.generation);
            assert_ne!(other.entry, base.entry);
            assert_ne!(other.lease, base.lease);
        }
    }

    #[test]
    fn braces_in_a_path_cannot_break_the_tag() {
        let keys = L2Keys::new("/a}{b", false, "/a}{b", None);
        assert_eq!(tag(&keys.entry).len(), 16);
        assert!(keys.entry.starts_with("resync:gw:{"));
    }
}
