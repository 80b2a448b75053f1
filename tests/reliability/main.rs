//! The reliability suite: Azurite killed in the middle of a run, and faults injected between the
//! store and Azurite (the races of many processes have their binary of their own: `races.rs`). Each test states the
//! guarantee it checks; README's "Guarantees" section lists them.

#[path = "../common/mod.rs"]
mod common;

mod crash;
mod faults;
mod proxy;
#[cfg(feature = "table")]
mod table_faults;
