//! Carrying out a broker-count change (see `plan/change.rs::plan_count` for the order): the check
//! that every topic fits on the brokers that remain, the partition moves, and the removal of a
//! leaving broker.
//!
//! Partitions move through Kafka's own reassignment (AlterPartitionReassignments to the active
//! controller), at most [`MOVES_IN_FLIGHT`] at a time, each leader copying to the new replicas at
//! the operation's replication throttle. The target assignment is recomputed on every pass from
//! the controller's metadata (in-flight moves counted at their target), which is deterministic
//! and leaves a balanced assignment alone, so a control plane restarted mid-move carries on
//! with the same plan instead of starting another.

use std::collections::BTreeMap;

use chrono::Utc;
use tracing::{info, warn};

use super::change::{first_few, in_progress, serving};
use super::execute::{Outcome, Pass};
use super::plan::balance::{self, Placement};
use super::plan::Step;
use super::{ReconcileError, Reconciler};
use crate::brokers::{AlterOutcome, Reassigning};
use crate::domain::{ProgressUnit, ReplicationThrottle, StepProgress, StepStatus};
use crate::platform::ObservedNode;
use crate::store::{NodeRecord, StoreError};

/// Partitions being copied at once: enough to keep every broker busy, few enough that the
/// moves that are done are done early (and the throttle is shared by few).
pub const MOVES_IN_FLIGHT: usize = 8;

impl Reconciler {
    pub(super) async fn perform_scale(
        &self,
        pass: &mut Pass,
        step: &Step,
        nodes: &[NodeRecord],
        observed: &[ObservedNode],
    ) -> Result<Outcome, ReconcileError> {
        self.begin(pass, step).await?;
        match step {
            Step::CheckRemoval => self.check_removal(pass, step, observed).await,
            Step::MovePartitions => self.move_partitions(pass, step, nodes, observed).await,
            Step::RemoveNode(broker_id) => {
                self.remove_broker(pass, step, nodes, observed, *broker_id)
                    .await
            }
            other => unreachable!("{} is not a step of a broker-count change", other.name()),
        }
    }

    /// Fails the change before anything moves when a partition has more replicas than brokers
    /// would remain.
    async fn check_removal(
        &self,
        pass: &mut Pass,
        step: &Step,
        observed: &[ObservedNode],
    ) -> Result<Outcome, ReconcileError> {
        let remaining = pass.cluster.spec.number_of_broker_nodes.get() as usize;
        let view = match self.brokers.cluster_view(&serving(observed)).await {
            Ok(view) => view,
            Err(error) => return self.wait_or_fail(pass, step, &error.to_string()).await,
        };
        let too_wide: Vec<String> = view
            .partitions
            .iter()
            .filter(|p| p.replicas.len() > remaining)
            .map(|p| {
                format!(
                    "{}-{} ({} replicas)",
                    p.topic,
                    p.partition,
                    p.replicas.len()
                )
            })
            .collect();
        if !too_wide.is_empty() {
            let reason = format!(
                "{} partition(s) have more replicas than the {remaining} brokers that would \
                 remain: {}; nothing was changed (lower their replication factor first)",
                too_wide.len(),
                first_few(&too_wide)
            );
            self.fail(pass, step, &reason).await?;
            return Ok(Outcome::Finished);
        }
        let widest = view
            .partitions
            .iter()
            .map(|p| p.replicas.len())
            .max()
            .unwrap_or(0);
        let note = format!(
            "every one of {} partitions fits on {remaining} brokers (at most {widest} replicas)",
            view.partitions.len()
        );
        self.done(pass, step, &note).await
    }

    /// One pass of the moves: starts the next ones, records progress, and completes once the
    /// assignment is balanced over the desired brokers and every partition is in sync.
    async fn move_partitions(
        &self,
        pass: &mut Pass,
        step: &Step,
        nodes: &[NodeRecord],
        observed: &[ObservedNode],
    ) -> Result<Outcome, ReconcileError> {
        let bootstrap = serving(observed);
        let target_count = pass.cluster.spec.number_of_broker_nodes.get() as i32;
        let brokers: BTreeMap<i32, String> = nodes
            .iter()
            .filter(|n| n.broker_id <= target_count)
            .map(|n| (n.broker_id, n.zone.clone()))
            .collect();
        // The moves in progress first, the metadata second: a move that ends between the two
        // is then seen done in the metadata, never as its replicas old and new together with
        // no reassignment to say which ones are leaving.
        let ongoing = match self.brokers.reassignments(&bootstrap).await {
            Ok(ongoing) => ongoing,
            Err(error) => return self.wait_or_fail(pass, step, &error.to_string()).await,
        };
        let view = match self.brokers.cluster_view(&bootstrap).await {
            Ok(view) => view,
            Err(error) => return self.wait_or_fail(pass, step, &error.to_string()).await,
        };
        if let Some(missing) = brokers
            .keys()
            .find(|id| !view.broker_addresses.contains_key(id))
        {
            let why = format!("broker {missing} is not registered with the controller");
            return self.wait_or_fail(pass, step, &why).await;
        }
        let in_flight = |p: &crate::brokers::PartitionView| -> Option<&Reassigning> {
            ongoing
                .iter()
                .find(|r| r.topic == p.topic && r.partition == p.partition)
        };
        let current: Vec<Placement> = view
            .partitions
            .iter()
            .map(|p| Placement {
                topic: p.topic.clone(),
                partition: p.partition,
                replicas: in_flight(p).map_or_else(|| p.replicas.clone(), |r| r.target.clone()),
            })
            .collect();
        let target = match balance::balance(&current, &brokers) {
            Ok(target) => target,
            Err(error) => {
                let reason = format!("no assignment fits the brokers: {error}");
                self.fail(pass, step, &reason).await?;
                return Ok(Outcome::Finished);
            }
        };
        let pending: Vec<Placement> = balance::moves(&current, &target)
            .into_iter()
            .filter(|m| {
                !ongoing
                    .iter()
                    .any(|r| r.topic == m.topic && r.partition == m.partition)
            })
            .collect();
        tracing::debug!(
            ongoing = ongoing.len(),
            pending = pending.len(),
            partitions = current.len(),
            "partition moves"
        );
        let left = (pending.len() + ongoing.len()) as u32;
        let progress = self.progress(pass, step, left);
        let throttle = pass
            .operation
            .as_ref()
            .and_then(|op| op.parameters.replication_throttle)
            .unwrap_or_default();
        if left == 0 {
            if let Some(why) = view.not_in_sync(None) {
                return self.wait_or_fail(pass, step, &why).await;
            }
            self.throttle_brokers(observed, None).await;
            let note = format!(
                "replicas and preferred leaders balanced over brokers {}: {} partition(s) moved",
                brokers
                    .keys()
                    .map(i32::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                progress.total
            );
            self.complete(pass, step, Some(&note)).await?;
            self.set_progress(pass, step, progress).await?;
            return Ok(Outcome::Done);
        }
        let unthrottled = self.throttle_brokers(observed, Some(throttle)).await;
        let room = MOVES_IN_FLIGHT.saturating_sub(ongoing.len());
        let starting: Vec<(String, i32, Vec<i32>)> = pending
            .iter()
            .take(room)
            .map(|m| (m.topic.clone(), m.partition, m.replicas.clone()))
            .collect();
        let mut refused_note = String::new();
        if !starting.is_empty() {
            match self.brokers.reassign(&bootstrap, &starting).await {
                Ok(refused) => {
                    for m in &starting {
                        if !refused.iter().any(|r| r.topic == m.0 && r.partition == m.1) {
                            info!(topic = %m.0, partition = m.1, replicas = ?m.2, "moving partition");
                        }
                    }
                    if !refused.is_empty() {
                        let said: Vec<String> = refused
                            .iter()
                            .map(|r| {
                                format!(
                                    "{}-{}: error {} {}",
                                    r.topic, r.partition, r.error_code, r.message
                                )
                            })
                            .collect();
                        warn!(refused = %said.join("; "), "the controller refused some moves");
                        refused_note = format!("; refused (retried): {}", first_few(&said));
                    }
                }
                Err(error) => return self.wait_or_fail(pass, step, &error.to_string()).await,
            }
        }
        let moving: Vec<String> = ongoing
            .iter()
            .map(|r| format!("{}-{} to {:?}", r.topic, r.partition, r.target))
            .chain(starting.iter().map(|(t, p, r)| format!("{t}-{p} to {r:?}")))
            .collect();
        let message = format!(
            "{} of {} partition move(s) done; moving {} at {} bytes/s per leader{}{}",
            progress.done,
            progress.total,
            first_few(&moving),
            throttle.bytes_per_second(),
            if unthrottled.is_empty() {
                String::new()
            } else {
                format!(
                    " (not throttled on {}: their version has no replication throttle)",
                    unthrottled.join(", ")
                )
            },
            refused_note
        );
        let stalled = (Utc::now() - progress.advanced_at)
            .to_std()
            .unwrap_or_default();
        if stalled > self.config.roll_step_timeout {
            let reason = format!(
                "MovePartitions made no progress for {:?}: {message}",
                self.config.roll_step_timeout
            );
            self.fail(pass, step, &reason).await?;
            return Ok(Outcome::Finished);
        }
        self.record_step(pass, step, StepStatus::InProgress, Some(&message))
            .await?;
        self.set_progress(pass, step, progress).await?;
        Ok(Outcome::Wait)
    }

    /// The step's progress with `left` moves to go: the total is fixed by the first pass (and
    /// grows when new moves appear, e.g. a topic created meanwhile).
    fn progress(&self, pass: &Pass, step: &Step, left: u32) -> StepProgress {
        let before = in_progress(pass, step).and_then(|s| s.progress);
        let now = Utc::now();
        match before {
            None => StepProgress {
                done: 0,
                total: left,
                unit: ProgressUnit::Partitions,
                advanced_at: now,
            },
            Some(before) => {
                let total = before.total.max(before.done + left);
                let done = total - left;
                StepProgress {
                    done,
                    total,
                    unit: ProgressUnit::Partitions,
                    advanced_at: if done > before.done {
                        now
                    } else {
                        before.advanced_at
                    },
                }
            }
        }
    }

    async fn set_progress(
        &self,
        pass: &mut Pass,
        step: &Step,
        progress: StepProgress,
    ) -> Result<(), ReconcileError> {
        let (kind, broker_id) = step.kind();
        let Some(op) = pass.operation.as_mut() else {
            return Ok(());
        };
        let Some(recorded) = op.steps.iter_mut().rev().find(|s| s.is(kind, broker_id)) else {
            return Ok(());
        };
        if recorded.progress != Some(progress) {
            recorded.progress = Some(progress);
            self.store.set_operation_steps(op.id, &op.steps).await?;
        }
        Ok(())
    }

    /// Sets (or removes) the replication throttle on every serving broker. Answers the brokers
    /// that could not take it (a version without it): their moves run unthrottled.
    async fn throttle_brokers(
        &self,
        observed: &[ObservedNode],
        throttle: Option<ReplicationThrottle>,
    ) -> Vec<String> {
        let mut unthrottled = Vec::new();
        for node in observed
            .iter()
            .filter(|o| o.phase == crate::platform::NodePhase::Running)
        {
            let answer = self
                .brokers
                .set_replication_throttle(
                    &node.endpoints.kafka,
                    node.broker_id,
                    throttle.map(ReplicationThrottle::bytes_per_second),
                )
                .await;
            match answer {
                Ok(AlterOutcome::Applied) => {}
                Ok(AlterOutcome::NotSupported(said) | AlterOutcome::Invalid(said)) => {
                    if throttle.is_some() {
                        warn!(broker_id = node.broker_id, %said, "the broker takes no replication throttle");
                        unthrottled.push(format!("broker {}", node.broker_id));
                    }
                }
                Err(error) => {
                    warn!(broker_id = node.broker_id, %error, "setting the replication throttle");
                    if throttle.is_some() {
                        unthrottled.push(format!("broker {}", node.broker_id));
                    }
                }
            }
        }
        unthrottled
    }

    /// Removes a leaving broker once it holds no replica: its node (a controlled shutdown),
    /// its volume, and its record (with its agent token).
    async fn remove_broker(
        &self,
        pass: &mut Pass,
        step: &Step,
        nodes: &[NodeRecord],
        observed: &[ObservedNode],
        broker_id: i32,
    ) -> Result<Outcome, ReconcileError> {
        let cluster_id = pass.cluster.id;
        let still_there = observed.iter().any(|o| o.broker_id == broker_id);
        if still_there {
            let view = match self.brokers.cluster_view(&serving(observed)).await {
                Ok(view) => view,
                Err(error) => return self.wait_or_fail(pass, step, &error.to_string()).await,
            };
            let held: Vec<String> = view
                .partitions
                .iter()
                .filter(|p| p.replicas.contains(&broker_id))
                .map(|p| format!("{}-{}", p.topic, p.partition))
                .collect();
            if !held.is_empty() {
                let why = format!(
                    "broker {broker_id} still holds {} replica(s): {}",
                    held.len(),
                    first_few(&held)
                );
                return self.wait_or_fail(pass, step, &why).await;
            }
            info!(broker_id, "removing the broker's node");
            self.platform.delete_node(cluster_id, broker_id).await?;
        }
        // Out of the metadata, so that clients stop seeing it (a broker version without
        // UnregisterBroker leaves it listed as fenced).
        let remaining: Vec<ObservedNode> = observed
            .iter()
            .filter(|o| o.broker_id != broker_id)
            .cloned()
            .collect();
        let unregistered = match self
            .brokers
            .unregister(&serving(&remaining), broker_id)
            .await
        {
            Ok(true) => "unregistered",
            Ok(false) => "not registered",
            Err(error) => {
                warn!(broker_id, %error, "could not unregister the removed broker");
                "left registered (fenced)"
            }
        };
        if let Some(node) = nodes.iter().find(|n| n.broker_id == broker_id) {
            if node.volume.persistent {
                self.platform.delete_volume(cluster_id, broker_id).await?;
            }
        }
        match self.store.delete_node(cluster_id, broker_id).await {
            Ok(()) | Err(StoreError::NotFound) => {}
            Err(error) => return Err(error.into()),
        }
        let note = format!(
            "broker {broker_id} removed with its volume ({unregistered}); it held no replica"
        );
        self.done(pass, step, &note).await
    }
}
