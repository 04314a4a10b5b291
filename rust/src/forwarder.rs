//! Forwarding between two interfaces without a copy: for each queue pair, a socket on
//! each interface, both on one UMEM (`XDP_SHARED_UMEM` across devices, each socket with
//! its own fill and completion rings), and a thread that moves every frame received on
//! one side onto the other side's tx ring. Partial checksums left by offloading senders
//! are completed on the way (see [`crate::csum`]).
//!
//! Nothing is dropped in user space: a packet the other side has no tx room for stays
//! in the rx ring, and what the kernel cannot deliver meanwhile it counts
//! (`rx_dropped`, `rx_ring_full` of the receiving socket), which [`Forwarder::report`]
//! shows next to what was forwarded.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};
use crate::socket::advice::Advice;
use crate::socket::queues::{QueueRange, QueueSet, UmemPlan};
use crate::socket::watch::LinkFlags;
use crate::socket::{Forwarded, SocketConfig, StatsReader, Wait, XskSocket};
use crate::sys::{self, XdpStatistics};

/// How a forwarder is set up.
#[derive(Debug, Clone)]
pub struct ForwarderConfig {
    /// The sockets' settings (mode, bind, ring sizes, frame size). `frame_count` is
    /// per socket: each pair's UMEM holds twice as many.
    pub socket: SocketConfig,
    /// Queue pairs: queue `start_queue + i` of one interface with the same queue of the
    /// other, one thread each.
    pub queues: u32,
    pub start_queue: u32,
    /// Packets per batch and direction.
    pub batch: u32,
    /// Complete partial checksums (see [`crate::csum`]).
    pub complete_checksums: bool,
}

impl Default for ForwarderConfig {
    fn default() -> Self {
        ForwarderConfig {
            socket: SocketConfig::default(),
            queues: 1,
            start_queue: 0,
            batch: 64,
            complete_checksums: true,
        }
    }
}

/// Counts of one direction of one queue pair, updated by its thread.
#[derive(Debug, Default)]
struct Counts {
    packets: AtomicU64,
    bytes: AtomicU64,
    checksums: AtomicU64,
}

impl Counts {
    fn add(&self, f: &Forwarded) {
        if f.packets > 0 {
            self.packets.fetch_add(f.packets as u64, Ordering::Relaxed);
            self.bytes.fetch_add(f.bytes, Ordering::Relaxed);
            self.checksums
                .fetch_add(f.checksums as u64, Ordering::Relaxed);
        }
    }
}

/// One direction of one queue pair, as [`Forwarder::report`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Direction {
    pub queue: u32,
    /// Received on this interface...
    pub from: String,
    /// ...and sent out of this one.
    pub to: String,
    pub packets: u64,
    pub bytes: u64,
    /// Partial checksums completed.
    pub checksums: u64,
    /// The receiving socket's kernel counters: what it could not take.
    pub rx: XdpStatistics,
    /// The sending socket's kernel counters.
    pub tx: XdpStatistics,
    /// Whether the receiving interface was down at the last look (forwarding resumes
    /// when it is up), and how many times it went down.
    pub from_down: bool,
    pub from_downs: u64,
    /// Whether the receiving and the sending socket are bound in zero-copy.
    pub zerocopy: (bool, bool),
}

struct Pair {
    queue: u32,
    counts: Arc<[Counts; 2]>,
    readers: [StatsReader; 2],
    links: [Arc<LinkFlags>; 2],
    zerocopy: [bool; 2],
    thread: Option<JoinHandle<Result<()>>>,
}

/// Forwards every frame between two interfaces, in both directions, until stopped.
pub struct Forwarder {
    names: [String; 2],
    stop: Arc<AtomicBool>,
    pairs: Vec<Pair>,
    warnings: Vec<Advice>,
    offload_changes: Vec<String>,
    /// The process generation it was started in: its threads do not exist in a fork
    /// child, which must not wait for them.
    generation: u64,
}

/// How long a pair with a side whose link is down waits before it looks again.
const DOWN_PAUSE: Duration = Duration::from_millis(10);

/// How long an idle pair waits before it looks at the stop flag again.
const IDLE_WAIT: Duration = Duration::from_millis(100);

impl Forwarder {
    /// Opens every socket (in the calling thread's network namespace), then starts one
    /// thread per queue pair.
    pub fn start(a: &str, b: &str, config: &ForwarderConfig) -> Result<Self> {
        if a == b {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "forwarding from {a} to itself: give two interfaces (to send packets \
                     back out of one, use l2fwd)"
                ),
            ));
        }
        if config.queues == 0 || config.batch == 0 {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "queues={} and batch={}: forward at least one queue, one packet per batch",
                    config.queues, config.batch
                ),
            ));
        }
        // Each pair's UMEM holds both sockets' frames: the first side's socket has the
        // lower half, the other side's (on the same UMEM) the upper half.
        let per_socket = config.socket.umem.frame_count;
        let mut socket = config.socket.clone();
        socket.complete_checksums = config.complete_checksums;
        let range = QueueRange::on(a, config.start_queue, config.queues)?;
        QueueRange::on(b, config.start_queue, config.queues)?;
        let mut first = socket.clone();
        first.umem.frame_count = per_socket.checked_mul(2).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidConfig,
                format!("frame_count={per_socket} is too large: use at most 2**21"),
            )
        })?;
        first.frames = Some((0, per_socket));
        let side_a = QueueSet::open(a, range, &first, UmemPlan::PerQueue)?;
        let mut second = socket;
        second.frames = Some((per_socket, 2 * per_socket));
        let side_b = QueueSet::open(b, range, &second, UmemPlan::Alongside(&side_a))?;
        let mut warnings = side_a.warnings().clone();
        warnings.merge(side_b.warnings());
        let (sockets_a, _) = side_a.into_parts();
        let (sockets_b, _) = side_b.into_parts();
        let mut sockets = Vec::new();
        for ((queue, sa), sb) in range.iter().zip(sockets_a).zip(sockets_b) {
            if sa.multi_buffer() != sb.multi_buffer() {
                return Err(Error::new(
                    ErrorKind::InvalidConfig,
                    format!(
                        "{a} and {b} do not agree on multi-buffer (queue {queue}): a packet \
                         larger than a frame could not be sent on; set multi_buffer for both"
                    ),
                ));
            }
            sockets.push((queue, sa, sb));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut pairs = Vec::new();
        for (queue, sa, sb) in sockets {
            let counts: Arc<[Counts; 2]> = Arc::default();
            let readers = [sa.stats_reader(), sb.stats_reader()];
            let links = [Arc::clone(sa.watch().link()), Arc::clone(sb.watch().link())];
            let zerocopy = [sa.zerocopy(), sb.zerocopy()];
            let (stop2, counts2) = (Arc::clone(&stop), Arc::clone(&counts));
            let batch = config.batch;
            let thread = std::thread::Builder::new()
                .name(format!("afxdp-fwd-q{queue}"))
                .spawn(move || run_pair(sa, sb, batch, &stop2, &counts2))
                .map_err(|e| Error::os("starting a forwarding thread", e))?;
            pairs.push(Pair {
                queue,
                counts,
                readers,
                links,
                zerocopy,
                thread: Some(thread),
            });
        }
        Ok(Forwarder {
            names: [a.to_string(), b.to_string()],
            stop,
            pairs,
            warnings: warnings.advice,
            offload_changes: warnings.offload_changes,
            generation: sys::process_generation(),
        })
    }

    /// What on the two interfaces makes packets arrive unfinished or too large (see
    /// [`crate::socket::advice`]).
    pub fn warnings(&self) -> &[Advice] {
        &self.warnings
    }

    /// What `fix_offloads` turned off.
    pub fn offload_changes(&self) -> &[String] {
        &self.offload_changes
    }

    /// What each direction of each queue pair forwarded so far, with the kernel
    /// counters of the sockets involved.
    pub fn report(&self) -> Result<Vec<Direction>> {
        if sys::process_generation() != self.generation {
            return Err(Error::forked("forwarder"));
        }
        let mut out = Vec::new();
        for p in &self.pairs {
            let k = [p.readers[0].read()?, p.readers[1].read()?];
            for (from, to) in [(0, 1), (1, 0)] {
                let c = &p.counts[from];
                out.push(Direction {
                    queue: p.queue,
                    from: self.names[from].clone(),
                    to: self.names[to].clone(),
                    packets: c.packets.load(Ordering::Relaxed),
                    bytes: c.bytes.load(Ordering::Relaxed),
                    checksums: c.checksums.load(Ordering::Relaxed),
                    rx: k[from],
                    tx: k[to],
                    from_down: p.links[from].is_down(),
                    from_downs: p.links[from].downs(),
                    zerocopy: (p.zerocopy[from], p.zerocopy[to]),
                });
            }
        }
        Ok(out)
    }

    /// Whether every pair's thread is still forwarding (one that failed has ended;
    /// [`Forwarder::stop`] reports why).
    pub fn running(&self) -> bool {
        self.pairs
            .iter()
            .all(|p| p.thread.as_ref().is_some_and(|t| !t.is_finished()))
    }

    /// Stops every pair and waits for its thread; returns the first failure of any.
    /// Stopping twice is fine.
    pub fn stop(&mut self) -> Result<()> {
        if sys::process_generation() != self.generation {
            // A fork child: the threads (and their sockets) are the parent's; let go.
            for p in &mut self.pairs {
                std::mem::forget(p.thread.take());
            }
            return Ok(());
        }
        self.stop.store(true, Ordering::Relaxed);
        let mut first = Ok(());
        for p in &mut self.pairs {
            if let Some(t) = p.thread.take() {
                let r = t.join().unwrap_or_else(|_| {
                    Err(Error::new(
                        ErrorKind::Os,
                        format!("the forwarding thread of queue {} panicked", p.queue),
                    ))
                });
                if first.is_ok() {
                    first = r;
                }
            }
        }
        first
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// One queue pair: frames from each side to the other until `stop`. Idle, it waits
/// for either side as [`Wait`] says: in poll(2), or busy-polling where the sockets
/// were opened with busy polling (the forwarding itself makes the receive calls in
/// which the kernel polls the devices).
fn run_pair(
    mut a: XskSocket,
    mut b: XskSocket,
    batch: u32,
    stop: &AtomicBool,
    counts: &[Counts; 2],
) -> Result<()> {
    let wait = Wait::for_socket(a.config().busy_poll.or(b.config().busy_poll));
    let (wa, wb) = (a.watch(), b.watch());
    let forward = |a: &mut XskSocket, b: &mut XskSocket| -> Result<u32> {
        let ab = a.forward_to(b, batch)?;
        let ba = b.forward_to(a, batch)?;
        counts[0].add(&ab);
        counts[1].add(&ba);
        Ok(ab.packets + ba.packets)
    };
    while !stop.load(Ordering::Relaxed) {
        let moved = forward(&mut a, &mut b)?;
        if moved == 0 && (a.link_down() || b.link_down()) {
            // A side is down: packets for it wait in the other side's rx ring (whose
            // fd is then always readable, so polling would spin); look at the links
            // again after a pause.
            std::thread::sleep(DOWN_PAUSE);
            a.link_up()?;
            b.link_up()?;
            // What waited on a tx ring while its link was down leaves once it is up.
            a.kick_tx()?;
            b.kick_tx()?;
        } else if moved == 0 {
            // Nothing moved: wait for either side, bounded so that stop is seen.
            wait.slice_any(
                &[&wa, &wb],
                IDLE_WAIT,
                || stop.load(Ordering::Relaxed),
                || Ok((forward(&mut a, &mut b)? > 0).then_some(())),
            )?;
        }
    }
    Ok(())
}
