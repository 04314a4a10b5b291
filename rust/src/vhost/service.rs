//! A vhost-user-net device on AF_XDP sockets, served from a thread until stopped:
//! [`VhostUser::start`] opens one socket per queue pair on the host interface (queue
//! `start_queue + i`), then serves frontends on a Unix socket, one connection after
//! another (a VM that reboots, a QEMU that reconnects, the next VM), with counters to
//! read while it runs and a clean stop.
//!
//! Nothing is dropped in user space: a packet for a guest without free buffers stays
//! in the socket's rx ring (what the kernel cannot queue meanwhile it counts in
//! `rx_ring_full`), a guest packet waits while the tx ring is full, and every packet
//! refused (too large, a malformed descriptor chain) is counted in [`PairReport`].

use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::backend::{NetBackend, NetBackendConfig};
use super::control::Control;
use super::stats::StatsSnapshot;
use super::virtio_net::DEFAULT_MAX_QUEUE_SIZE;
use super::xsk_port::XskPort;
use crate::error::{Error, ErrorKind, Result};
use crate::socket::advice::Advice;
use crate::socket::queues::{QueueRange, QueueSet, UmemPlan};
use crate::socket::{SocketConfig, StatsReader};
use crate::sys::{self, XdpStatistics};

/// How a vhost-user device is set up.
#[derive(Debug, Clone)]
pub struct VhostUserConfig {
    /// The sockets' settings (mode, bind, ring sizes, frames). Checksum completion is
    /// always on: the guest is not offered checksum offload, so a packet from a local
    /// stack must reach it with its checksums written.
    pub socket: SocketConfig,
    /// The vhost-user socket.
    pub path: PathBuf,
    /// Connect to a frontend listening on `path` (QEMU `server=on`) instead of
    /// listening there; reconnects whenever the connection ends.
    pub client: bool,
    /// Queue pairs (QEMU's `queues=`): pair `i` uses rx/tx queue `start_queue + i`.
    pub queues: u32,
    pub start_queue: u32,
    /// The MAC address offered in the device's config space (QEMU sets its own).
    pub mac: [u8; 6],
    /// Largest virtqueue the frontend may set up (a power of two, at most 32768).
    pub queue_size: usize,
    /// The MTU offered to the guest (VIRTIO_NET_F_MTU), if any.
    pub mtu: Option<u16>,
}

impl Default for VhostUserConfig {
    fn default() -> Self {
        VhostUserConfig {
            socket: SocketConfig::default(),
            path: PathBuf::new(),
            client: false,
            queues: 1,
            start_queue: 0,
            mac: [0x52, 0x54, 0x00, 0x12, 0x34, 0x56],
            queue_size: DEFAULT_MAX_QUEUE_SIZE,
            mtu: None,
        }
    }
}

/// One queue pair as [`VhostUser::report`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairReport {
    pub queue: u32,
    /// The device's counters: packets each way, and everything refused.
    pub virtio: StatsSnapshot,
    /// The AF_XDP socket's kernel counters.
    pub kernel: XdpStatistics,
}

/// A vhost-user-net device whose queue pairs are AF_XDP sockets, served until stopped.
pub struct VhostUser {
    control: Arc<Control>,
    backend: Option<Arc<NetBackend<XskPort>>>,
    readers: Vec<(u32, StatsReader)>,
    thread: Option<JoinHandle<Result<()>>>,
    path: PathBuf,
    warnings: Vec<Advice>,
    offload_changes: Vec<String>,
    generation: u64,
}

/// The socket path is usable: its directory exists, and nothing but a stale socket is
/// there (a live one belongs to another backend).
fn check_listen_path(path: &Path) -> Result<()> {
    let shown = path.display();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if path.file_name().is_none() {
        return Err(Error::new(
            ErrorKind::InvalidConfig,
            format!("socket path {shown:?} names no file: give a path like /run/vm0.sock"),
        ));
    }
    if !dir.is_dir() {
        return Err(Error::new(
            ErrorKind::InvalidConfig,
            format!(
                "socket path {shown:?}: directory {} does not exist; create it first",
                dir.display()
            ),
        ));
    }
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::os(format!("looking at {shown}"), e)),
        Ok(m) if !m.file_type().is_socket() => Err(Error::new(
            ErrorKind::InvalidConfig,
            format!(
                "socket path {shown:?} exists and is not a socket: choose another path \
                 (nothing is deleted for you)"
            ),
        )),
        Ok(_) => match UnixStream::connect(path) {
            Ok(_) => Err(Error::new(
                ErrorKind::Busy,
                format!(
                    "socket path {shown:?} is in use: another backend listens there; stop \
                     it or choose another path"
                ),
            )),
            // Nobody listens: a leftover of a backend that was killed, replaced below.
            Err(_) => Ok(()),
        },
    }
}

impl VhostUser {
    /// Opens every socket on `ifname` (in the calling thread's network namespace) and
    /// starts serving frontends on `config.path`.
    pub fn start(ifname: &str, config: &VhostUserConfig) -> Result<Self> {
        if config.queues == 0 || config.queues > 32 {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!("queues={}: a device has 1 to 32 queue pairs", config.queues),
            ));
        }
        if !config.queue_size.is_power_of_two() || config.queue_size > 32768 {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "queue_size={}: use a power of two up to 32768 (QEMU's rx_queue_size \
                     and tx_queue_size must not exceed it)",
                    config.queue_size
                ),
            ));
        }
        if let Some(m) = config.mtu {
            if m < 68 {
                return Err(Error::new(
                    ErrorKind::InvalidConfig,
                    format!("mtu={m}: an IPv4 link needs at least 68"),
                ));
            }
        }
        if !config.client {
            check_listen_path(&config.path)?;
        }
        let mut socket = config.socket.clone();
        socket.complete_checksums = true;
        let range = QueueRange::on(ifname, config.start_queue, config.queues)?;
        let set = QueueSet::open(ifname, range, &socket, UmemPlan::PerQueue)?;
        let (sockets, gathered) = set.into_parts();
        let (warnings, offload_changes) = (gathered.advice, gathered.offload_changes);
        let (mut ports, mut readers) = (Vec::new(), Vec::new());
        for (queue, s) in range.iter().zip(sockets) {
            if let Some(m) = config.mtu {
                let room = s.max_packet().saturating_sub(14);
                if u32::from(m) > room {
                    return Err(Error::new(
                        ErrorKind::InvalidConfig,
                        format!(
                            "mtu={m}: the sockets on {ifname} carry frames of at most {} \
                             bytes (MTU {room}); lower the MTU, or use a larger frame size \
                             or multi-buffer",
                            s.max_packet()
                        ),
                    ));
                }
            }
            readers.push((queue, s.stats_reader()));
            ports.push(XskPort::new(s));
        }
        let backend = NetBackend::new(
            NetBackendConfig {
                mac: config.mac,
                queue_size: config.queue_size,
                mtu: config.mtu,
            },
            ports,
        )
        .map_err(|e| Error::new(ErrorKind::InvalidConfig, e.to_string()))?;
        let backend = Arc::new(backend);
        let control = Arc::new(Control::new()?);
        let mode = if config.client {
            super::server::Mode::Client(config.path.clone())
        } else {
            super::server::Mode::Server(config.path.clone())
        };
        // Bind before returning, so that a frontend started next finds the socket.
        let ends = super::server::listen(&mode)?;
        let (b2, c2) = (Arc::clone(&backend), Arc::clone(&control));
        let thread = std::thread::Builder::new()
            .name("afxdp-vhost".into())
            .spawn(move || super::server::serve(b2, &mode, ends, &c2))
            .map_err(|e| Error::os("starting the vhost-user thread", e))?;
        Ok(VhostUser {
            control,
            backend: Some(backend),
            readers,
            thread: Some(thread),
            path: config.path.clone(),
            warnings,
            offload_changes,
            generation: sys::process_generation(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What on the interface makes packets arrive unfinished or too large.
    pub fn warnings(&self) -> &[Advice] {
        &self.warnings
    }

    /// What `fix_offloads` turned off.
    pub fn offload_changes(&self) -> &[String] {
        &self.offload_changes
    }

    /// Whether a frontend is connected now.
    pub fn connected(&self) -> bool {
        self.control.is_connected()
    }

    /// Connections served so far (the current one included).
    pub fn connections(&self) -> u64 {
        self.control.connections()
    }

    /// What happened to connections, oldest first: the events numbered `start` and
    /// later (counting from 0 at start; only the last 64 are kept).
    pub fn events(&self, start: usize) -> Vec<String> {
        self.control.events(start)
    }

    /// Whether the serving thread still runs (one that failed has ended;
    /// [`VhostUser::stop`] reports why).
    pub fn running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Each queue pair's counters, with its socket's kernel counters.
    pub fn report(&self) -> Result<Vec<PairReport>> {
        if sys::process_generation() != self.generation {
            return Err(Error::forked("vhost-user device"));
        }
        let backend = self.backend.as_ref().ok_or_else(Error::closed)?;
        self.readers
            .iter()
            .enumerate()
            .map(|(i, (queue, reader))| {
                Ok(PairReport {
                    queue: *queue,
                    virtio: backend.stats(i),
                    kernel: reader.read()?,
                })
            })
            .collect()
    }

    /// Ends the connection, waits for the thread, closes the sockets (the XDP program
    /// goes with the last one) and removes the socket file it listened on. Returns the
    /// error that ended the thread, if one did. Stopping twice is fine.
    pub fn stop(&mut self) -> Result<()> {
        if sys::process_generation() != self.generation {
            std::mem::forget(self.thread.take());
            std::mem::forget(self.backend.take());
            return Ok(());
        }
        self.control.request_stop();
        let r = match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|_| {
                Err(Error::new(
                    ErrorKind::Os,
                    "the vhost-user thread panicked".to_string(),
                ))
            }),
            None => Ok(()),
        };
        self.backend = None;
        r
    }
}

impl Drop for VhostUser {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
