//! afxdp_rs: AF_XDP sockets with a Rust core and a thin Python API.
//!
//! The crate is layered as the data flows: [`ring`] (the shared rings), [`umem`] (the
//! packet memory), [`socket`] (one AF_XDP socket), [`program`] (the XDP program that
//! steers packets to sockets), and the Python bindings. Only [`sys`], [`ring`],
//! [`umem`], [`socket`] and [`program`] use `unsafe`; every block says why it is sound.
#![deny(unsafe_code)]

pub mod bench;
pub mod error;
#[cfg(feature = "loader")]
pub mod program;
pub mod ring;
pub mod socket;
pub mod sys;
pub mod umem;

#[cfg(feature = "python")]
mod python;

pub use error::{Error, ErrorKind, Result};
pub use socket::{BindMode, Counters, SocketConfig, XskSocket};
pub use sys::{XdpDesc, XdpStatistics};
pub use umem::{FramePool, UmemArea, UmemConfig};
