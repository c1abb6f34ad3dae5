//! The work queue (ARCHITECTURE rule 8): de-duplicated per key (earliest deadline wins),
//! delayed, at most one reconcile in flight per key; a key added while in flight runs again
//! after it finishes.
//!
//! Bounded by construction: one entry per key, and keys are apps.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::Hash;
use std::sync::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

struct Inner<K> {
    due: HashMap<K, (Instant, u64)>,
    order: BTreeSet<(Instant, u64, K)>,
    in_flight: HashSet<K>,
    again: HashMap<K, Instant>,
    seq: u64,
}

pub struct WorkQueue<K> {
    inner: Mutex<Inner<K>>,
    notify: Notify,
}

impl<K: Clone + Eq + Hash + Ord> Default for WorkQueue<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Clone + Eq + Hash + Ord> WorkQueue<K> {
    pub fn new() -> Self {
        WorkQueue {
            inner: Mutex::new(Inner {
                due: HashMap::new(),
                order: BTreeSet::new(),
                in_flight: HashSet::new(),
                again: HashMap::new(),
                seq: 0,
            }),
            notify: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K>> {
        crate::base::sync::lock(&self.inner)
    }

    /// Schedules `key` at `at` (an earlier existing deadline wins).
    pub fn add_at(&self, key: K, at: Instant) {
        let mut q = self.lock();
        if q.in_flight.contains(&key) {
            let slot = q.again.entry(key).or_insert(at);
            if at < *slot {
                *slot = at;
            }
            return;
        }
        Self::schedule(&mut q, key, at);
        drop(q);
        self.notify.notify_one();
    }

    fn schedule(q: &mut Inner<K>, key: K, at: Instant) {
        if let Some((existing, seq)) = q.due.get(&key).copied() {
            if existing <= at {
                return;
            }
            q.order.remove(&(existing, seq, key.clone()));
        }
        q.seq += 1;
        let seq = q.seq;
        q.due.insert(key.clone(), (at, seq));
        q.order.insert((at, seq, key));
    }

    pub fn add(&self, key: K) {
        self.add_at(key, Instant::now());
    }

    /// Waits for the next due key and marks it in flight.
    pub async fn next(&self) -> K {
        loop {
            let wait_until = {
                let mut q = self.lock();
                let now = Instant::now();
                match q.order.first().cloned() {
                    Some((at, seq, key)) if at <= now => {
                        q.order.remove(&(at, seq, key.clone()));
                        q.due.remove(&key);
                        q.in_flight.insert(key.clone());
                        return key;
                    }
                    Some((at, _, _)) => Some(at),
                    None => None,
                }
            };
            match wait_until {
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = self.notify.notified() => {}
                    }
                }
                None => self.notify.notified().await,
            }
        }
    }

    /// Marks `key` done; a re-add that arrived while in flight is scheduled now.
    pub fn done(&self, key: &K) {
        let mut q = self.lock();
        q.in_flight.remove(key);
        if let Some(at) = q.again.remove(key) {
            Self::schedule(&mut q, key.clone(), at);
            drop(q);
            self.notify.notify_one();
        }
    }

    /// When `key` runs next: now when it is in flight, else its deadline (`None`: nothing is
    /// scheduled for it).
    pub fn due_at(&self, key: &K) -> Option<Instant> {
        let q = self.lock();
        if q.in_flight.contains(key) {
            return Some(Instant::now());
        }
        q.due.get(key).map(|(at, _)| *at)
    }

    /// Keys waiting (not in flight).
    pub fn len(&self) -> usize {
        self.lock().due.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn earliest_deadline_wins_and_keys_are_deduplicated() {
        let q = WorkQueue::new();
        let now = Instant::now();
        q.add_at("a", now + Duration::from_secs(10));
        q.add_at("a", now + Duration::from_secs(5));
        q.add_at("a", now + Duration::from_secs(50));
        q.add_at("b", now + Duration::from_secs(7));
        assert_eq!(q.len(), 2);
        assert_eq!(q.next().await, "a");
        assert_eq!(Instant::now(), now + Duration::from_secs(5));
        assert_eq!(q.next().await, "b");
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_in_flight_runs_again_after_done() {
        let q = WorkQueue::new();
        q.add("a");
        assert_eq!(q.next().await, "a");
        q.add("a");
        assert!(q.is_empty(), "not handed out twice while in flight");
        q.done(&"a");
        assert_eq!(q.next().await, "a");
    }
}
