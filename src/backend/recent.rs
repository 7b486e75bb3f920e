//! A few values made from `i32` slices, keyed by the slices' contents, most recently used first.
//!
//! The CUDA backend keeps its device copies of `cu_seqlens` here: a training step that repeats
//! the lengths of an earlier call (every replay of a CUDA graph, every benchmark iteration, a
//! fixed packing) then neither allocates nor copies, which is what lets a varlen call be
//! captured into a graph once an eager call with the same lengths has run.

use std::collections::VecDeque;

/// At most `capacity` entries; the least recently used one goes when a new one comes.
#[derive(Debug)]
pub(crate) struct Recent<V> {
    capacity: usize,
    entries: VecDeque<(Box<[i32]>, V)>,
}

impl<V: Clone> Recent<V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Recent {
            capacity: capacity.max(1),
            entries: VecDeque::new(),
        }
    }

    /// The value held for `key`, or the one `make` returns, kept for next time. An error of
    /// `make` leaves the entries as they were.
    pub(crate) fn get_or_try_insert<E>(
        &mut self,
        key: &[i32],
        make: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, E> {
        if let Some(i) = self.entries.iter().position(|(k, _)| **k == *key) {
            if let Some(entry) = self.entries.remove(i) {
                let v = entry.1.clone();
                self.entries.push_front(entry);
                return Ok(v);
            }
        }
        let v = make()?;
        if self.entries.len() == self.capacity {
            self.entries.pop_back();
        }
        self.entries.push_front((key.into(), v.clone()));
        Ok(v)
    }

    /// Entries held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::Recent;
    use std::cell::Cell;

    fn get(r: &mut Recent<u32>, key: &[i32], made: &Cell<u32>) -> u32 {
        r.get_or_try_insert::<()>(key, || {
            made.set(made.get() + 1);
            Ok(made.get())
        })
        .unwrap()
    }

    #[test]
    fn hits_by_content_and_evicts_the_least_recent() {
        let made = Cell::new(0);
        let mut r = Recent::new(2);
        let (a, b, c) = ([0, 3, 7], [0, 3, 8], [0, 5]);
        let same_as_a: Vec<i32> = (0..3).map(|i| [0, 3, 7][i]).collect();
        assert_eq!(get(&mut r, &a, &made), 1);
        assert_eq!(
            get(&mut r, &same_as_a, &made),
            1,
            "same contents, another slice"
        );
        assert_eq!(get(&mut r, &b, &made), 2);
        assert_eq!(get(&mut r, &a, &made), 1, "a is now the most recent");
        assert_eq!(get(&mut r, &c, &made), 3, "evicts b, not a");
        assert_eq!(r.len(), 2);
        assert_eq!(get(&mut r, &a, &made), 1);
        assert_eq!(get(&mut r, &b, &made), 4, "b was made again");
        assert_eq!(get(&mut r, &[0, 3], &made), 5, "a prefix is another key");
        assert_eq!(made.get(), 5);
    }

    #[test]
    fn a_failed_make_keeps_nothing() {
        let mut r: Recent<u32> = Recent::new(3);
        assert_eq!(
            r.get_or_try_insert(&[0, 1], || Err("no memory")),
            Err("no memory")
        );
        assert_eq!(r.len(), 0);
        assert_eq!(r.get_or_try_insert::<()>(&[0, 1], || Ok(9)), Ok(9));
        assert_eq!(r.get_or_try_insert::<()>(&[0, 1], || Err(())), Ok(9));
    }
}
