//! A store that delegates every call to another, with hooks around them: what the tests' store
//! wrappers (a recorder of won claims, a store that goes down, a slow network) are written with,
//! instead of each repeating the trait's delegation.

use async_trait::async_trait;
use eventhub_checkpointstore::{
    Checkpoint, CheckpointStore, Ownership, Result, Scope, ServiceTime,
};

/// One call, as a hook sees it before it is made.
#[derive(Debug)]
pub enum Call<'a> {
    ListOwnership(&'a Scope),
    ClaimOwnership(&'a [Ownership]),
    UpdateCheckpoint(&'a Checkpoint),
    PutCheckpoint(&'a Checkpoint),
    ListCheckpoints(&'a Scope),
}

/// What a wrapper adds. Every method has a default that adds nothing.
#[async_trait]
pub trait Hooks: Send + Sync {
    /// Before each call: fail it (the store is down) or delay it (a slow network).
    async fn before(&self, _call: Call<'_>) -> Result<()> {
        Ok(())
    }

    /// After a claim call succeeded: what was asked and what was won.
    fn claimed(&self, _requested: &[Ownership], _won: &[Ownership]) {}

    /// After a checkpoint write succeeded.
    fn checkpointed(&self, _checkpoint: &Checkpoint) {}
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
        self.inner.list_ownership(scope).await
    }

    async fn list_ownership_with_service_time(
        &self,
        scope: &Scope,
    ) -> Result<(Vec<Ownership>, Option<ServiceTime>)> {
        self.hooks.before(Call::ListOwnership(scope)).await?;
        self.inner.list_ownership_with_service_time(scope).await
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

    async fn list_checkpoints(&self, scope: &Scope) -> Result<Vec<Checkpoint>> {
        self.hooks.before(Call::ListCheckpoints(scope)).await?;
        self.inner.list_checkpoints(scope).await
    }
}
