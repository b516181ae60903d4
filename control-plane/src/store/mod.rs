//! The store of record: clusters, operations, nodes, configurations, tokens and leases.
//!
//! # One type over PostgreSQL and SQLite
//!
//! [`Store`] holds one `sqlx::AnyPool`; the backend (PostgreSQL, the store of record, or SQLite,
//! the embedded single-machine default) is chosen at run time from the database URL. We chose
//! `Any` over an enum of two typed pools because every query is then written once: the two
//! dialects agree on everything we need (`$n` parameters, `INSERT … ON CONFLICT … DO UPDATE
//! … WHERE`, `RETURNING`, partial row comparisons), so there is one migration directory and one
//! implementation that the same test suite exercises on both databases. The price is that `Any`
//! only carries integers, text and blobs: ids are UUID strings, times are RFC 3339 UTC strings of
//! fixed width (so they sort as text), JSON documents are TEXT. If PostgreSQL-native types become
//! worth it (e.g. JSONB queries), split the migrations and swap this type for an enum; callers do
//! not see the pool.
//!
//! SQLite runs with a single connection: it serialises writers anyway, and one connection rules
//! out `SQLITE_BUSY` on lock upgrades between concurrent transactions.

mod clusters;
mod configurations;
mod leases;
mod nodes;
mod operations;
mod tokens;

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use uuid::Uuid;

use crate::domain::ClusterState;

pub use clusters::{
    ClusterFilter, ClusterPage, ClusterRecord, CreateOutcome, Cursor, Idempotency, NewCluster,
};
pub use configurations::{ConfigurationRecord, NewConfiguration, RevisionRecord};
pub use nodes::NodeRecord;
pub use operations::OperationRecord;
pub use tokens::TokenIdentity;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn of_url(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Backend::Postgres)
        } else if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else {
            Err(StoreError::UnsupportedUrl)
        }
    }
}

/// Why a write was refused: the request conflicts with what is stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    #[error("the name {0:?} is already taken")]
    NameTaken(String),
    #[error("this idempotency key was used for a different request")]
    IdempotencyKeyReused,
    #[error("currentVersion {given:?} is not the current version {current:?}")]
    VersionMismatch { given: String, current: String },
    #[error("the cluster is {state} and cannot {action}")]
    WrongState {
        state: ClusterState,
        action: &'static str,
    },
    #[error("{0}")]
    InUse(String),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Conflict(#[from] Conflict),
    #[error("database URL must start with postgres:// or sqlite:")]
    UnsupportedUrl,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrating the schema failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
}

impl StoreError {
    fn corrupt(what: impl std::fmt::Display) -> Self {
        StoreError::Corrupt(what.to_string())
    }
}

/// The control plane's persistent state; cheap to clone (a pool handle).
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish()
    }
}

impl Store {
    /// Connects to `postgres://…` or `sqlite:…` (add `?mode=rwc` to create the SQLite file) and
    /// applies the migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url)?;
        let options = match backend {
            Backend::Postgres => AnyPoolOptions::new().max_connections(10),
            Backend::Sqlite => AnyPoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None),
        };
        let pool = options
            .acquire_timeout(Duration::from_secs(30))
            .connect(url)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes the pool (tests drop their database afterwards).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

// Conversions between the domain and the portable column types.

pub(crate) fn now() -> DateTime<Utc> {
    // Stored with microsecond precision: truncate now so a value reads back equal.
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

pub(crate) fn time_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::corrupt(format!("time {text:?}: {e}")))
}

fn get_text(row: &AnyRow, column: &str) -> Result<String, StoreError> {
    Ok(row.try_get::<String, _>(column)?)
}

fn get_opt_text(row: &AnyRow, column: &str) -> Result<Option<String>, StoreError> {
    Ok(row.try_get::<Option<String>, _>(column)?)
}

fn get_time(row: &AnyRow, column: &str) -> Result<DateTime<Utc>, StoreError> {
    parse_time(&get_text(row, column)?)
}

fn get_opt_time(row: &AnyRow, column: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    get_opt_text(row, column)?
        .map(|t| parse_time(&t))
        .transpose()
}

fn get_uuid(row: &AnyRow, column: &str) -> Result<Uuid, StoreError> {
    let text = get_text(row, column)?;
    Uuid::from_str(&text).map_err(|e| StoreError::corrupt(format!("{column} {text:?}: {e}")))
}

fn get_json<T: serde::de::DeserializeOwned>(row: &AnyRow, column: &str) -> Result<T, StoreError> {
    let text = get_text(row, column)?;
    serde_json::from_str(&text).map_err(|e| StoreError::corrupt(format!("{column}: {e}")))
}

fn get_opt_json<T: serde::de::DeserializeOwned>(
    row: &AnyRow,
    column: &str,
) -> Result<Option<T>, StoreError> {
    get_opt_text(row, column)?
        .map(|text| {
            serde_json::from_str(&text).map_err(|e| StoreError::corrupt(format!("{column}: {e}")))
        })
        .transpose()
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("domain values always serialise")
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.is_unique_violation())
}
