//! The table inside each cache shard: open addressing over digests, sized to stay full.
//!
//! A general hash map grows by doubling, so at a given number of entries it is anywhere from
//! 44 % to 87.5 % full (a million keys in 64 shards land at 48 %), and stores the whole 32-byte
//! digest beside each value. This one grows by a quarter when it is 7/8 full (70 % to 87.5 %
//! full once grown; growing by less leaves more freed arrays behind than it saves), maps a digest to a bucket by multiplication rather than by masking (so any
//! size works), and keys each entry by the digest's first 16 bytes: finding a key whose SHA-256
//! shares 128 bits with a stored one is a second preimage, out of reach. Linear probing;
//! deletion shifts the rest of the run back, so there are no tombstones.

/// The smallest table built.
const MIN_BUCKETS: usize = 8;

/// A digest's tag: its first 16 bytes, never 0 (0 marks an empty bucket).
pub(super) fn tag_of(digest: &[u8; 32]) -> u128 {
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    u128::from_le_bytes(b).max(1)
}

pub(super) struct Table<V> {
    /// 0: empty.
    tags: Vec<u128>,
    values: Vec<Option<V>>,
    len: usize,
}

impl<V> Default for Table<V> {
    fn default() -> Self {
        Table {
            tags: Vec::new(),
            values: Vec::new(),
            len: 0,
        }
    }
}

impl<V> Table<V> {
    fn buckets(&self) -> usize {
        self.tags.len()
    }

    /// The bucket a tag starts probing at: its low 64 bits (uniform) scaled to the size.
    fn home(&self, tag: u128) -> usize {
        ((u128::from(tag as u64) * self.buckets() as u128) >> 64) as usize
    }

    fn next(&self, i: usize) -> usize {
        if i + 1 == self.buckets() {
            0
        } else {
            i + 1
        }
    }

    /// The bucket holding `tag`, if any.
    fn find(&self, tag: u128) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let mut i = self.home(tag);
        loop {
            match self.tags[i] {
                0 => return None,
                t if t == tag => return Some(i),
                _ => i = self.next(i),
            }
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn get(&self, tag: u128) -> Option<&V> {
        self.find(tag).and_then(|i| self.values[i].as_ref())
    }

    pub(super) fn contains(&self, tag: u128) -> bool {
        self.find(tag).is_some()
    }

    /// Inserts or replaces the value of `tag`; the value replaced, if any.
    pub(super) fn insert(&mut self, tag: u128, value: V) -> Option<V> {
        debug_assert_ne!(tag, 0);
        if let Some(i) = self.find(tag) {
            return self.values[i].replace(value);
        }
        if (self.len + 1) * 8 > self.buckets() * 7 {
            self.grow();
        }
        let mut i = self.home(tag);
        while self.tags[i] != 0 {
            i = self.next(i);
        }
        self.tags[i] = tag;
        self.values[i] = Some(value);
        self.len += 1;
        None
    }

    /// Every value, in bucket order.
    pub(super) fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.values.iter().flatten()
    }

    fn grow(&mut self) {
        let buckets = (self.buckets() + self.buckets() / 4).max(MIN_BUCKETS);
        let old_tags = std::mem::replace(&mut self.tags, vec![0; buckets]);
        let old_values = std::mem::replace(
            &mut self.values,
            std::iter::repeat_with(|| None).take(buckets).collect(),
        );
        self.len = 0;
        for (tag, value) in old_tags.into_iter().zip(old_values) {
            if let (true, Some(value)) = (tag != 0, value) {
                self.insert(tag, value);
            }
        }
    }

    pub(super) fn remove(&mut self, tag: u128) -> Option<V> {
        let i = self.find(tag)?;
        Some(self.remove_at(i))
    }

    /// Empties bucket `i` and shifts the rest of its run back, so that every entry stays
    /// reachable from its home bucket.
    fn remove_at(&mut self, i: usize) -> V {
        let value = self.values[i].take();
        self.tags[i] = 0;
        self.len -= 1;
        let mut hole = i;
        let mut j = self.next(i);
        while self.tags[j] != 0 {
            let home = self.home(self.tags[j]);
            // Entry `j` may fill the hole when its home is not in the (cyclic) range (hole, j].
            let stays = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !stays {
                self.tags[hole] = self.tags[j];
                self.values[hole] = self.values[j].take();
                self.tags[j] = 0;
                hole = j;
            }
            j = self.next(j);
        }
        value.expect("an occupied bucket holds a value")
    }

    /// Keeps the entries `keep` says yes to.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&V) -> bool) {
        let mut i = 0;
        // Removing shifts later entries back into `i` (look at it again); an entry of a run
        // that wraps around may move to the end, and is then looked at twice, harmlessly.
        while i < self.buckets() {
            let drop = self.tags[i] != 0 && self.values[i].as_ref().is_some_and(|v| !keep(v));
            if drop {
                self.remove_at(i);
            } else {
                i += 1;
            }
        }
    }

    pub(super) fn clear(&mut self) {
        *self = Table::default();
    }

    /// The tag of some entry, from bucket `from` (any number) on: for evicting one at random.
    pub(super) fn some_tag(&self, from: u64) -> Option<u128> {
        if self.len == 0 {
            return None;
        }
        let start = (from % self.buckets() as u64) as usize;
        let mut i = start;
        loop {
            if self.tags[i] != 0 {
                return Some(self.tags[i]);
            }
            i = self.next(i);
        }
    }

    /// Bytes held per bucket, for the benchmarks' arithmetic.
    #[cfg(test)]
    pub(super) fn bytes(&self) -> usize {
        self.buckets() * (16 + std::mem::size_of::<Option<V>>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A deterministic stream of tags, clustered on purpose in some runs (the low bits decide
    /// the home bucket).
    fn tags(n: usize, seed: u64) -> Vec<u128> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                u128::from(x) << 64 | u128::from(x.rotate_left(7))
            })
            .map(|t| t.max(1))
            .collect()
    }

    #[test]
    fn behaves_as_a_map_through_inserts_removals_and_retains() {
        let mut table = Table::default();
        let mut model = HashMap::new();
        let all = tags(5_000, 7);
        for (n, &t) in all.iter().enumerate() {
            table.insert(t, n);
            model.insert(t, n);
            if n % 3 == 0 {
                let gone = all[n / 2];
                assert_eq!(table.remove(gone), model.remove(&gone), "remove {n}");
            }
            if n % 997 == 0 {
                table.retain(|v| v % 5 != 0);
                model.retain(|_, v| *v % 5 != 0);
            }
            assert_eq!(table.len(), model.len());
        }
        for t in &all {
            assert_eq!(table.get(*t), model.get(t), "{t}");
            assert_eq!(table.contains(*t), model.contains_key(t));
        }
        // Replacing keeps the count.
        let (&t, _) = model.iter().next().unwrap();
        table.insert(t, usize::MAX);
        assert_eq!(table.get(t), Some(&usize::MAX));
        assert_eq!(table.len(), model.len());
        table.clear();
        assert_eq!((table.len(), table.get(t)), (0, None));
    }

    #[test]
    fn runs_that_wrap_around_the_end_survive_removals() {
        // Tags whose home is the last bucket of an 8-bucket table: each run wraps.
        let mut table = Table::default();
        let last: Vec<u128> = (1..=6u64)
            .map(|k| (u128::from(k) << 64) | u128::from(u64::MAX - k))
            .collect();
        for (n, &t) in last.iter().enumerate() {
            table.insert(t, n);
        }
        assert_eq!(table.buckets(), MIN_BUCKETS);
        table.remove(last[0]);
        table.retain(|v| *v != 3);
        for (n, &t) in last.iter().enumerate() {
            let want = (n != 0 && n != 3).then_some(n);
            assert_eq!(table.get(t).copied(), want, "{n}");
        }
    }

    #[test]
    fn a_million_entries_fill_most_of_the_table() {
        let mut table: Table<u64> = Table::default();
        for t in tags(1_000_000, 11) {
            table.insert(t, 0);
        }
        let fill = table.len() as f64 / table.buckets() as f64;
        assert!((0.7..=0.875).contains(&fill), "{fill}");
        // 16 bytes of tag and 16 of `Option<u64>` a bucket.
        assert!(table.bytes() <= 1_000_000 * 32 * 10 / 7);
        assert!(table.some_tag(12_345).is_some_and(|t| table.contains(t)));
    }
}
