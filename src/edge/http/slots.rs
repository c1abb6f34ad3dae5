//! Slots shared out per client address (issue 27, item 5): a cap on what one address may hold at
//! once and on what all addresses hold together; a slot is given back when its guard ([`Slot`])
//! drops, however the holder ends. The web page's event streams (`/ui/events`) are capped this
//! way: each holds a connection for up to 90 s.
//!
//! An address is the client's IP as the server loop saw the connection (never a forwarded
//! header); IPv4 clients of a dual-stack listener count as IPv4, and an IPv6 client counts by its
//! /64 (one host usually has a whole /64 to pick source addresses from).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Slots, capped per address and in all. Clones share the same counts.
#[derive(Clone)]
pub struct Slots {
    shared: Arc<Shared>,
}

struct Shared {
    per_peer: usize,
    total: usize,
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    /// Only addresses holding at least one slot (a released address leaves no entry behind).
    by_peer: HashMap<IpAddr, usize>,
    total: usize,
}

/// Why a slot was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The address already holds `limit` slots.
    Peer { limit: usize },
    /// All addresses together hold `limit` slots.
    Total { limit: usize },
}

/// One slot held; dropping it gives the slot back.
pub struct Slot {
    shared: Arc<Shared>,
    peer: IpAddr,
}

impl Slots {
    /// At most `per_peer` slots per address and `total` in all (each at least 1).
    pub fn new(per_peer: usize, total: usize) -> Slots {
        let shared = Shared { per_peer: per_peer.max(1), total: total.max(1), held: Mutex::new(Held::default()) };
        Slots { shared: Arc::new(shared) }
    }

    /// The most one address may hold.
    pub fn per_peer(&self) -> usize {
        self.shared.per_peer
    }

    /// A slot for `peer`, or why not.
    pub fn take(&self, peer: IpAddr) -> Result<Slot, Refused> {
        let peer = peer_key(peer);
        let mut guard = self.shared.lock();
        let held = &mut *guard;
        if held.total >= self.shared.total {
            return Err(Refused::Total { limit: self.shared.total });
        }
        let mine = held.by_peer.entry(peer).or_insert(0);
        if *mine >= self.shared.per_peer {
            return Err(Refused::Peer { limit: self.shared.per_peer });
        }
        *mine += 1;
        held.total += 1;
        Ok(Slot { shared: self.shared.clone(), peer })
    }

    /// How many slots `peer` holds.
    pub fn held_by(&self, peer: IpAddr) -> usize {
        self.shared.lock().by_peer.get(&peer_key(peer)).copied().unwrap_or(0)
    }

    /// How many slots all addresses hold.
    pub fn held(&self) -> usize {
        self.shared.lock().total
    }

    /// How many addresses hold at least one slot.
    pub fn peers(&self) -> usize {
        self.shared.lock().by_peer.len()
    }
}

impl Shared {
    /// The counts (a panic elsewhere while holding the lock cannot leave them half-updated: every
    /// update is a few integer steps).
    fn lock(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut guard = self.shared.lock();
        let held = &mut *guard;
        held.total = held.total.saturating_sub(1);
        let emptied = match held.by_peer.get_mut(&self.peer) {
            Some(mine) => {
                *mine = mine.saturating_sub(1);
                *mine == 0
            }
            None => false,
        };
        if emptied {
            held.by_peer.remove(&self.peer);
        }
    }
}

/// The address a client counts as: IPv4 for IPv4-mapped IPv6, the /64 for other IPv6.
pub fn peer_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn one_address_gets_its_share_and_no_more() {
        let slots = Slots::new(2, 10);
        let a = slots.take(ip("10.0.0.1")).ok();
        let b = slots.take(ip("10.0.0.1")).ok();
        assert!(a.is_some() && b.is_some());
        assert_eq!(slots.take(ip("10.0.0.1")).err(), Some(Refused::Peer { limit: 2 }));
        // another address is not affected
        assert!(slots.take(ip("10.0.0.2")).is_ok());
        assert_eq!(slots.held_by(ip("10.0.0.1")), 2);
    }

    #[test]
    fn all_addresses_together_stop_at_the_total() {
        let slots = Slots::new(2, 3);
        let held: Vec<Slot> = ["10.0.0.1", "10.0.0.2", "10.0.0.3"].iter().filter_map(|a| slots.take(ip(a)).ok()).collect();
        assert_eq!(held.len(), 3);
        assert_eq!(slots.take(ip("10.0.0.4")).err(), Some(Refused::Total { limit: 3 }));
        // the total is checked first: a full server says so even to an address under its share
        assert_eq!(slots.take(ip("10.0.0.1")).err(), Some(Refused::Total { limit: 3 }));
        drop(held);
        assert!(slots.take(ip("10.0.0.4")).is_ok());
    }

    #[test]
    fn dropping_a_slot_gives_it_back_and_leaves_nothing_behind() {
        let slots = Slots::new(1, 1);
        let slot = slots.take(ip("192.0.2.7")).ok();
        assert!(slot.is_some());
        assert_eq!((slots.held(), slots.peers()), (1, 1));
        assert!(slots.take(ip("192.0.2.7")).is_err());
        drop(slot);
        assert_eq!((slots.held(), slots.peers(), slots.held_by(ip("192.0.2.7"))), (0, 0, 0));
        // a clone shares the counts
        let clone = slots.clone();
        let again = clone.take(ip("192.0.2.7")).ok();
        assert!(again.is_some());
        assert_eq!(slots.held(), 1);
    }

    #[test]
    fn a_slot_moved_into_a_task_is_given_back_when_the_task_ends() {
        let slots = Slots::new(1, 4);
        let slot = slots.take(ip("192.0.2.8")).ok();
        let task = std::thread::spawn(move || drop(slot));
        assert!(task.join().is_ok());
        assert_eq!(slots.held(), 0);
        assert!(slots.take(ip("192.0.2.8")).is_ok());
    }

    #[test]
    fn mapped_ipv4_counts_as_ipv4_and_ipv6_counts_by_its_64() {
        let slots = Slots::new(1, 10);
        let v4 = slots.take(ip("198.51.100.1")).ok();
        assert!(v4.is_some());
        assert_eq!(slots.take(ip("::ffff:198.51.100.1")).err(), Some(Refused::Peer { limit: 1 }));
        let v6 = slots.take(ip("2001:db8:1:2::1")).ok();
        assert!(v6.is_some());
        assert_eq!(slots.take(ip("2001:db8:1:2:ffff::9")).err(), Some(Refused::Peer { limit: 1 }), "same /64");
        assert!(slots.take(ip("2001:db8:1:3::1")).is_ok(), "another /64");
    }

    #[test]
    fn limits_are_at_least_one() {
        let slots = Slots::new(0, 0);
        assert_eq!(slots.per_peer(), 1);
        assert!(slots.take(ip("10.0.0.1")).is_ok());
    }
}
