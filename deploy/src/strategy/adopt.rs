//! Adoption (issue 13): a fresh state store (a corrupt one moved aside, a lost volume) finds
//! apps already running in AWS. An app is recorded as applied, without a deployment, when what
//! AWS runs is provably what the head renders:
//!
//! - ECS: the service carries this app's `gitmoxi:app` tag, is steady on one revision (one
//!   deployment, or one PRIMARY task set for blue/green), and that task definition carries the
//!   head's fingerprint in its `gitmoxi:fingerprint` tag (set when gitmoxi registered it), and
//!   the service holds every svcdef field (`compare::ecs_service` finds no difference);
//! - Lambda: the function carries this app's tag, the alias points at one version without
//!   routing, and that version holds the lambdadef's zip (by SHA-256) and every configuration
//!   field it sets.
//!
//! Anything less (another fingerprint, a deployment half done, S3 code that cannot be compared)
//! deploys as usual.

use super::ecs_rolling::{TAG_APP, TAG_FINGERPRINT};
use super::{StepInput, STEADY_REQUEUE};
use crate::observed::TaskSetStatus;
use crate::plan::{Completion, Plan};
use crate::record::{Level, Outcome};
use crate::spec::{AppSpec, DesiredApp};

/// Whether a look should gather what adoption needs: a fresh store, a valid app, nothing forced.
pub fn wanted(input: &StepInput<'_>) -> bool {
    input.applied.fingerprint.is_none() && !input.commands.force && input.record.is_none_or(|r| !r.in_flight())
}

/// The plan that records `app` as applied, when AWS already runs it.
pub fn adopt(input: &StepInput<'_>, app: &DesiredApp) -> Option<Plan> {
    if !wanted(input) {
        return None;
    }
    let (running, what) = match &app.spec {
        AppSpec::Ecs(ecs) => {
            let service = input.observed.service.as_ref().filter(|s| s.is_active())?;
            if service.tags.get(TAG_APP) != Some(&input.key.tag_value()) {
                return None;
            }
            let running = match ecs.strategy {
                crate::spec::ecs::EcsStrategy::Rolling => {
                    let steady = service.deployments.len() == 1 && service.running_count >= service.desired_count;
                    service.task_definition.clone().filter(|_| steady)?
                }
                crate::spec::ecs::EcsStrategy::BlueGreen => {
                    let live: Vec<_> = input.observed.task_sets.iter().filter(|t| t.status != TaskSetStatus::Draining).collect();
                    let [primary] = live.as_slice() else { return None };
                    let steady = primary.status == TaskSetStatus::Primary && primary.running_count >= primary.computed_desired_count;
                    Some(primary.task_definition.clone()).filter(|_| steady)?
                }
            };
            let tags = input.observed.running_definition_tags.as_ref()?;
            if tags.get(TAG_FINGERPRINT) != Some(&app.fingerprint) {
                return None;
            }
            // the task definition is the head's, but the service must also hold every svcdef
            // field (issue 23: adoption decides from the one comparison); otherwise it deploys
            // and the update names what differs
            if service.settings.is_none() || !super::ecs_rolling::service_differences(&ecs.svcdef, ecs.strategy, service).is_empty() {
                return None;
            }
            let what = format!(
                "service {} already runs {}, registered for fingerprint {}",
                ecs.service_name,
                super::ecs_rolling::short_td(&running),
                crate::spec::fingerprint::short(&app.fingerprint)
            );
            (running, what)
        }
        AppSpec::Lambda(lambda) => {
            let observed = &input.observed.lambda;
            let function = observed.function.as_ref()?;
            if function.tags.get(TAG_APP) != Some(&input.key.tag_value()) {
                return None;
            }
            let alias = observed.alias.as_ref().filter(|a| a.additional.values().all(|w| *w == 0.0))?;
            let version = observed.versions.iter().find(|v| v.version == alias.function_version)?;
            let file = crate::spec::lambda::config_view(&lambda.lambdadef);
            let holds = super::lambda_shift::code_matches(lambda, version)
                && crate::spec::lambda::config_differences(&file, &version.config).is_empty();
            if !holds {
                return None;
            }
            (
                version.version.clone(),
                format!("alias {} already points at version {}, which holds this code and configuration", lambda.alias, version.version),
            )
        }
    };
    let mut record = super::start(input, app);
    record.log(input.now_ms, Level::Info, format!("adopted: {what}; nothing to deploy (the state store was empty)"));
    record.finish(Outcome::Succeeded, input.now_ms);
    let completion =
        Completion::Applied { fingerprint: app.fingerprint.clone(), commit: input.commit.to_string(), task_definition: Some(running) };
    Some(Plan { finished: Some((record, completion)), take_ownership: true, requeue_after: STEADY_REQUEUE, ..Plan::default() })
}
