//! The clusters service: the use cases both doors share. `http/` (REST) and `operator/` (the
//! KafkaCluster controller) parse their own input into domain types, call this service, and map
//! its one error type once; neither door calls the other. It works on the store and wakes the
//! reconciler; it never touches a platform.
//!
//! It holds create and delete (`lifecycle`), the changes to a running cluster (every update
//! endpoint and spec change, `change`), and storage auto-expansion, which starts such changes by
//! itself.

pub mod auto_expansion;
mod change;
mod lifecycle;

use std::sync::Arc;

use tokio::sync::Notify;

use crate::domain::{DomainError, VersionCatalog};
use crate::store::{Conflict, Store, StoreError};

/// Why the service refused or failed a use case.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A value that makes no sense for this cluster; names the field it came from.
    #[error(transparent)]
    Invalid(#[from] DomainError),
    /// The request conflicts with the cluster's state or version.
    #[error(transparent)]
    Conflict(#[from] Conflict),
    #[error("{0}")]
    NotFound(String),
    /// A valid change this release does not carry out.
    #[error("{0}")]
    NotSupported(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(conflict) => ServiceError::Conflict(conflict),
            other => ServiceError::Store(other),
        }
    }
}

/// The use cases on clusters, over the store; cheap to clone.
#[derive(Clone)]
pub struct ClustersService {
    store: Store,
    versions: Arc<VersionCatalog>,
    reconcile_wakeup: Arc<Notify>,
}

impl ClustersService {
    pub fn new(
        store: Store,
        versions: Arc<VersionCatalog>,
        reconcile_wakeup: Arc<Notify>,
    ) -> ClustersService {
        ClustersService {
            store,
            versions,
            reconcile_wakeup,
        }
    }

    pub fn versions(&self) -> &VersionCatalog {
        &self.versions
    }
}
