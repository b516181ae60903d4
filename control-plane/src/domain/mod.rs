//! The control plane's vocabulary, parsed once at the edge ("parse, don't validate"): a value of
//! one of these types is valid wherever it travels afterwards. Nothing here does I/O. (The
//! state enums derive utoipa's `ToSchema` so the API document lists their values.)

mod broker;
mod change;
mod cluster;
mod configuration;
mod draft;
mod error;
mod node;
mod state;
mod storage;
mod tags;
mod version;

pub use broker::{
    BrokerCount, BrokerType, InstanceType, Zones, BROKER_TYPES, DEFAULT_ZONES, MAX_BROKERS,
    QUORUM_VOTERS,
};
pub use change::{
    volume_size, ChangeParameters, ClusterChange, ReplicationThrottle, SettingsChange,
    UpgradeStrategy,
};
pub use cluster::{
    cluster_arn, parse_storage_class, BrokerNodeGroup, ClusterName, ClusterSpec, ConfigurationRef,
};
pub use configuration::{configuration_arn, properties_pairs, ConfigurationName, ServerProperties};
pub use draft::{AutoExpansionDraft, ClusterDraft, EbsDraft};
pub use error::{At, DomainError};
pub use node::{AgentState, Heartbeat, NodeVolume};
pub use state::{
    ClusterState, OperationState, OperationStep, OperationType, ProgressUnit, StepKind,
    StepProgress, StepStatus,
};
pub use storage::{
    ProvisionedThroughput, StorageAutoExpansion, StorageInfo, VolumeSize, MAX_THROUGHPUT_MIB_S,
    MAX_VOLUME_GIB, MIN_THROUGHPUT_MIB_S, MIN_VOLUME_GIB,
};
pub use tags::Tags;
pub use version::{KafkaVersion, VersionCatalog};
