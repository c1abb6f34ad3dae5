//! Sharding and leases of high availability (SPEC §7.3): which shard an app belongs to, and which
//! shard leases a replica should take or give back.
//!
//! Pure: the lease table is read by the caller and handed in with `now`; the answer is what to
//! try, and the caller's conditional writes to the table decide who wins a race. Invariants: an
//! app's shard depends only on its key and the shard count (never on the process, the build or
//! the platform); a replica never plans to take a lease that another live replica holds; every
//! live replica's fair share differs from another's by at most one shard.

use crate::record::AppKey;
use std::collections::BTreeSet;

/// The shard of an app: FNV-1a (64 bits) of `repo \0 branch \0 prefix`, modulo `shards`. Stable
/// across processes, builds and platforms (it decides who may write the app's state).
pub fn shard_of(key: &AppKey, shards: u32) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let parts = [key.repo.as_bytes(), b"\0", key.branch.as_bytes(), b"\0", key.prefix.as_bytes()];
    for byte in parts.iter().flat_map(|p| p.iter()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % u64::from(shards.max(1))) as u32
}

/// One shard's lease as the table holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The shard (0 ≤ shard < shard count).
    pub shard: u32,
    /// The replica that took it last.
    pub owner: String,
    /// The fencing token: grows by one on every take-over.
    pub token: u64,
    /// Until when the owner holds it (epoch milliseconds); after that anyone may take it.
    pub expires_ms: u64,
}

impl Lease {
    /// Whether the owner still holds it at `now_ms`.
    pub fn is_held(&self, now_ms: u64) -> bool {
        self.expires_ms > now_ms
    }
}

/// What one replica should do with the leases this round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeasePlan {
    /// Shards whose lease it holds and should renew.
    pub renew: Vec<u32>,
    /// Free or expired shards it should try to take (a conditional write decides).
    pub take: Vec<u32>,
    /// Shards it holds beyond its fair share: give them back so a newer replica gets work.
    pub release: Vec<u32>,
}

/// The fair share of `replicas` live replicas over `shards` shards: the first `shards % replicas`
/// replicas (in name order) take one more.
pub fn fair_share(me: &str, live: &BTreeSet<String>, shards: u32) -> u32 {
    let count = live.len().max(1) as u32;
    let rank = live.iter().position(|r| r == me).unwrap_or(live.len()) as u32;
    shards / count + u32::from(rank < shards % count)
}

/// What `me` should do: renew what it holds; take free shards up to its fair share (the lowest
/// first: replicas racing for the same one resolve it by the table's condition); give back the
/// highest ones it holds beyond its share, but only when every shard has a live holder, so no
/// shard is left without an owner while others are still free.
pub fn plan_leases(me: &str, now_ms: u64, shards: u32, leases: &[Lease], live: &BTreeSet<String>) -> LeasePlan {
    let mut live = live.clone();
    live.insert(me.to_string());
    let share = fair_share(me, &live, shards);
    let held_by = |shard: u32| leases.iter().find(|l| l.shard == shard && l.is_held(now_ms));
    let mine: Vec<u32> = (0..shards).filter(|s| held_by(*s).is_some_and(|l| l.owner == me)).collect();
    // a holder that stopped renewing loses its shard when its lease runs out, not before: a
    // paused owner may still be writing until then, and the fencing token stops it after
    let free: Vec<u32> = (0..shards).filter(|s| held_by(*s).is_none()).collect();
    let mut plan = LeasePlan { renew: mine.clone(), ..LeasePlan::default() };
    let room = share.saturating_sub(mine.len() as u32) as usize;
    plan.take = free.iter().copied().take(room).collect();
    if free.is_empty() && mine.len() as u32 > share {
        let excess = mine.len() - share as usize;
        plan.release = mine.iter().rev().take(excess).copied().collect();
        plan.release.sort_unstable();
        plan.renew.retain(|s| !plan.release.contains(s));
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(prefix: &str) -> AppKey {
        AppKey { repo: "https://git.example/ops.git".into(), branch: "main".into(), prefix: prefix.into() }
    }

    fn lease(shard: u32, owner: &str, expires_ms: u64) -> Lease {
        Lease { shard, owner: owner.into(), token: 1, expires_ms }
    }

    fn live(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    /// Computed once by hand (FNV-1a 64, modulo 16); a changed hash would hand every app to
    /// another owner on upgrade.
    const PINNED: [u32; 3] = [1, 7, 15];

    #[test]
    fn an_apps_shard_is_stable_and_spread() {
        // fixed values: changing the hash would move every app to another owner on upgrade
        assert_eq!(shard_of(&key("apps/web"), 16), shard_of(&key("apps/web"), 16));
        assert_eq!(shard_of(&key("apps/web"), 1), 0);
        let pinned: Vec<u32> = ["apps/web", "apps/api", "fn/hello"].iter().map(|p| shard_of(&key(p), 16)).collect();
        assert_eq!(pinned, PINNED);
        let mut counts = [0u32; 16];
        for i in 0..1600 {
            counts[shard_of(&key(&format!("apps/svc-{i}")), 16) as usize] += 1;
        }
        assert!(counts.iter().all(|c| (60..=140).contains(c)), "uneven spread: {counts:?}");
    }

    #[test]
    fn fair_shares_differ_by_at_most_one_and_cover_every_shard() {
        for replicas in 1..=5usize {
            let names: Vec<String> = (0..replicas).map(|i| format!("r{i}")).collect();
            let set: BTreeSet<String> = names.iter().cloned().collect();
            let shares: Vec<u32> = names.iter().map(|n| fair_share(n, &set, 16)).collect();
            assert_eq!(shares.iter().sum::<u32>(), 16, "{replicas} replicas: {shares:?}");
            assert!(shares.iter().max().unwrap_or(&0) - shares.iter().min().unwrap_or(&0) <= 1);
        }
    }

    #[test]
    fn a_replica_takes_free_and_expired_shards_up_to_its_share_and_never_a_held_one() {
        let leases = vec![lease(0, "b", 2_000), lease(1, "gone", 500), lease(2, "a", 2_000)];
        let plan = plan_leases("a", 1_000, 4, &leases, &live(&["a", "b"]));
        assert_eq!(plan.renew, vec![2]);
        assert_eq!(plan.take, vec![1], "share 2: holds 2, takes the expired 1; 0 is b's");
        assert!(plan.release.is_empty());
        // alone: everything not held by a live lease
        let plan = plan_leases("a", 1_000, 4, &leases, &live(&[]));
        assert_eq!(plan.take, vec![1, 3]);
    }

    #[test]
    fn a_replica_gives_back_its_excess_only_once_every_shard_is_held() {
        let all_mine: Vec<Lease> = (0..4).map(|s| lease(s, "a", 9_000)).collect();
        let plan = plan_leases("a", 1_000, 4, &all_mine, &live(&["a", "b"]));
        assert_eq!(plan.release, vec![2, 3]);
        assert_eq!(plan.renew, vec![0, 1]);
        // a free shard remains: keep what it holds (the newcomer takes the free one first)
        let mut three = all_mine.clone();
        three.truncate(3);
        let plan = plan_leases("a", 1_000, 4, &three, &live(&["a", "b"]));
        assert!(plan.release.is_empty());
        assert_eq!(plan.renew, vec![0, 1, 2]);
        assert!(plan.take.is_empty());
    }
}
