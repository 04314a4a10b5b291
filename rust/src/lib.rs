//! afxdp_rs: AF_XDP sockets with a Rust core and a thin Python API.
//!
//! The crate is layered as the data flows, each layer using only the one below:
//!
//! * [`sys`]: the kernel ABI and every system call (AF_XDP socket options, mmap,
//!   interfaces, bpf(2) on maps and links);
//! * [`ring`]: the single-producer/single-consumer rings shared with the kernel;
//! * [`csum`]: TCP/UDP checksums, and finishing the partial ones offloading senders
//!   leave;
//! * [`umem`]: the packet memory, its frames, and [`RxFrames`], the safe view of
//!   received packets;
//! * [`xskmap`], [`flow`] and [`program`]: the XSKMAP, the flow-steering rules and
//!   the default XDP program that steer packets to sockets;
//! * [`socket`]: one AF_XDP socket (configuration, open, the frame ledger, rx, tx,
//!   waits);
//! * [`forwarder`]: zero-copy forwarding between two interfaces, a thread per queue
//!   pair;
//! * [`tools`]: benchmark loops and sequence-checked runs (a test rig on top of the
//!   socket);
//! * the Python bindings (feature `python`).
//!
//! `unsafe` is denied everywhere but in the modules that must touch raw memory or the
//! kernel: `sys` (system calls), `ring` (memory shared with the kernel), `umem` (frame
//! slices), `flow` (a rule table as the map's bytes), `program` (libbpf's C API),
//! `socket::open` (turning mapped rings into ring types), `socket::tx` (copying into
//! frames), `socket::forward` (rewriting MAC addresses in place) and `python` (the
//! buffer protocol and borrowed buffers). Every block says why it is sound.
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks, unsafe_op_in_unsafe_fn)]

pub mod csum;
pub mod error;
pub mod flow;
pub mod forwarder;
#[cfg(feature = "loader")]
pub mod program;
pub mod ring;
pub mod socket;
pub mod sys;
pub mod tools;
pub mod umem;
pub mod xskmap;

#[cfg(feature = "python")]
mod python;
#[cfg(feature = "vhost")]
pub mod vhost;

pub use error::{Error, ErrorKind, Result};
pub use socket::{BindMode, Counters, RingLevels, SocketConfig, Steering, XskSocket};
pub use sys::{XdpDesc, XdpStatistics};
pub use umem::{FramePool, RxFrames, UmemArea, UmemConfig};
pub use xskmap::XskMap;
