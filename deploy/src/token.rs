//! Deterministic idempotency tokens and ids derived from a deployment id and a step name.
//!
//! Invariant: the same (deployment, step) always yields the same token, so a replay after a crash
//! is deduplicated by AWS (client tokens) or found again (external ids, tags).

use sha2::{Digest, Sha256};

/// A 32-character hex token for `(deployment_id, step)`; fits ECS `clientToken` (≤ 36 ASCII chars).
pub fn client_token(deployment_id: &str, step: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(deployment_id.as_bytes());
    hasher.update([0u8]);
    hasher.update(step.as_bytes());
    hex::encode(&hasher.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stable_and_distinct_per_step() {
        let a = client_token("dep-1", "create-service");
        assert_eq!(a, client_token("dep-1", "create-service"));
        assert_ne!(a, client_token("dep-1", "update-service"));
        assert_ne!(a, client_token("dep-2", "create-service"));
        assert_eq!(a.len(), 32);
    }
}
