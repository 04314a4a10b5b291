//! A vhost-user-net backend over AF_XDP sockets: a virtual machine's virtio-net device,
//! served to QEMU (or any vhost-user frontend) over a Unix socket, sends and receives
//! through an AF_XDP socket per queue pair on a host interface (queue pair i <->
//! AF_XDP queue `start_queue + i`, QEMU's `queues` and `start-queue`).
//!
//! Built on the rust-vmm crates: `vhost-user-backend` speaks the protocol and runs a
//! worker thread per queue pair, `virtio-queue` walks the guest's rings, `vm-memory`
//! maps guest memory. The parts:
//!
//! * [`port`]: the packet endpoint a queue pair is connected to ([`NetPort`]);
//!   [`xsk_port`] is the AF_XDP one.
//! * [`datapath`]: guest TX chains into the port, port frames into guest RX buffers
//!   (mergeable buffers, event idx, bad chains rejected and counted).
//! * [`backend`]: `VhostUserBackend` (features, config space, events).
//! * [`server`]: serving connection after connection (as a server, or as a client that
//!   reconnects), each relayed to the daemon by `relay`.
//! * [`service`]: [`VhostUser`], the whole device on AF_XDP sockets, run until stopped;
//!   `control` is what it shares with the serving thread (stop, connection, events).
//! * [`stats`], [`virtio_net`]: counters, the virtio-net header and config space.

pub mod backend;
mod control;
pub mod datapath;
pub mod port;
mod relay;
pub mod server;
pub mod service;
pub mod stats;
pub mod virtio_net;
pub mod xsk_port;

#[cfg(test)]
mod tests;

pub use backend::{NetBackend, NetBackendConfig};
pub use port::NetPort;
pub use service::{PairReport, VhostUser, VhostUserConfig};
pub use stats::{ChainError, QueueStats, StatsSnapshot};
