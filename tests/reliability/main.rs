//! The reliability suite: many processes racing for the same partitions, Azurite killed in the
//! middle of a run, and faults injected between the store and Azurite. Each test states the
//! guarantee it checks; README's "Guarantees" section lists them.

#[path = "../common/mod.rs"]
mod common;

mod crash;
mod faults;
mod proxy;
mod races;
