//! The consumer group a record belongs to: one [`Scope`] names it everywhere in this crate.

use crate::model::{Checkpoint, Ownership};
use serde::{Deserialize, Serialize};
use std::fmt;

/// One consumer group of one event hub: the namespace, the event hub and the consumer group, as
/// every Event Hubs SDK names them. Records ([`Ownership`], [`Checkpoint`]) carry their scope;
/// listings, the balancer, the checkpointer, `copy` and the CLI take one.
///
/// Names are kept as given. How they are stored (lower-cased or verbatim) is the store's
/// business (see [`BlobNaming`](crate::blob::BlobNaming)).
///
/// ```
/// use eventhub_checkpointstore::Scope;
///
/// let scope = Scope::new("myns.servicebus.windows.net", "telemetry", "$Default");
/// let claim = scope.ownership("0", "processor-a");
/// let position = scope.checkpoint("0", Some("4096".into()), Some(42));
/// assert_eq!(claim.scope, position.scope);
/// assert_eq!(scope.to_string(), "myns.servicebus.windows.net/telemetry/$Default");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Scope {
    /// The Event Hubs namespace, e.g. `myns.servicebus.windows.net`.
    pub fully_qualified_namespace: String,
    /// The event hub's name.
    pub eventhub_name: String,
    /// The consumer group, e.g. `$Default`.
    pub consumer_group: String,
}

impl Scope {
    /// The scope of `consumer_group` of `eventhub_name` in `fully_qualified_namespace`.
    pub fn new(
        fully_qualified_namespace: impl Into<String>,
        eventhub_name: impl Into<String>,
        consumer_group: impl Into<String>,
    ) -> Self {
        Self {
            fully_qualified_namespace: fully_qualified_namespace.into(),
            eventhub_name: eventhub_name.into(),
            consumer_group: consumer_group.into(),
        }
    }

    /// A first claim of `partition_id` in this scope for `owner_id` (no etag: the record must
    /// not exist yet).
    pub fn ownership(
        &self,
        partition_id: impl Into<String>,
        owner_id: impl Into<String>,
    ) -> Ownership {
        Ownership::new(self.clone(), partition_id, owner_id)
    }

    /// A checkpoint of `partition_id` in this scope.
    pub fn checkpoint(
        &self,
        partition_id: impl Into<String>,
        offset: Option<String>,
        sequence_number: Option<i64>,
    ) -> Checkpoint {
        Checkpoint::new(self.clone(), partition_id, offset, sequence_number)
    }
}

/// `namespace/eventhub/consumer_group`, as the stores' names begin.
impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.fully_qualified_namespace, self.eventhub_name, self.consumer_group
        )
    }
}

/// `(namespace, event hub, consumer group)`.
impl<N: Into<String>, E: Into<String>, G: Into<String>> From<(N, E, G)> for Scope {
    fn from((namespace, eventhub, group): (N, E, G)) -> Self {
        Self::new(namespace, eventhub, group)
    }
}
