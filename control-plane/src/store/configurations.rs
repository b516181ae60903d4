//! Configurations: named server.properties documents with numbered revisions.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::Row;
use uuid::Uuid;

use super::{
    get_json, get_text, get_time, get_uuid, is_unique_violation, now, time_text, to_json, Conflict,
    Store, StoreError,
};
use crate::domain::{configuration_arn, ConfigurationName, ServerProperties};

macro_rules! configuration_select {
    () => {
        "SELECT c.id, c.name, c.arn, c.description, c.kafka_versions, c.latest_revision, \
         c.created_at, r.description AS revision_description, r.created_at AS revision_created_at \
         FROM configurations c JOIN configuration_revisions r \
         ON r.configuration_id = c.id AND r.revision = c.latest_revision"
    };
}

#[derive(Debug, Clone)]
pub struct NewConfiguration {
    pub name: ConfigurationName,
    pub description: String,
    pub kafka_versions: Vec<String>,
    pub server_properties: ServerProperties,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConfigurationRecord {
    pub id: Uuid,
    pub name: String,
    pub arn: String,
    pub description: String,
    pub kafka_versions: Vec<String>,
    pub latest_revision: i64,
    pub latest_revision_description: String,
    pub latest_revision_created_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

impl ConfigurationRecord {
    fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: get_uuid(row, "id")?,
            name: get_text(row, "name")?,
            arn: get_text(row, "arn")?,
            description: get_text(row, "description")?,
            kafka_versions: get_json(row, "kafka_versions")?,
            latest_revision: row.try_get("latest_revision")?,
            latest_revision_description: get_text(row, "revision_description")?,
            latest_revision_created_at: get_time(row, "revision_created_at")?,
            created_at: get_time(row, "created_at")?,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RevisionRecord {
    pub configuration_arn: String,
    pub revision: i64,
    pub description: String,
    pub server_properties: String,
    pub created_at: DateTime<Utc>,
}

impl Store {
    /// Stores a configuration with its first revision (1).
    pub async fn create_configuration(
        &self,
        new: NewConfiguration,
    ) -> Result<ConfigurationRecord, StoreError> {
        let id = Uuid::new_v4();
        let stamp = time_text(now());
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO configurations (id, name, arn, description, kafka_versions, \
             latest_revision, created_at) VALUES ($1, $2, $3, $4, $5, 1, $6)",
        )
        .bind(id.to_string())
        .bind(new.name.as_str().to_owned())
        .bind(configuration_arn(&new.name, id))
        .bind(new.description.clone())
        .bind(to_json(&new.kafka_versions))
        .bind(stamp.clone())
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => {
                return Err(Conflict::NameTaken(new.name.as_str().to_owned()).into())
            }
            other => other?,
        };
        sqlx::query(
            "INSERT INTO configuration_revisions (configuration_id, revision, description, \
             server_properties, created_at) VALUES ($1, 1, $2, $3, $4)",
        )
        .bind(id.to_string())
        .bind(new.description)
        .bind(new.server_properties.as_str().to_owned())
        .bind(stamp)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.get_configuration(&id.to_string()).await
    }

    pub async fn list_configurations(&self) -> Result<Vec<ConfigurationRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            configuration_select!(),
            " ORDER BY c.created_at, c.id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ConfigurationRecord::from_row).collect()
    }

    /// A configuration by ARN, name or id.
    pub async fn get_configuration(&self, key: &str) -> Result<ConfigurationRecord, StoreError> {
        let row = sqlx::query(concat!(
            configuration_select!(),
            " WHERE c.arn = $1 OR c.name = $1 OR c.id = $1"
        ))
        .bind(key.to_owned())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        ConfigurationRecord::from_row(&row)
    }

    /// Adds the next revision of a configuration.
    pub async fn add_configuration_revision(
        &self,
        key: &str,
        description: &str,
        server_properties: &ServerProperties,
    ) -> Result<RevisionRecord, StoreError> {
        let configuration = self.get_configuration(key).await?;
        let stamp = now();
        let mut tx = self.pool.begin().await?;
        // The compare-and-set on latest_revision makes concurrent writers take turns; the
        // loser's revision number is refused by the primary key or by the update below.
        let next = configuration.latest_revision + 1;
        let bumped = sqlx::query(
            "UPDATE configurations SET latest_revision = $1 WHERE id = $2 AND latest_revision = $3",
        )
        .bind(next)
        .bind(configuration.id.to_string())
        .bind(configuration.latest_revision)
        .execute(&mut *tx)
        .await?;
        if bumped.rows_affected() == 0 {
            return Err(Conflict::InUse(
                "the configuration was revised concurrently; retry".into(),
            )
            .into());
        }
        sqlx::query(
            "INSERT INTO configuration_revisions (configuration_id, revision, description, \
             server_properties, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(configuration.id.to_string())
        .bind(next)
        .bind(description.to_owned())
        .bind(server_properties.as_str().to_owned())
        .bind(time_text(stamp))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(RevisionRecord {
            configuration_arn: configuration.arn,
            revision: next,
            description: description.to_owned(),
            server_properties: server_properties.as_str().to_owned(),
            created_at: stamp,
        })
    }

    pub async fn get_configuration_revision(
        &self,
        key: &str,
        revision: i64,
    ) -> Result<RevisionRecord, StoreError> {
        let configuration = self.get_configuration(key).await?;
        let row = sqlx::query(
            "SELECT revision, description, server_properties, created_at \
             FROM configuration_revisions WHERE configuration_id = $1 AND revision = $2",
        )
        .bind(configuration.id.to_string())
        .bind(revision)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        Ok(RevisionRecord {
            configuration_arn: configuration.arn,
            revision: row.try_get("revision")?,
            description: get_text(&row, "description")?,
            server_properties: get_text(&row, "server_properties")?,
            created_at: get_time(&row, "created_at")?,
        })
    }

    /// The settings of a configuration revision as key/value pairs (none: no settings, the
    /// brokers' defaults).
    pub async fn configuration_settings(
        &self,
        reference: Option<&crate::domain::ConfigurationRef>,
    ) -> Result<std::collections::BTreeMap<String, String>, StoreError> {
        let Some(reference) = reference else {
            return Ok(Default::default());
        };
        let revision = self
            .get_configuration_revision(&reference.arn, reference.revision)
            .await?;
        Ok(crate::domain::properties_pairs(&revision.server_properties))
    }

    /// Deletes a configuration and its revisions, refused while a cluster uses it.
    pub async fn delete_configuration(&self, key: &str) -> Result<(), StoreError> {
        let configuration = self.get_configuration(key).await?;
        let mut tx = self.pool.begin().await?;
        let user = sqlx::query("SELECT name FROM clusters WHERE configuration_arn = $1 LIMIT 1")
            .bind(configuration.arn.clone())
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(user) = user {
            return Err(Conflict::InUse(format!(
                "configuration {} is used by cluster {}",
                configuration.name,
                get_text(&user, "name")?
            ))
            .into());
        }
        sqlx::query("DELETE FROM configuration_revisions WHERE configuration_id = $1")
            .bind(configuration.id.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM configurations WHERE id = $1")
            .bind(configuration.id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
