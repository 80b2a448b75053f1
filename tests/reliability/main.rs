//! The reliability suite: Azurite killed in the middle of a run, and faults injected between the
//! store and Azurite (the races of many processes have their binary of their own: `races.rs`). Each test states the
//! guarantee it checks; README's "Guarantees" section lists them.

use eventhub_checkpointstore_testkit as common;
use eventhub_checkpointstore_testkit::proxy;

mod crash;
mod faults;
#[cfg(feature = "table")]
mod table_faults;
