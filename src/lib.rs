//! ferronn: neural networks on the CPU.
//!
//! The crate is plain Rust; the PyO3 bindings live in `python/` behind the
//! `python` feature, so `cargo test` exercises the numeric core without Python.

pub mod activation;
pub mod error;
mod handoff;
mod placement;
mod infer;
pub mod init;
pub mod io;
pub mod kernels;
pub mod layers;
pub mod loss;
pub mod network;
pub mod objective;
pub mod optim;
pub mod profile;
pub mod schedule;
pub mod regularizer;
pub mod tensor;
pub mod train;
pub mod threads;

#[cfg(feature = "python")]
mod python;

pub use error::{Error, Result};
