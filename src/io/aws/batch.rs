//! DescribeServices batched across apps (issue 15): steady-state checks of services in the same
//! cluster (account, region) that arrive within a second share one DescribeServices of up to 10
//! services, so thousands of idle apps cost a tenth of the calls. A deployment in flight never
//! waits for a batch: its read goes out at once.
//!
//! The first check of a window leads its batch: it waits the window (or until the batch is
//! full), sends the one call and hands each waiting check its service.

use super::limits::{current_priority, Priority};
use super::{AwsError, AwsErrorKind, Ecs};
use gitmoxi_deploy::observed::ObservedService;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, Notify};

/// ECS's limit of services per DescribeServices.
pub const MAX_SERVICES: usize = 10;
/// How long a batch collects steady-state checks.
pub const WINDOW: Duration = Duration::from_secs(1);

type Answer = Result<Option<ObservedService>, AwsError>;

/// One batch being collected.
struct Batch {
    waiting: Mutex<Vec<(String, oneshot::Sender<Answer>)>>,
    full: Notify,
}

/// The open batches, by (scope, cluster).
#[derive(Default)]
pub struct ServiceReads {
    open: Mutex<HashMap<String, Arc<Batch>>>,
}

impl ServiceReads {
    /// DescribeServices of `service` in `cluster` through `ecs` (whose account and region
    /// `scope` names): batched for a steady-state check, at once for a deployment.
    pub async fn describe(&self, ecs: &Arc<dyn Ecs>, scope: &str, cluster: &str, service: &str) -> Answer {
        if current_priority() == Priority::Deployment {
            return ecs.describe_service(cluster, service).await;
        }
        let key = format!("{scope}\n{cluster}");
        let (answer, lead) = {
            let mut open = crate::base::sync::lock(&self.open);
            let (tx, rx) = oneshot::channel();
            match open.get(&key).cloned() {
                Some(batch) => {
                    let mut waiting = crate::base::sync::lock(&batch.waiting);
                    waiting.push((service.to_string(), tx));
                    if waiting.len() >= MAX_SERVICES {
                        // full: nobody else joins; its leader sends it now
                        open.remove(&key);
                        batch.full.notify_one();
                    }
                    (rx, None)
                }
                None => {
                    let batch = Arc::new(Batch { waiting: Mutex::new(vec![(service.to_string(), tx)]), full: Notify::new() });
                    open.insert(key.clone(), batch.clone());
                    (rx, Some(batch))
                }
            }
        };
        if let Some(batch) = lead {
            tokio::select! {
                _ = tokio::time::sleep(WINDOW) => {}
                _ = batch.full.notified() => {}
            }
            {
                let mut open = crate::base::sync::lock(&self.open);
                if open.get(&key).is_some_and(|b| Arc::ptr_eq(b, &batch)) {
                    open.remove(&key);
                }
            }
            let waiting = std::mem::take(&mut *crate::base::sync::lock(&batch.waiting));
            let mut names: Vec<String> = waiting.iter().map(|(name, _)| name.clone()).collect();
            names.sort();
            names.dedup();
            let described = ecs.describe_services(cluster, &names).await;
            for (name, tx) in waiting {
                let answer = described.as_ref().map(|list| list.iter().find(|(n, _)| *n == name).and_then(|(_, s)| s.clone()));
                let _ = tx.send(answer.map_err(Clone::clone));
            }
        }
        answer.await.unwrap_or_else(|_| {
            // the leading check was cancelled (shutdown): this one retries on its next pass
            Err(AwsError::new("ecs", "DescribeServices", AwsErrorKind::Unavailable, "BatchCancelled", "the batched read was cancelled"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::aws::limits::PRIORITY;
    use async_trait::async_trait;
    use gitmoxi_deploy::observed::{ObservedNativeDeployment, ObservedTask, ObservedTaskSet};
    use serde_json::Value;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Knows services named `svc*`; counts DescribeServices calls and their sizes.
    #[derive(Default)]
    struct Counting {
        calls: AtomicUsize,
        largest: AtomicUsize,
    }

    fn service(name: &str) -> ObservedService {
        ObservedService { arn: format!("arn:aws:ecs:us-east-1:1:service/prod/{name}"), ..Default::default() }
    }

    #[async_trait]
    impl Ecs for Counting {
        async fn describe_services(&self, _c: &str, services: &[String]) -> Result<Vec<(String, Option<ObservedService>)>, AwsError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.largest.fetch_max(services.len(), Ordering::SeqCst);
            assert!(services.len() <= MAX_SERVICES);
            Ok(services.iter().map(|n| (n.clone(), n.starts_with("svc").then(|| service(n)))).collect())
        }
        async fn find_task_definition(&self, _: &str, _: &str) -> Result<Option<String>, AwsError> {
            unreachable!()
        }
        async fn task_definition_tags(&self, _: &str) -> Result<std::collections::BTreeMap<String, String>, AwsError> {
            unreachable!()
        }
        async fn resolve_task_definition(&self, _: &str) -> Result<Option<String>, AwsError> {
            unreachable!()
        }
        async fn service_tasks(&self, _: &str, _: &str) -> Result<Vec<ObservedTask>, AwsError> {
            unreachable!()
        }
        async fn register_task_definition(&self, _: &Value) -> Result<String, AwsError> {
            unreachable!()
        }
        async fn create_service(&self, _: &Value) -> Result<String, AwsError> {
            unreachable!()
        }
        async fn update_service(&self, _: &Value) -> Result<(), AwsError> {
            unreachable!()
        }
        async fn newest_service_deployment(&self, _: &str, _: &str, _: u64) -> Result<Option<ObservedNativeDeployment>, AwsError> {
            unreachable!()
        }
        async fn stop_service_deployment(&self, _: &str) -> Result<(), AwsError> {
            unreachable!()
        }
        async fn continue_service_deployment(&self, _: &str, _: &str, _: bool) -> Result<(), AwsError> {
            unreachable!()
        }
        async fn delete_service(&self, _: &str, _: &str) -> Result<(), AwsError> {
            unreachable!()
        }
        async fn tag_resource(&self, _: &str, _: &[(String, String)]) -> Result<(), AwsError> {
            unreachable!()
        }
        async fn describe_task_sets(&self, _: &str, _: &str) -> Result<Vec<ObservedTaskSet>, AwsError> {
            unreachable!()
        }
        async fn tasks_started_by(&self, _: &str, _: &str) -> Result<Vec<ObservedTask>, AwsError> {
            unreachable!()
        }
        async fn create_task_set(&self, _: &Value) -> Result<String, AwsError> {
            unreachable!()
        }
        async fn update_task_set_scale(&self, _: &str, _: &str, _: &str, _: f64) -> Result<(), AwsError> {
            unreachable!()
        }
        async fn update_primary_task_set(&self, _: &str, _: &str, _: &str) -> Result<(), AwsError> {
            unreachable!()
        }
        async fn delete_task_set(&self, _: &str, _: &str, _: &str) -> Result<(), AwsError> {
            unreachable!()
        }
        async fn run_task(&self, _: &Value) -> Result<(), AwsError> {
            unreachable!()
        }
        async fn task_logs(&self, _: &str) -> Result<Vec<gitmoxi_deploy::observed::ObservedTaskLogs>, AwsError> {
            unreachable!()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn steady_checks_share_calls_of_at_most_ten_and_deployments_do_not_wait() {
        let counting = Arc::new(Counting::default());
        let ecs: Arc<dyn Ecs> = counting.clone();
        let reads = Arc::new(ServiceReads::default());
        let mut checks = Vec::new();
        for i in 0..25 {
            let (ecs, reads) = (ecs.clone(), reads.clone());
            let name = if i == 7 { "gone".to_string() } else { format!("svc{i}") };
            checks.push(tokio::spawn(
                PRIORITY.scope(Priority::Steady, async move { (name.clone(), reads.describe(&ecs, "own/us-east-1", "prod", &name).await) }),
            ));
        }
        for check in checks {
            let (name, answer) = check.await.expect("task");
            let answer = answer.expect("described");
            assert_eq!(answer.is_some(), name != "gone", "{name}: each check gets its own service");
            if let Some(s) = answer {
                assert!(s.arn.ends_with(&format!("/{name}")));
            }
        }
        assert_eq!(counting.calls.load(Ordering::SeqCst), 3, "25 checks in 3 calls");
        assert_eq!(counting.largest.load(Ordering::SeqCst), MAX_SERVICES);
        // a deployment's read goes out at once, alone
        let start = tokio::time::Instant::now();
        let answer = PRIORITY.scope(Priority::Deployment, reads.describe(&ecs, "own/us-east-1", "prod", "svc1")).await;
        assert!(answer.expect("described").is_some());
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(counting.calls.load(Ordering::SeqCst), 4);
    }
}
