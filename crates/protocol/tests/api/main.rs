//! Integration tests of `cryptocat-protocol` through its public API only.
//! One binary built from modules (as rustls `tests/api.rs`).

// Test code: a failed expectation should panic with its message.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::needless_range_loop
)]

mod attacks;
mod common;
mod dake;
mod group;
mod pairwise;
mod room_sim;
mod sim;
