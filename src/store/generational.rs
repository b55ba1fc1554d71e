//! Values read from the store, each served only while the generation of what it was read from
//! ([`Store::generation`](super::Store::generation)) is the one noted before its read.
//!
//! The caches of the request hot path (API keys, the pages of `GET /v1/agents`) are this map.
//! A reader notes the generation, reads, and puts what it read under that generation. A commit
//! that changes the watched kind moves the generation only once it is visible to new reads, so
//! an entry read before a change is stale by the time anyone could look it up, and is read
//! again: a cache hit never shows what a fresh read would not.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

pub struct Generational<K, V> {
    entries: Mutex<HashMap<K, (u64, V)>>,
    /// Entries kept at most; past it the map starts over rather than grow.
    capacity: usize,
}

impl<K: Eq + Hash, V: Clone> Generational<K, V> {
    pub fn new(capacity: usize) -> Self {
        Generational { entries: Mutex::new(HashMap::new()), capacity }
    }

    /// The value under `key`, if it was read while the generation was `generation`.
    pub fn get<Q>(&self, key: &Q, generation: u64) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let entries = self.entries.lock().ok()?;
        let (noted, value) = entries.get(key)?;
        (*noted == generation).then(|| value.clone())
    }

    /// Remember what a read begun at `generation` found.
    pub fn put(&self, key: K, generation: u64, value: V) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= self.capacity && !entries.contains_key(&key) {
                entries.clear();
            }
            entries.insert(key, (generation, value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Generational;

    #[test]
    fn an_entry_is_served_only_at_the_generation_it_was_read_at() {
        let cache = Generational::new(8);
        cache.put("a".to_string(), 3, 1);
        assert_eq!(cache.get("a", 3), Some(1));
        assert_eq!(cache.get("a", 4), None);
        assert_eq!(cache.get("b", 3), None);
        cache.put("a".to_string(), 4, 2);
        assert_eq!(cache.get("a", 4), Some(2));
    }

    #[test]
    fn a_full_map_starts_over_instead_of_growing() {
        let cache = Generational::new(2);
        cache.put(1, 0, "one");
        cache.put(2, 0, "two");
        cache.put(2, 0, "two again");
        assert_eq!(cache.get(&1, 0), Some("one"), "replacing a present key does not clear");
        cache.put(3, 0, "three");
        assert_eq!((cache.get(&1, 0), cache.get(&2, 0), cache.get(&3, 0)), (None, None, Some("three")));
    }
}
