//! The facts a hold is decided from (issue 26): where each dependency of the app stands, which
//! apps being deleted still depend on it, the freeze in force and the operator's override. The
//! decision is the pure crate's ([`gitmoxi_deploy::release::hold_of`]); this only reads the
//! store, the head and the clock. Also: who to wake when a deployment ends (the apps that wait
//! on it).

use super::{Controller, HeadState};
use gitmoxi_deploy::commands::OperatorCommands;
use gitmoxi_deploy::intent::Intent;
use gitmoxi_deploy::record::AppKey;
use gitmoxi_deploy::release::{dependency_state, hold_of, DependencyFacts, Hold, HoldFacts};
use gitmoxi_deploy::strategy::Desired;
use gitmoxi_state::StoreError;

impl Controller {
    /// What would hold the app's change back if one started now (`None`: nothing).
    pub(super) fn hold_for(
        &self,
        key: &AppKey,
        head: &HeadState,
        desired: &Desired<'_>,
        commands: &OperatorCommands,
    ) -> Result<Option<Hold>, StoreError> {
        if head.pins.contains_key(&key.prefix) {
            // an operator's rollback to an earlier release: neither a freeze nor the order holds it
            return Ok(None);
        }
        let sibling = |prefix: &str| AppKey { repo: key.repo.clone(), branch: key.branch.clone(), prefix: prefix.to_string() };
        let mut facts = HoldFacts {
            freeze: gitmoxi_deploy::release::freeze::active(&self.settings.freezes, key, self.clock.now_ms()),
            override_freeze: commands.override_freeze.is_some(),
            ..HoldFacts::default()
        };
        match desired {
            Desired::Present(app) => {
                for dep in app.depends_on() {
                    let dep_key = sibling(dep);
                    let entry = self.store.app(&dep_key)?;
                    let in_flight = self.store.record(&dep_key)?.is_some_and(|r| r.in_flight());
                    let cause = entry.as_ref().and_then(|e| e.last_cause.as_ref()).map(ToString::to_string);
                    let state = dependency_state(&DependencyFacts {
                        intent: head.intents.get(dep).map(|i| i.intent),
                        head_fingerprint: head.fingerprint_of(dep),
                        applied: entry.as_ref().map(|e| &e.applied),
                        last_outcome: entry.as_ref().and_then(|e| e.last_outcome),
                        last_cause: cause.as_deref(),
                        in_flight,
                    });
                    facts.dependencies.push((dep.clone(), state));
                }
            }
            Desired::Deleted => {
                facts.delete = true;
                for other in head.intents.values().filter(|i| i.intent == Intent::Delete && i.app != key.prefix) {
                    let other_key = sibling(&other.app);
                    let depends = self.store.intent(&other_key)?.is_some_and(|i| i.depends_on.contains(&key.prefix));
                    if !depends {
                        continue;
                    }
                    let still_there = self.store.app(&other_key)?.is_some_and(|e| e.applied.owned || e.applied.fingerprint.is_some());
                    if still_there {
                        facts.dependents_still_there.push(other.app.clone());
                    }
                }
            }
            Desired::DeleteHeld | Desired::Blocked | Desired::Invalid(_) => return Ok(None),
        }
        Ok(hold_of(&facts))
    }

    /// Queues the apps that may have waited on `key`: its dependents in the head (a deploy that
    /// ended), and what it depends on (a delete that ended: theirs may go now).
    pub(super) fn wake_waiting_on(&self, key: &AppKey) {
        let Some(head) = self.head(&key.repo, &key.branch) else { return };
        let mut woken = Vec::new();
        for app in head.snapshot.valid() {
            if app.depends_on().contains(&key.prefix) {
                woken.push(app.prefix.clone());
            }
        }
        if let Ok(Some(intent)) = self.store.intent(key) {
            woken.extend(intent.depends_on);
        }
        for prefix in woken {
            self.queue.add(AppKey { repo: key.repo.clone(), branch: key.branch.clone(), prefix });
        }
    }
}
