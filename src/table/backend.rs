//! The table backend behind the store shell: records as entities of one table, keyed as Python's
//! table store keys them. Each method is one Table REST call.

use super::client::Table;
use super::{entity, keys};
use crate::client::credential::StorageCredential;
use crate::error::{Error, Result};
use crate::model::{Checkpoint, Ownership};
use crate::scope::Scope;
use crate::shell::record::{Known, Listed, Record};
use crate::shell::{Backend, OnRecord, Version, Written};
use crate::store::ServiceTime;
use async_trait::async_trait;
use azure_core::http::Etag;
use serde_json::Value;
use std::fmt;

/// Entities of one table.
pub(crate) struct TableBackend {
    pub(crate) table: Table,
    credential: StorageCredential,
}

impl TableBackend {
    pub(crate) fn new(table: Table, credential: StorageCredential) -> Self {
        Self { table, credential }
    }
}

/// One claim, checked and ready to send.
pub(crate) struct Claim {
    partition_key: String,
    row_key: String,
    body: Value,
    etag: Option<Etag>,
}

#[async_trait]
impl Backend for TableBackend {
    type Claim = Claim;
    const KIND: &'static str = "table";

    fn describe(&self, f: &mut fmt::DebugStruct<'_, '_>) {
        f.field("table_url", &self.table.url().as_str())
            .field("credential", &self.credential);
    }

    fn prepare_claim(&self, requested: &Ownership) -> Result<Claim> {
        let partition_key = keys::partition_key(&requested.scope, Record::Ownership)?;
        let row_key = keys::row_key(&requested.partition_id)?.to_owned();
        let etag = requested
            .etag
            .as_ref()
            .map(entity::for_condition)
            .transpose()?;
        Ok(Claim {
            body: entity::ownership_body(&partition_key, &row_key, requested.owner_id.as_deref()),
            partition_key,
            row_key,
            etag,
        })
    }

    async fn claim(&self, claim: Claim) -> Result<Written> {
        let written = match &claim.etag {
            Some(etag) => {
                self.table
                    .replace(
                        &claim.partition_key,
                        &claim.row_key,
                        &claim.body,
                        Some(etag),
                    )
                    .await
            }
            None => self.table.insert(&claim.body).await,
        };
        Written::of(written, |err| lost_race(err, claim.etag.is_some()))
    }

    async fn update_checkpoint(&self, checkpoint: &Checkpoint) -> Result<Version> {
        let partition_key = keys::partition_key(&checkpoint.scope, Record::Checkpoint)?;
        let row_key = keys::row_key(&checkpoint.partition_id)?;
        let body = entity::checkpoint_body(&partition_key, row_key, checkpoint)?;
        // Insert Or Replace: one request whether or not the partition has a checkpoint yet;
        // checkpoints are last-writer-wins.
        self.table
            .replace(&partition_key, row_key, &body, None)
            .await
    }

    async fn read_checkpoint(
        &self,
        scope: &Scope,
        partition_id: &str,
    ) -> Result<Option<(Checkpoint, Etag)>> {
        let partition_key = keys::partition_key(scope, Record::Checkpoint)?;
        let row_key = keys::row_key(partition_id)?;
        let Some(entity) = self.table.get(&partition_key, row_key).await? else {
            return Ok(None);
        };
        let Some(etag) = entity.etag() else {
            return Err(Error::UnexpectedResponse {
                message: format!("the checkpoint entity of partition {partition_id} has no ETag"),
            });
        };
        let listed = Listed {
            partition_id: entity.row_key.clone(),
            version: &Known {
                etag: None,
                last_modified: entity.timestamp(),
            },
            fields: &entity,
            source: &entity.row_key,
        };
        Ok(Some((listed.into_checkpoint(scope), etag)))
    }

    async fn write_checkpoint_if(
        &self,
        checkpoint: &Checkpoint,
        version: Option<&Etag>,
    ) -> Result<Written> {
        let partition_key = keys::partition_key(&checkpoint.scope, Record::Checkpoint)?;
        let row_key = keys::row_key(&checkpoint.partition_id)?;
        let body = entity::checkpoint_body(&partition_key, row_key, checkpoint)?;
        let written = match version {
            Some(etag) => {
                self.table
                    .replace(&partition_key, row_key, &body, Some(etag))
                    .await
            }
            None => self.table.insert(&body).await,
        };
        Written::of(written, |err| lost_race(err, version.is_some()))
    }

    async fn list(
        &self,
        scope: &Scope,
        record: Record,
        on_record: &mut OnRecord<'_>,
    ) -> Result<Option<ServiceTime>> {
        let partition_key = keys::partition_key(scope, record)?;
        self.table
            .query(&partition_key, |entity| {
                on_record(Listed {
                    partition_id: entity.row_key.clone(),
                    version: &entity,
                    fields: &entity,
                    source: &entity.row_key,
                })
            })
            .await
    }
}

/// Whether a failed conditional write lost a race rather than failed: only the answers that mean
/// "someone else wrote the entity first". With an etag: 412 `UpdateConditionNotSatisfied` (the
/// entity changed) or 404 `ResourceNotFound` (it was deleted; a missing table is `TableNotFound`,
/// a real failure). Without one: 409 `EntityAlreadyExists`. Any other 412 or 409 is a failure.
fn lost_race(err: &Error, had_etag: bool) -> bool {
    matches!(
        (err.status(), err.error_code(), had_etag),
        (Some(412), Some("UpdateConditionNotSatisfied"), true)
            | (Some(404), Some("ResourceNotFound"), true)
            | (Some(409), Some("EntityAlreadyExists"), false)
    )
}

/// Azure's table naming rules: 3-63 letters and digits, starting with a letter, not `tables`.
pub(crate) fn check_table_name(name: &str) -> Result<()> {
    let valid = (3..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.bytes().all(|b| b.is_ascii_alphanumeric())
        && !name.eq_ignore_ascii_case("tables");
    if valid {
        Ok(())
    } else {
        Err(Error::invalid_input(format!(
            "table name '{name}' is invalid: 3-63 letters and digits, starting with a letter (and not \"tables\")"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_lost_races() {
        let service = |status, code: &str| Error::Service {
            status,
            error_code: Some(code.to_owned()),
            message: String::new(),
        };
        assert!(lost_race(
            &service(412, "UpdateConditionNotSatisfied"),
            true
        ));
        assert!(lost_race(&service(404, "ResourceNotFound"), true));
        assert!(lost_race(&service(409, "EntityAlreadyExists"), false));
        assert!(!lost_race(&service(404, "TableNotFound"), true));
        assert!(!lost_race(
            &service(412, "UpdateConditionNotSatisfied"),
            false
        ));
        assert!(!lost_race(&service(409, "EntityAlreadyExists"), true));
        assert!(!lost_race(&service(412, "ConditionNotMet"), true));
        assert!(!lost_race(&service(400, "InvalidInput"), true));
        assert!(!lost_race(&service(403, "AuthorizationFailure"), true));
    }

    #[test]
    fn table_names() {
        for ok in ["abc", "Checkpoints", "a1b2c3", &"a".repeat(63)] {
            assert!(check_table_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            "1abc",
            "a-b",
            "tables",
            "TABLES",
            "ab c",
            &"a".repeat(64),
        ] {
            assert!(check_table_name(bad).is_err(), "{bad}");
        }
    }
}
