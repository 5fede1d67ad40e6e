//! Heap-size estimation for cached keys and values.
//!
//! [`MemorySize::heap_bytes`] returns the bytes a value owns on the heap, not counting its
//! inline size (`size_of::<T>()`), which the cache adds once per entry. Contiguous types
//! (strings, vectors, boxes, [`Bytes`]) report exactly what they allocated (capacity, not
//! length). Node-based types (maps, [`serde_json::Value`]) report a documented upper
//! estimate: their elements plus a fixed per-node overhead that is at least what the
//! standard library's node layouts use.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::mem::size_of;
use std::sync::Arc;

use bytes::Bytes;

/// Bytes a value owns on the heap (excluding its own inline `size_of`).
///
/// Implement it for your own types by summing the fields' `heap_bytes`:
///
/// ```
/// use resync_cache_core::MemorySize;
///
/// struct User { name: String, roles: Vec<String> }
///
/// impl MemorySize for User {
///     fn heap_bytes(&self) -> usize {
///         self.name.heap_bytes() + self.roles.heap_bytes()
///     }
/// }
///
/// let user = User { name: "ada".to_owned(), roles: vec!["admin".to_owned()] };
/// assert!(user.heap_bytes() >= 3 + 5 + std::mem::size_of::<String>());
/// ```
pub trait MemorySize {
    /// Heap bytes owned by `self`.
    fn heap_bytes(&self) -> usize;
}

/// Per-node overhead assumed for `BTreeMap` entries (parent pointer, lengths and the unused
/// slots of a node that is on average about two-thirds full).
const BTREE_NODE_OVERHEAD: usize = 32;
/// Per-bucket overhead assumed for `HashMap`/`HashSet` (one control byte plus the slack of a
/// table that is at most 7/8 full, rounded up).
const HASH_BUCKET_OVERHEAD: usize = 8;

macro_rules! no_heap {
    ($($ty:ty),* $(,)?) => {
        $(impl MemorySize for $ty {
            #[inline]
            fn heap_bytes(&self) -> usize { 0 }
        })*
    };
}

no_heap!(
    (),
    bool,
    char,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    &'static str,
    std::time::Duration,
    std::time::Instant,
    std::time::SystemTime,
);

impl MemorySize for String {
    #[inline]
    fn heap_bytes(&self) -> usize {
        self.capacity()
    }
}

impl MemorySize for Box<str> {
    #[inline]
    fn heap_bytes(&self) -> usize {
        self.len()
    }
}

impl MemorySize for Arc<str> {
    /// The string plus the two reference counts; counted in full for every holder (upper estimate).
    #[inline]
    fn heap_bytes(&self) -> usize {
        self.len() + 2 * size_of::<usize>()
    }
}

impl MemorySize for Bytes {
    /// The viewed length. A `Bytes` sliced out of a larger buffer keeps that whole buffer
    /// alive, so copy cached slices out first (`Bytes::copy_from_slice`).
    #[inline]
    fn heap_bytes(&self) -> usize {
        self.len()
    }
}

impl<T: MemorySize> MemorySize for Vec<T> {
    #[inline]
    fn heap_bytes(&self) -> usize {
        self.capacity() * size_of::<T>() + self.iter().map(MemorySize::heap_bytes).sum::<usize>()
    }
}

impl<T: MemorySize> MemorySize for VecDeque<T> {
    fn heap_bytes(&self) -> usize {
        self.capacity() * size_of::<T>() + self.iter().map(MemorySize::heap_bytes).sum::<usize>()
    }
}

impl<T: MemorySize> MemorySize for Box<[T]> {
    fn heap_bytes(&self) -> usize {
        self.len() * size_of::<T>() + self.iter().map(MemorySize::heap_bytes).sum::<usize>()
    }
}

impl<T: MemorySize> MemorySize for Box<T> {
    #[inline]
    fn heap_bytes(&self) -> usize {
        size_of::<T>() + (**self).heap_bytes()
    }
}

impl<T: MemorySize> MemorySize for Arc<T> {
    /// The pointee plus the two reference counts, counted in full for every holder, so a
    /// value shared between entries is over-counted (an upper estimate).
    #[inline]
    fn heap_bytes(&self) -> usize {
        2 * size_of::<usize>() + size_of::<T>() + (**self).heap_bytes()
    }
}

impl<T: MemorySize> MemorySize for Arc<[T]> {
    fn heap_bytes(&self) -> usize {
        2 * size_of::<usize>()
            + self.len() * size_of::<T>()
            + self.iter().map(MemorySize::heap_bytes).sum::<usize>()
    }
}

impl<T: MemorySize> MemorySize for Option<T> {
    #[inline]
    fn heap_bytes(&self) -> usize {
        self.as_ref().map_or(0, MemorySize::heap_bytes)
    }
}

impl<T: MemorySize, E: MemorySize> MemorySize for Result<T, E> {
    fn heap_bytes(&self) -> usize {
        match self {
            Ok(value) => value.heap_bytes(),
            Err(error) => error.heap_bytes(),
        }
    }
}

impl<A: MemorySize, B: MemorySize> MemorySize for (A, B) {
    #[inline]
    fn heap_bytes(&self) -> usize {
        self.0.heap_bytes() + self.1.heap_bytes()
    }
}

impl<A: MemorySize, B: MemorySize, C: MemorySize> MemorySize for (A, B, C) {
    #[inline]
    fn heap_bytes(&self) -> usize {
        self.0.heap_bytes() + self.1.heap_bytes() + self.2.heap_bytes()
    }
}

impl<A: MemorySize, B: MemorySize, C: MemorySize, D: MemorySize> MemorySize for (A, B, C, D) {
    fn heap_bytes(&self) -> usize {
        self.0.heap_bytes() + self.1.heap_bytes() + self.2.heap_bytes() + self.3.heap_bytes()
    }
}

impl<T: MemorySize, const N: usize> MemorySize for [T; N] {
    fn heap_bytes(&self) -> usize {
        self.iter().map(MemorySize::heap_bytes).sum()
    }
}

impl<K: MemorySize, V: MemorySize, S> MemorySize for HashMap<K, V, S> {
    /// Upper estimate: every bucket of the table (`capacity`) with its slack, plus the
    /// entries' own heap bytes.
    fn heap_bytes(&self) -> usize {
        let buckets = self.capacity().max(self.len()).next_power_of_two();
        buckets * (size_of::<K>() + size_of::<V>() + HASH_BUCKET_OVERHEAD)
            + self
                .iter()
                .map(|(k, v)| k.heap_bytes() + v.heap_bytes())
                .sum::<usize>()
    }
}

impl<T: MemorySize, S> MemorySize for HashSet<T, S> {
    /// Upper estimate, as for `HashMap`.
    fn heap_bytes(&self) -> usize {
        let buckets = self.capacity().max(self.len()).next_power_of_two();
        buckets * (size_of::<T>() + HASH_BUCKET_OVERHEAD)
            + self.iter().map(MemorySize::heap_bytes).sum::<usize>()
    }
}

impl<K: MemorySize, V: MemorySize> MemorySize for BTreeMap<K, V> {
    /// Upper estimate: each entry's inline size rounded up by a node-slack factor of 3/2,
    /// plus a fixed per-entry node overhead, plus the entries' own heap bytes.
    fn heap_bytes(&self) -> usize {
        let inline = size_of::<K>() + size_of::<V>();
        self.len() * (inline + inline / 2 + BTREE_NODE_OVERHEAD)
            + self
                .iter()
                .map(|(k, v)| k.heap_bytes() + v.heap_bytes())
                .sum::<usize>()
    }
}

impl MemorySize for serde_json::Value {
    /// Upper estimate: strings by capacity, arrays by capacity, objects as the map
    /// `serde_json` uses by default (a `BTreeMap<String, Value>`), recursively.
    fn heap_bytes(&self) -> usize {
        use serde_json::Value;
        match self {
            Value::Null | Value::Bool(_) | Value::Number(_) => 0,
            Value::String(text) => text.capacity(),
            Value::Array(items) => items.heap_bytes(),
            Value::Object(map) => {
                let inline = size_of::<String>() + size_of::<Value>();
                map.len() * (inline + inline / 2 + BTREE_NODE_OVERHEAD)
                    + map
                        .iter()
                        .map(|(key, value)| key.capacity() + value.heap_bytes())
                        .sum::<usize>()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_types_count_their_allocation() {
        let text = String::with_capacity(40);
        assert_eq!(text.heap_bytes(), 40);
        let numbers: Vec<u64> = Vec::with_capacity(10);
        assert_eq!(numbers.heap_bytes(), 80);
        let nested = vec![String::from("abc"), String::from("de")];
        assert_eq!(
            nested.heap_bytes(),
            nested.capacity() * size_of::<String>() + 3 + 2
        );
        assert_eq!(Bytes::from(vec![0u8; 1024]).heap_bytes(), 1024);
        assert_eq!(Box::new(7u64).heap_bytes(), 8);
    }

    #[test]
    fn wrappers_and_tuples_add_up() {
        let pair = (String::from("key"), Some(vec![1u8, 2, 3]));
        assert_eq!(pair.heap_bytes(), pair.0.capacity() + 3);
        let none: Option<String> = None;
        assert_eq!(none.heap_bytes(), 0);
        let shared = Arc::new(String::from("abcd"));
        assert_eq!(shared.heap_bytes(), 16 + size_of::<String>() + 4);
    }

    #[test]
    fn json_estimate_is_at_least_the_text_it_holds() {
        let value = serde_json::json!({
            "name": "a fairly long string value",
            "tags": ["one", "two", "three"],
            "nested": {"n": 1, "m": [1, 2, 3]},
        });
        let text_bytes = value.to_string().len();
        assert!(value.heap_bytes() >= text_bytes);
    }

    #[test]
    fn map_estimates_cover_their_entries() {
        let map: HashMap<u64, String> = (0..100).map(|i| (i, format!("value-{i}"))).collect();
        let minimum =
            map.len() * (8 + size_of::<String>()) + map.values().map(String::len).sum::<usize>();
        assert!(map.heap_bytes() >= minimum);
        let tree: BTreeMap<u64, u64> = (0..100).map(|i| (i, i)).collect();
        assert!(tree.heap_bytes() >= 100 * 16);
    }
}
