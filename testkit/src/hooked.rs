//! A store that delegates every call to another, with hooks around them: what the tests' store
//! wrappers (a recorder of won claims, a store that goes down, a slow network) are written with,
//! instead of each repeating the trait's delegation.

use async_trait::async_trait;
use eventhub_checkpointstore::{
    Advance, BlobCheckpointStore, BlobCheckpointStoreOptions, Checkpoint, CheckpointStore,
    Ownership, Result, Scope, ServiceOptions, ServiceTime, DEVELOPMENT_ACCOUNT_KEY,
    DEVELOPMENT_ACCOUNT_NAME,
};
use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

/// One call, as a hook sees it before it is made.
#[derive(Debug)]
pub enum Call<'a> {
    ListOwnership(&'a Scope),
    ClaimOwnership(&'a [Ownership]),
    UpdateCheckpoint(&'a Checkpoint),
    PutCheckpoint(&'a Checkpoint),
    AdvanceCheckpoint(&'a Checkpoint),
    ListCheckpoints(&'a Scope),
}

/// What a wrapper adds. Every method has a default that adds nothing.
#[async_trait]
pub trait Hooks: Send + Sync {
    /// Before each call: fail it (the store is down) or delay it (a slow network).
    async fn before(&self, _call: Call<'_>) -> Result<()> {
        Ok(())
    }

    /// After an ownership listing succeeded: what it listed.
    fn listed(&self, _records: &[Ownership]) {}

    /// After a claim call succeeded: what was asked and what was won.
    fn claimed(&self, _requested: &[Ownership], _won: &[Ownership]) {}

    /// After a checkpoint was written.
    fn checkpointed(&self, _checkpoint: &Checkpoint) {}

    /// After a checkpoint was not written because the stored one is at or past it.
    fn refused(&self, _checkpoint: &Checkpoint, _stored: &Checkpoint) {}
}

/// `inner`, with `hooks` around each call.
pub struct Hooked<S, H> {
    pub inner: S,
    pub hooks: H,
}

impl<S, H> Hooked<S, H> {
    pub fn new(inner: S, hooks: H) -> Self {
        Self { inner, hooks }
    }
}

#[async_trait]
impl<S: CheckpointStore, H: Hooks> CheckpointStore for Hooked<S, H> {
    async fn list_ownership(&self, scope: &Scope) -> Result<Vec<Ownership>> {
        self.hooks.before(Call::ListOwnership(scope)).await?;
        let listed = self.inner.list_ownership(scope).await?;
        self.hooks.listed(&listed);
        Ok(listed)
    }

    async fn list_ownership_with_service_time(
        &self,
        scope: &Scope,
    ) -> Result<(Vec<Ownership>, Option<ServiceTime>)> {
        self.hooks.before(Call::ListOwnership(scope)).await?;
        let listed = self.inner.list_ownership_with_service_time(scope).await?;
        self.hooks.listed(&listed.0);
        Ok(listed)
    }

    async fn claim_ownership(&self, ownership: &[Ownership]) -> Result<Vec<Ownership>> {
        self.hooks.before(Call::ClaimOwnership(ownership)).await?;
        let won = self.inner.claim_ownership(ownership).await?;
        self.hooks.claimed(ownership, &won);
        Ok(won)
    }

    async fn update_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()> {
        self.hooks
            .before(Call::UpdateCheckpoint(checkpoint))
            .await?;
        self.inner.update_checkpoint(checkpoint).await?;
        self.hooks.checkpointed(checkpoint);
        Ok(())
    }

    async fn put_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()> {
        self.hooks.before(Call::PutCheckpoint(checkpoint)).await?;
        self.inner.put_checkpoint(checkpoint).await?;
        self.hooks.checkpointed(checkpoint);
        Ok(())
    }

    async fn advance_checkpoint(&self, checkpoint: &Checkpoint) -> Result<Advance> {
        self.hooks
            .before(Call::AdvanceCheckpoint(checkpoint))
            .await?;
        let advance = self.inner.advance_checkpoint(checkpoint).await?;
        match &advance {
            Advance::Written => self.hooks.checkpointed(checkpoint),
            Advance::Stale { stored } => self.hooks.refused(checkpoint, stored),
            _ => {}
        }
        Ok(advance)
    }

    async fn list_checkpoints(&self, scope: &Scope) -> Result<Vec<Checkpoint>> {
        self.hooks.before(Call::ListCheckpoints(scope)).await?;
        self.inner.list_checkpoints(scope).await
    }

    async fn list_checkpoints_with_times(
        &self,
        scope: &Scope,
    ) -> Result<Vec<(Checkpoint, Option<time::OffsetDateTime>)>> {
        self.hooks.before(Call::ListCheckpoints(scope)).await?;
        self.inner.list_checkpoints_with_times(scope).await
    }
}

/// Hooks that take the store down: while [`down`](Down::down) is set, every call goes to an
/// endpoint nothing listens on and fails as a real unreachable store fails (refused, retried,
/// timed out after 5 s).
pub struct Down {
    dead: BlobCheckpointStore,
    pub down: AtomicBool,
}

impl Default for Down {
    fn default() -> Self {
        Self::new()
    }
}

impl Down {
    pub fn new() -> Self {
        let options = BlobCheckpointStoreOptions {
            service: ServiceOptions {
                operation_timeout: Some(Duration::from_secs(5)),
                ..Default::default()
            },
            ..Default::default()
        };
        let dead = format!(
            "DefaultEndpointsProtocol=http;AccountName={DEVELOPMENT_ACCOUNT_NAME};AccountKey={DEVELOPMENT_ACCOUNT_KEY};BlobEndpoint=http://127.0.0.1:{}/{DEVELOPMENT_ACCOUNT_NAME};",
            crate::unused_port()
        );
        Self {
            dead: BlobCheckpointStore::from_connection_string(&dead, "unreachable", Some(options))
                .expect("a valid connection string"),
            down: AtomicBool::new(false),
        }
    }

    /// Takes the store down (`true`) or brings it back.
    pub fn set(&self, down: bool) {
        self.down.store(down, Ordering::Relaxed);
    }
}

#[async_trait]
impl Hooks for Down {
    async fn before(&self, call: Call<'_>) -> Result<()> {
        if !self.down.load(Ordering::Relaxed) {
            return Ok(());
        }
        let dead = &self.dead;
        let failed = match call {
            Call::ListOwnership(scope) => dead.list_ownership(scope).await.map(drop),
            Call::ClaimOwnership(claims) => dead.claim_ownership(claims).await.map(drop),
            Call::UpdateCheckpoint(c) | Call::PutCheckpoint(c) => dead.update_checkpoint(c).await,
            Call::AdvanceCheckpoint(c) => dead.advance_checkpoint(c).await.map(drop),
            Call::ListCheckpoints(scope) => dead.list_checkpoints(scope).await.map(drop),
        };
        Err(failed.expect_err("nothing listens on the dead store's port"))
    }
}
