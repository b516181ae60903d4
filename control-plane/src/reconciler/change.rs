//! Carrying out the steps of a change (see `plan/change.rs` for their order): each asks the
//! brokers or the platform, records what it saw on the operation, and either completes or waits.
//! A wait is bounded by [`super::ReconcilerConfig::roll_step_timeout`]; past it the operation
//! fails with the reason it waited for, and the cluster returns to ACTIVE, serving.

use chrono::Utc;
use tracing::{info, warn};

use super::execute::{node_of, node_volume, volume_spec, Outcome, Pass};
use super::plan::{node_state, Step};
use super::{ReconcileError, Reconciler};
use crate::brokers::{AlterOutcome, CanStop};
use crate::domain::{
    ClusterState, OperationState, OperationStep, OperationType, StepKind, StepStatus,
};
use crate::platform::broker_flags::{self, DYNAMIC_BROKER_SETTINGS};
use crate::platform::{NodePhase, ObservedNode, PlatformError};
use crate::store::NodeRecord;

impl Reconciler {
    /// The active controller's broker id, as the brokers see it; None when none answers (the
    /// roll then takes brokers in id order).
    pub(super) async fn active_controller(&self, observed: &[ObservedNode]) -> Option<i32> {
        let bootstrap = serving(observed);
        self.brokers
            .cluster_view(&bootstrap)
            .await
            .ok()
            .and_then(|view| view.controller_id)
    }

    pub(super) async fn perform_change(
        &self,
        pass: &mut Pass,
        step: &Step,
        nodes: &[NodeRecord],
        observed: &[ObservedNode],
    ) -> Result<Outcome, ReconcileError> {
        self.begin(pass, step).await?;
        match step {
            Step::CheckCanStop(broker_id) => {
                // Nothing is drained for a change that cannot be carried out.
                let version = pass.cluster.spec.kafka_version.to_string();
                let installed = self.platform.installed_versions();
                if !installed.contains(&version) {
                    let reason = format!(
                        "broker version {version} is not installed (installed: {})",
                        installed.join(", ")
                    );
                    self.fail(pass, step, &reason).await?;
                    return Ok(Outcome::Finished);
                }
                match self.may_stop(observed, *broker_id).await {
                    Ok(note) => self.done(pass, step, &note).await,
                    Err(why) => self.wait_or_fail(pass, step, &why).await,
                }
            }
            Step::DrainBroker(broker_id) => {
                let Some(node) = running(observed, *broker_id) else {
                    let note = format!("broker {broker_id} is not serving: nothing to drain");
                    return self.done(pass, step, &note).await;
                };
                // Asked again right before the drain (which takes the broker out of the ISRs):
                // the check step's answer may be minutes old.
                if let Err(why) = self.may_stop(observed, *broker_id).await {
                    return self.wait_or_fail(pass, step, &why).await;
                }
                match self.brokers.drain(&node.endpoints.broker_admin).await {
                    Ok(answer) => self.done(pass, step, &answer).await,
                    Err(error) => self.wait_or_fail(pass, step, &error.to_string()).await,
                }
            }
            Step::RestartBroker(broker_id) => {
                self.restart(pass, nodes, *broker_id).await?;
                let note = format!(
                    "restarted on its node and volume with {}",
                    pass.cluster.spec.kafka_version
                );
                self.done(pass, step, &note).await
            }
            Step::RestartAllBrokers => {
                let mut restarts = tokio::task::JoinSet::new();
                for node in nodes {
                    let (spec, endpoints) =
                        self.node_spec(&pass.cluster, nodes, node.broker_id).await?;
                    let platform = self.platform.clone();
                    let restart_id = restart_id(pass, node.broker_id);
                    restarts.spawn(async move {
                        platform.restart_node(&spec, &endpoints, &restart_id).await
                    });
                }
                while let Some(result) = restarts.join_next().await {
                    result.map_err(|e| PlatformError::Process(format!("restarting: {e}")))??;
                }
                for node in nodes {
                    self.record_restarted(&pass.cluster.spec.kafka_version.to_string(), node)
                        .await?;
                }
                self.done(
                    pass,
                    step,
                    "every broker restarted at once (downtime strategy)",
                )
                .await
            }
            Step::WaitInSync(broker_id) => {
                let version = pass.cluster.spec.kafka_version.as_str();
                let checked: Vec<i32> = match broker_id {
                    Some(id) => vec![*id],
                    None => nodes.iter().map(|n| n.broker_id).collect(),
                };
                for id in &checked {
                    let node = observed.iter().find(|o| o.broker_id == *id);
                    match node {
                        Some(node) if node.phase == NodePhase::Running => {
                            if node.broker_version != version {
                                let why = format!(
                                    "broker {id} runs {}, not {version} yet",
                                    node.broker_version
                                );
                                return self.wait_or_fail(pass, step, &why).await;
                            }
                        }
                        other => {
                            let why = match other {
                                Some(node) => {
                                    format!("broker {id} is {:?}: {}", node.phase, node.message)
                                }
                                None => format!("broker {id} is not running"),
                            };
                            return self.wait_or_fail(pass, step, &why).await;
                        }
                    }
                }
                let bootstrap = serving(observed);
                let view = match self.brokers.cluster_view(&bootstrap).await {
                    Ok(view) => view,
                    Err(error) => return self.wait_or_fail(pass, step, &error.to_string()).await,
                };
                for id in &checked {
                    if let Some(why) = view.not_in_sync(Some(*id)) {
                        return self.wait_or_fail(pass, step, &why).await;
                    }
                }
                for id in &checked {
                    let mut node = node_of(nodes, *id)?;
                    if node.state != node_state::RUNNING {
                        node.state = node_state::RUNNING.into();
                        self.store.upsert_node(&node).await?;
                    }
                }
                let note = format!(
                    "every one of {} partitions fully in sync",
                    view.partitions.len()
                );
                self.done(pass, step, &note).await
            }
            Step::ElectPreferredLeaders(_) => {
                let bootstrap = serving(observed);
                match self.brokers.elect_preferred_leaders(&bootstrap).await {
                    Ok(moved) => {
                        let note = format!("{moved} leadership(s) back on the preferred replica");
                        self.done(pass, step, &note).await
                    }
                    Err(error) => self.wait_or_fail(pass, step, &error.to_string()).await,
                }
            }
            Step::ApplySettings(broker_id) => {
                let targets: Vec<i32> = match broker_id {
                    Some(id) => vec![*id],
                    None => nodes.iter().map(|n| n.broker_id).collect(),
                };
                // A change made only of dynamic settings asks every broker first (validate only)
                // so that a broker that cannot take them (an older version, a value it refuses)
                // fails the change before any broker has changed.
                let dynamic_only = pass.operation.as_ref().is_some_and(|op| {
                    op.parameters
                        .settings
                        .as_ref()
                        .is_some_and(|s| !s.restarts())
                        && !op.steps.iter().any(|s| {
                            s.kind == Some(StepKind::ApplySettings)
                                && s.status == StepStatus::Complete
                        })
                });
                if dynamic_only {
                    for node in nodes {
                        match self
                            .apply_settings(pass, observed, node.broker_id, true)
                            .await
                        {
                            Ok(_) => {}
                            Err(Refusal::Wait(why)) => {
                                return self.wait_or_fail(pass, step, &why).await
                            }
                            Err(Refusal::Fail(reason)) => {
                                self.fail(pass, step, &reason).await?;
                                return Ok(Outcome::Finished);
                            }
                        }
                    }
                }
                let mut notes = Vec::new();
                for id in targets {
                    match self.apply_settings(pass, observed, id, false).await {
                        Ok(note) => notes.push(note),
                        Err(Refusal::Wait(why)) => {
                            return self.wait_or_fail(pass, step, &why).await
                        }
                        Err(Refusal::Fail(reason)) => {
                            self.fail(pass, step, &reason).await?;
                            return Ok(Outcome::Finished);
                        }
                    }
                }
                self.done(pass, step, &notes.join("; ")).await
            }
            Step::GrowVolume(broker_id) => {
                let group = &pass.cluster.spec.broker_node_group;
                let volume = volume_spec(group);
                let id = self
                    .platform
                    .ensure_volume(pass.cluster.id, *broker_id, &volume)
                    .await?;
                let mut node = node_of(nodes, *broker_id)?;
                node.volume = node_volume(group, Some(id.0));
                self.store.upsert_node(&node).await?;
                let note = format!(
                    "volume {} GiB, grown online",
                    node.volume.size_gib.unwrap_or_default()
                );
                self.done(pass, step, &note).await
            }
            Step::FinishChange => {
                // The operation first: a crash before the state moves leaves an UPDATING
                // cluster without an operation, which the planner finishes, never a finished
                // change whose operation a later pass would fail.
                self.complete(pass, step, None).await?;
                self.finish_operation(pass, OperationState::UpdateComplete, None)
                    .await?;
                // Brokers came or went: clients bootstrap from the ones there are now.
                let bootstrap = pass
                    .operation
                    .as_ref()
                    .filter(|op| op.operation_type == OperationType::UpdateBrokerCount)
                    .map(|_| {
                        nodes
                            .iter()
                            .filter_map(|n| n.endpoint.clone())
                            .collect::<Vec<_>>()
                            .join(",")
                    });
                let moved = self
                    .store
                    .transition_cluster_state(
                        pass.cluster.id,
                        pass.cluster.state,
                        ClusterState::Active,
                        bootstrap.as_deref(),
                    )
                    .await?;
                if moved {
                    info!("change carried out; cluster ACTIVE");
                }
                Ok(Outcome::Done)
            }
            other => unreachable!("{} is not a step of a change", other.name()),
        }
    }

    /// Whether stopping the broker now keeps every partition at or above min.insync.replicas:
    /// Ok with what was checked, Err with why not (yet). A serving broker answers for itself
    /// (`/admin/can-stop`); one that does not serve may be stopped only when the controller
    /// lists it in no ISR.
    pub(super) async fn may_stop(
        &self,
        observed: &[ObservedNode],
        broker_id: i32,
    ) -> Result<String, String> {
        if let Some(node) = running(observed, broker_id) {
            return match self.brokers.can_stop(&node.endpoints.broker_admin).await {
                Ok(CanStop::Yes { unavoidable }) if unavoidable.is_empty() => {
                    Ok("no partition falls below min.insync.replicas".into())
                }
                Ok(CanStop::Yes { unavoidable }) => {
                    let message = format!(
                        "no partition that can stay writable falls below min.insync.replicas; \
                         {} partition(s) have no more replicas than min.insync.replicas and \
                         refuse acks=all writes while broker {broker_id} restarts: {}",
                        unavoidable.len(),
                        first_few(&unavoidable)
                    );
                    warn!(broker_id, "{message}");
                    Ok(message)
                }
                Ok(CanStop::No(partitions)) => Err(format!(
                    "stopping broker {broker_id} now would take {} partition(s) below \
                     min.insync.replicas: {}",
                    partitions.len(),
                    first_few(&partitions)
                )),
                Err(error) => Err(error.to_string()),
            };
        }
        let view = self
            .brokers
            .cluster_view(&serving(observed))
            .await
            .map_err(|e| e.to_string())?;
        let in_isr = view
            .partitions
            .iter()
            .filter(|p| p.isr.contains(&broker_id))
            .count();
        if in_isr == 0 {
            Ok(format!(
                "broker {broker_id} is not serving and in no ISR: restarted without waiting"
            ))
        } else {
            Err(format!(
                "broker {broker_id} is not serving but still in the ISR of {in_isr} \
                 partition(s): waiting until it serves or leaves them"
            ))
        }
    }

    /// Gives one broker exactly the dynamic settings of the operation's configuration (setting
    /// the same values again is harmless, so a repeated step is too).
    async fn apply_settings(
        &self,
        pass: &Pass,
        observed: &[ObservedNode],
        broker_id: i32,
        validate_only: bool,
    ) -> Result<String, Refusal> {
        let Some(op) = pass.operation.as_ref() else {
            return Err(Refusal::Fail("the change has no operation".into()));
        };
        // The operation's, or (a change that brings no configuration) the cluster's own.
        let dynamic = match op.parameters.settings.as_ref() {
            Some(settings) => settings.dynamic.clone(),
            None => {
                let settings = self
                    .store
                    .configuration_settings(pass.cluster.spec.configuration.as_ref())
                    .await
                    .map_err(|e| Refusal::Wait(e.to_string()))?;
                broker_flags::dynamic_settings(&settings)
                    .map_err(|e| Refusal::Fail(e.to_string()))?
            }
        };
        let Some(node) = running(observed, broker_id) else {
            return Err(Refusal::Wait(format!(
                "broker {broker_id} is not serving: waiting to give it its settings"
            )));
        };
        let answer = self
            .brokers
            .set_dynamic_configs(
                &node.endpoints.kafka,
                broker_id,
                &dynamic,
                DYNAMIC_BROKER_SETTINGS,
                validate_only,
            )
            .await
            .map_err(|e| Refusal::Wait(e.to_string()))?;
        let restarted = op.steps.iter().any(|s| {
            s.status == StepStatus::Complete
                && (s.is(StepKind::RestartBroker, Some(broker_id))
                    || s.is(StepKind::RestartAllBrokers, None))
        });
        match answer {
            AlterOutcome::Applied => Ok(format!(
                "broker {broker_id}: dynamic settings {}",
                if dynamic.is_empty() {
                    "back to the start values".to_string()
                } else {
                    dynamic
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            )),
            // A broker version without dynamic settings keeps none: its restart applied the
            // whole configuration as flags.
            AlterOutcome::NotSupported(_) if restarted => Ok(format!(
                "broker {broker_id} ({}) has no dynamic settings; its restart applied the \
                 configuration",
                node.broker_version
            )),
            AlterOutcome::Invalid(said) => Err(Refusal::Fail(format!(
                "broker {broker_id} refused the settings: {said}"
            ))),
            AlterOutcome::NotSupported(said) => Err(Refusal::Fail(format!(
                "broker {broker_id} runs {}, which cannot change its settings while it runs \
                 (it answered: {said}); upgrade it first, or apply the configuration together \
                 with a version change, which restarts the brokers",
                node.broker_version
            ))),
        }
    }

    /// Restarts one broker in place with the cluster's (target) spec; idempotent per operation.
    async fn restart(
        &self,
        pass: &Pass,
        nodes: &[NodeRecord],
        broker_id: i32,
    ) -> Result<(), ReconcileError> {
        let (spec, endpoints) = self.node_spec(&pass.cluster, nodes, broker_id).await?;
        let restart_id = restart_id(pass, broker_id);
        info!(broker_id, version = %spec.broker_version, %restart_id, "restarting the broker in place");
        self.platform
            .restart_node(&spec, &endpoints, &restart_id)
            .await?;
        self.record_restarted(&spec.broker_version, &node_of(nodes, broker_id)?)
            .await
    }

    /// The store's record of a node follows its restart: the version it runs now.
    async fn record_restarted(
        &self,
        version: &str,
        node: &NodeRecord,
    ) -> Result<(), ReconcileError> {
        let mut node = node.clone();
        node.version = version.to_owned();
        node.state = node_state::STARTING.into();
        self.store.upsert_node(&node).await?;
        Ok(())
    }

    pub(super) async fn done(
        &self,
        pass: &mut Pass,
        step: &Step,
        note: &str,
    ) -> Result<Outcome, ReconcileError> {
        info!(step = %step.name(), %note, "step complete");
        self.complete(pass, step, Some(note)).await?;
        Ok(Outcome::Done)
    }

    /// Records why the step waits and ends the pass; fails the operation once the step has
    /// waited longer than the roll step timeout.
    pub(super) async fn wait_or_fail(
        &self,
        pass: &mut Pass,
        step: &Step,
        why: &str,
    ) -> Result<Outcome, ReconcileError> {
        let waited = in_progress(pass, step)
            .and_then(|s| s.started_at)
            .map(|started| (Utc::now() - started).to_std().unwrap_or_default())
            .unwrap_or_default();
        if waited > self.config.roll_step_timeout {
            let reason = format!(
                "{} gave up after {:?}: {why}",
                step.name(),
                self.config.roll_step_timeout
            );
            self.fail(pass, step, &reason).await?;
            return Ok(Outcome::Finished);
        }
        self.record_step(pass, step, StepStatus::InProgress, Some(why))
            .await?;
        Ok(Outcome::Wait)
    }
}

/// Why a step cannot complete now.
enum Refusal {
    /// It may later: wait (up to the roll step timeout).
    Wait(String),
    /// It never will: the operation fails.
    Fail(String),
}

/// The id a broker's in-place restart is carried out under: one per operation and broker, so
/// a repeated step finds it done.
fn restart_id(pass: &Pass, broker_id: i32) -> String {
    let operation = pass.operation.as_ref().map(|op| op.id.to_string());
    format!("{}/broker-{broker_id}", operation.unwrap_or_default())
}

pub(super) fn running(observed: &[ObservedNode], broker_id: i32) -> Option<&ObservedNode> {
    observed
        .iter()
        .find(|o| o.broker_id == broker_id && o.phase == NodePhase::Running)
}

/// Kafka listeners of the serving brokers.
pub(super) fn serving(observed: &[ObservedNode]) -> Vec<String> {
    observed
        .iter()
        .filter(|o| o.phase == NodePhase::Running)
        .map(|o| o.endpoints.kafka.clone())
        .collect()
}

/// The first five of `names`, for a step's message.
pub(super) fn first_few(names: &[String]) -> String {
    let mut text = names.iter().take(5).cloned().collect::<Vec<_>>().join("; ");
    if names.len() > 5 {
        text.push_str(&format!("; and {} more", names.len() - 5));
    }
    text
}

/// The operation's record of `step`, while it is in progress.
pub(super) fn in_progress<'a>(pass: &'a Pass, step: &Step) -> Option<&'a OperationStep> {
    let (kind, broker_id) = step.kind();
    pass.operation.as_ref().and_then(|op| {
        op.steps
            .iter()
            .rev()
            .find(|s| s.is(kind, broker_id) && s.status == StepStatus::InProgress)
    })
}
