//! The active controller: what the Raft leader does besides replicating. It serves controller
//! requests (placement, heartbeats, controlled shutdown, joins) and fences brokers whose session
//! expired. The decisions are the pure functions of `controller`; this file is their I/O.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use uuid::Uuid;

use crate::command::{Command, CommandOutcome, HeartbeatOutcome, Rejection};
use crate::controller::liveness::{expired_sessions, SessionStart};
use crate::controller::partitions::leaderships_to_move;
use crate::controller::placement::{default_replication_factor, place_partitions};
use crate::error::QuorumError;
use crate::metadata::ClusterMetadata;
use crate::quorum::MetadataQuorum;
use crate::rpc::{ControllerRequest, ControllerResponse};

/// Kafka's `min.insync.replicas`, set on new topics with at least 3 replicas unless given.
pub const DEFAULT_MIN_INSYNC_REPLICAS: &str = "2";

/// Leader-only, in-memory state (not replicated: a new leader starts it afresh).
#[derive(Default)]
pub(crate) struct ActiveController {
    sessions: parking_lot::Mutex<Sessions>,
    /// One membership change at a time.
    pub(crate) membership_change: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Sessions {
    term: u64,
    last_heartbeat: HashMap<i32, Instant>,
    /// The last other node seen leading the quorum, while this one was not.
    other_controller: Option<i32>,
    /// This term's session start, with what was known of the controller before.
    start: Option<SessionStart>,
}

impl ActiveController {
    fn record_heartbeat(&self, broker_id: i32) {
        self.sessions
            .lock()
            .last_heartbeat
            .insert(broker_id, Instant::now());
    }

    fn note_other_controller(&self, broker_id: i32) {
        self.sessions.lock().other_controller = Some(broker_id);
    }

    /// The previous controller's quorum listener refused a connection: no quorum process runs
    /// there, so its broker's session is over now rather than after the rest of its timeout.
    fn previous_controller_is_down(&self, term: u64, session_timeout: Duration) {
        let mut sessions = self.sessions.lock();
        if sessions.term != term {
            return;
        }
        if let Some(start) = sessions.start.as_mut() {
            if let Some((id, last_heard)) = start.previous_controller {
                let gone = start
                    .since
                    .checked_sub(session_timeout)
                    .unwrap_or(start.since);
                start.previous_controller = Some((id, last_heard.min(gone)));
            }
        }
    }

    /// When this node became the controller of `term` (sessions restart with a new term), and
    /// the previous controller, unheard of for at least `election_timeout` by then.
    fn session_start(&self, term: u64, election_timeout: Duration) -> SessionStart {
        let mut sessions = self.sessions.lock();
        if sessions.term != term || sessions.start.is_none() {
            let now = Instant::now();
            let previous = sessions.other_controller.take();
            tracing::info!(
                term,
                previous_controller = ?previous,
                "active controller: broker sessions start now"
            );
            sessions.term = term;
            sessions.start = Some(SessionStart {
                since: now,
                previous_controller: previous
                    .map(|id| (id, now.checked_sub(election_timeout).unwrap_or(now))),
            });
        }
        sessions.start.expect("set above")
    }
}

impl MetadataQuorum {
    /// Serves a controller request on this node, which must be the leader.
    pub(crate) async fn serve_controller_request(
        &self,
        request: ControllerRequest,
    ) -> Result<ControllerResponse, QuorumError> {
        if !self.is_leader() {
            return Err(QuorumError::NotLeader {
                leader_id: self.leader_id(),
            });
        }
        match request {
            ControllerRequest::Submit(command) => {
                self.write(command).await.map(ControllerResponse::Outcome)
            }
            ControllerRequest::CreateTopic {
                name,
                partitions,
                replication_factor,
                configs,
            } => self
                .create_topic_as_controller(name, partitions, replication_factor, configs)
                .await
                .map(ControllerResponse::Outcome),
            ControllerRequest::Heartbeat(registration) => {
                self.active.record_heartbeat(registration.broker_id);
                self.heartbeat_as_controller(registration)
                    .await
                    .map(ControllerResponse::Heartbeat)
            }
            ControllerRequest::ControlledShutdown { broker_id } => {
                let cluster = self.current_metadata().await?;
                if cluster.broker(broker_id).is_none() {
                    return Err(QuorumError::Rejected(Rejection::UnknownBroker(broker_id)));
                }
                let shutting_down = cluster.brokers[&broker_id].in_controlled_shutdown;
                if !shutting_down || leaderships_to_move(&cluster, broker_id) > 0 {
                    self.write(Command::BeginControlledShutdown { broker_id })
                        .await?;
                }
                let done = leaderships_to_move(&self.metadata().borrow(), broker_id) == 0;
                Ok(ControllerResponse::ShutdownProgress { done })
            }
            ControllerRequest::UnregisterBroker { broker_id } => {
                let outcome = self.write(Command::UnregisterBroker { broker_id }).await?;
                self.remove_observer(broker_id)
                    .await
                    .map_err(|e| QuorumError::Unavailable(e.to_string()))?;
                Ok(ControllerResponse::Outcome(outcome))
            }
            ControllerRequest::Join { key, address } => {
                if let Some(quorum) = self.this.upgrade() {
                    tokio::spawn(async move { quorum.reconcile_member(key, address).await });
                }
                Ok(ControllerResponse::Accepted)
            }
        }
    }

    /// Appends `command` to the Raft log and returns what applying it answered.
    pub(crate) async fn write(&self, command: Command) -> Result<CommandOutcome, QuorumError> {
        match self.raft().client_write(command).await {
            Ok(response) => response.data.map_err(QuorumError::Rejected),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                Err(QuorumError::NotLeader {
                    leader_id: forward.leader_id.map(|k| k.node_id),
                })
            }
            Err(e) => Err(QuorumError::Unavailable(e.to_string())),
        }
    }

    /// The metadata with everything committed before this call applied: a leader may make
    /// decisions from it (Raft's read index, confirmed by a quorum).
    async fn current_metadata(&self) -> Result<Arc<ClusterMetadata>, QuorumError> {
        self.raft()
            .ensure_linearizable()
            .await
            .map_err(|e| match e {
                RaftError::APIError(_) => QuorumError::NotLeader {
                    leader_id: self.leader_id(),
                },
                RaftError::Fatal(f) => QuorumError::Unavailable(f.to_string()),
            })?;
        Ok(self.metadata().borrow().clone())
    }

    async fn create_topic_as_controller(
        &self,
        name: String,
        partitions: i32,
        replication_factor: Option<i16>,
        mut configs: BTreeMap<String, String>,
    ) -> Result<CommandOutcome, QuorumError> {
        crate::controller::apply::validate_topic_name(&name).map_err(QuorumError::Rejected)?;
        let count = usize::try_from(partitions)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| {
                QuorumError::Rejected(Rejection::InvalidPartitions(
                    "the number of partitions must be positive".into(),
                ))
            })?;
        let cluster = self.current_metadata().await?;
        if cluster.topics.contains_key(&name) {
            return Err(QuorumError::Rejected(Rejection::TopicAlreadyExists));
        }
        let replication_factor = match replication_factor {
            None | Some(-1) => default_replication_factor(&cluster),
            Some(rf) if rf > 0 => rf as usize,
            Some(rf) => {
                return Err(QuorumError::Rejected(Rejection::InvalidReplicationFactor(
                    format!("{rf}"),
                )))
            }
        };
        let assignments =
            place_partitions(&cluster, count, replication_factor).map_err(QuorumError::Rejected)?;
        if replication_factor >= 3 {
            configs
                .entry("min.insync.replicas".into())
                .or_insert_with(|| DEFAULT_MIN_INSYNC_REPLICAS.into());
        }
        self.write(Command::CreateTopic {
            name,
            topic_id: Uuid::new_v4(),
            configs,
            assignments,
        })
        .await
    }

    async fn heartbeat_as_controller(
        &self,
        registration: crate::command::BrokerRegistration,
    ) -> Result<HeartbeatOutcome, QuorumError> {
        let broker_id = registration.broker_id;
        let cluster = self.current_metadata().await?;
        let registered = cluster
            .broker(broker_id)
            .is_some_and(|b| b.incarnation_id == registration.incarnation_id);
        if !registered {
            tracing::info!(broker_id, incarnation = %registration.incarnation_id, "registering broker");
            self.write(Command::RegisterBroker(registration.clone()))
                .await?;
        }
        let broker = self
            .metadata()
            .borrow()
            .broker(broker_id)
            .cloned()
            .ok_or_else(|| QuorumError::Unavailable("registration not applied".into()))?;
        if broker.fenced
            && !broker.in_controlled_shutdown
            && !registration.wants_fenced
            && registration.caught_up
        {
            tracing::info!(broker_id, epoch = broker.epoch, "unfencing broker");
            self.write(Command::UnfenceBroker {
                broker_id,
                broker_epoch: broker.epoch,
            })
            .await?;
        }
        let broker = self
            .metadata()
            .borrow()
            .broker(broker_id)
            .cloned()
            .ok_or_else(|| QuorumError::Unavailable("broker vanished".into()))?;
        Ok(HeartbeatOutcome {
            fenced: broker.fenced,
            broker_epoch: broker.epoch,
            in_controlled_shutdown: broker.in_controlled_shutdown,
            controller_id: self.config.node_id,
        })
    }

    /// Whether voter `id`'s controller listener refuses a connection (nothing listens there: the
    /// process is gone). A time-out or any other error is no evidence either way.
    async fn previous_controller_refuses(&self, id: i32) -> bool {
        let Some(voter) = self.config.voter(id) else {
            return false;
        };
        let address = voter.address();
        let probe = tokio::time::timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect(address.as_str()),
        )
        .await;
        matches!(probe, Ok(Err(error)) if error.kind() == std::io::ErrorKind::ConnectionRefused)
    }

    /// While leader: gives the cluster its id, and fences brokers whose session expired.
    pub(crate) async fn run_controller_loop(self: Arc<Self>) {
        let session_timeout = Duration::from_millis(self.config.broker_session_timeout_ms);
        let tick =
            (session_timeout / 8).clamp(Duration::from_millis(20), Duration::from_millis(500));
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Openraft's voters grant a vote only once their leader lease (the longest election
        // timeout) expired without hearing from the leader: a majority of the quorum had not
        // heard from the previous controller for that long when this one was elected.
        let election_timeout = Duration::from_millis(self.config.election_timeout_ms.1);
        let mut probed_term = 0;
        while !self.stopped.load(Ordering::Relaxed) {
            interval.tick().await;
            if !self.is_leader() {
                let leader = self.raft_metrics().borrow().current_leader;
                if let Some(leader) = leader.filter(|key| key.node_id != self.config.node_id) {
                    self.active.note_other_controller(leader.node_id);
                }
                continue;
            }
            let term = self.raft_metrics().borrow().current_term;
            let mut start = self.active.session_start(term, election_timeout);
            if probed_term != term {
                probed_term = term;
                if let Some((id, _)) = start.previous_controller {
                    if self.previous_controller_refuses(id).await {
                        tracing::info!(
                            broker_id = id,
                            "the previous controller's quorum listener refuses connections: \
                             its broker's session ends now"
                        );
                        self.active
                            .previous_controller_is_down(term, session_timeout);
                        start = self.active.session_start(term, election_timeout);
                    }
                }
            }
            let cluster = self.metadata().borrow().clone();
            if cluster.cluster_id.is_empty() {
                let cluster_id = Uuid::new_v4().simple().to_string();
                if let Err(e) = self.write(Command::InitializeCluster { cluster_id }).await {
                    tracing::debug!(error = %e, "initializing the cluster id");
                }
            }
            let expired = {
                let sessions = self.active.sessions.lock();
                expired_sessions(
                    &cluster,
                    &sessions.last_heartbeat,
                    start,
                    Instant::now(),
                    session_timeout,
                )
            };
            for (broker_id, broker_epoch) in expired {
                tracing::warn!(broker_id, broker_epoch, "broker session expired: fencing");
                match self
                    .write(Command::FenceBroker {
                        broker_id,
                        broker_epoch,
                    })
                    .await
                {
                    Ok(_) | Err(QuorumError::Rejected(Rejection::StaleBrokerEpoch)) => {}
                    Err(e) => tracing::warn!(broker_id, error = %e, "fencing failed"),
                }
            }
        }
    }
}
