//! The AF_XDP socket: UMEM registration, the four rings, bind, wakeups and statistics.
//!
//! Frame flow:
//!
//! ```text
//!  rx:  pool --fill ring--> kernel --rx ring--> user batch --recycle--> pool
//!  tx:  pool --copy + tx ring--> kernel --completion ring--> pool
//! ```
//!
//! With `XDP_USE_NEED_WAKEUP` the kernel sets a flag on the fill or tx ring when it
//! needs a system call to go on; the socket makes one only then (a `sendto` to drive
//! tx, `poll`/`recvfrom` for rx), never once per batch for nothing.
//!
//! The parts: [`config`] (what a socket is opened with), `open` (UMEM registration,
//! ring mapping, bind), [`ledger`] (who owns each frame), `rx` and `tx` (the packet
//! paths), `forward` (rx frames sent on without a copy), [`watch`] (waiting, and
//! telling a socket that stopped working), `steer` (the XDP program or map that
//! sends packets here) and `errors` (the messages).

pub mod advice;
pub mod config;
pub(crate) mod errors;
mod forward;
#[doc(hidden)]
pub mod hooks;
pub mod ledger;
mod open;
pub mod queues;
mod rx;
mod steer;
mod tx;
pub mod wait;
pub mod watch;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

pub use config::{
    BindMode, BusyPoll, MapSource, MultiBuffer, SocketConfig, Steering, SteeringOptions,
};
pub use forward::Forwarded;
pub use ledger::FrameCounts;
pub use tx::{SendStep, REKICK_AFTER};
pub use wait::{OnLinkDown, Wait};
pub use watch::{Backoff, Watch};

use crate::error::{Error, Result};
#[cfg(feature = "loader")]
use crate::program::{AttachMode, XdpProgram};
use crate::ring::Peeked;
use crate::sys::{self, uapi, XdpDesc, XdpStatistics};
use crate::umem::{FrameClaim, RxFrames, UmemArea};
use ledger::Ledger;
use open::Rings;
use steer::Registration;

/// The shortest frame worth sending: an Ethernet header.
pub const MIN_PACKET: usize = 14;
/// Ethernet header plus one VLAN tag: what an interface accepts on top of its MTU.
pub(crate) const L2_OVERHEAD: u32 = 14 + 4;
/// The most frames one packet may span: what copy mode builds into one skb
/// (MAX_SKB_FRAGS, 17 by default). A receive call looks this far past its batch to
/// take a multi-buffer packet whole.
pub const MAX_SEGMENTS: u32 = 17;

/// Counters kept by the library (the kernel's are in [`XdpStatistics`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_completed: u64,
    /// System calls made because the kernel asked for a wakeup (tx).
    pub tx_wakeups: u64,
    /// Kicks made, whatever the kernel's need_wakeup flag said, because frames were in
    /// flight and no completion had come for [`REKICK_AFTER`](tx::REKICK_AFTER): a
    /// sender never waits forever on a wakeup the kernel did not ask for.
    pub tx_rekicks: u64,
    /// 1 when preferred busy polling was turned off for this socket because, in
    /// zero-copy, it kept the kernel from waking the driver to send: with it the kernel
    /// sends only from the NAPI instance it busy-polls, and drivers whose transmit runs
    /// elsewhere (virtio_net on Linux 6.18) then never send (see
    /// [`REKICK_AFTER`](tx::REKICK_AFTER)). Receiving still busy-polls in the socket's
    /// own system calls; the kernel no longer defers to them.
    pub busy_poll_tx_fallbacks: u64,
    /// System calls made because the kernel asked for a wakeup (fill ring).
    pub rx_wakeups: u64,
    /// Completion-ring addresses that were not this socket's frames (dropped, never
    /// reused). Only descriptors that bypassed the library's checks cause them.
    pub invalid_completions: u64,
    /// Rx descriptors whose frame was not this socket's (dropped, never handed out).
    pub invalid_rx_descs: u64,
    /// Frames handed back that this socket had not handed out (ignored).
    pub invalid_returns: u64,
    /// Partial checksums completed on receive (`complete_checksums`).
    pub checksums_completed: u64,
}

/// How many entries sit on the fill, rx and tx rings, read from the indices both sides
/// share: what a stalled socket is waiting for. Descriptors on the tx ring are ones the
/// kernel has not taken yet (what it sent shows in `tx_completed` once
/// [`XskSocket::complete`] took it back).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RingLevels {
    /// Frame addresses on the fill ring, for the kernel to receive into.
    pub fill_queued: u32,
    /// Received descriptors not yet released by the socket.
    pub rx_waiting: u32,
    /// Descriptors on the tx ring the kernel has not taken.
    pub tx_queued: u32,
}

/// One past the last descriptor of the packet that starts at descriptor `at` of
/// `peek` (the first one without `XDP_PKT_CONTD`), or None when `peek` ends inside it.
#[inline]
pub(crate) fn packet_end(peek: &Peeked<'_, XdpDesc>, at: u32) -> Option<u32> {
    (at..peek.len())
        .find(|&i| peek.read(i).options & uapi::XDP_PKT_CONTD == 0)
        .map(|i| i + 1)
}

/// Reads a socket's kernel counters (`XDP_STATISTICS`) without holding the socket.
#[derive(Debug, Clone)]
pub struct StatsReader(Arc<OwnedFd>);

impl StatsReader {
    pub fn read(&self) -> Result<XdpStatistics> {
        sys::xsk::statistics(self.0.as_fd()).map_err(|e| Error::os("reading XDP_STATISTICS", e))
    }
}

/// An AF_XDP socket bound to one queue of one interface, with its own UMEM (or a
/// range of frames of a shared one).
pub struct XskSocket {
    // Drop order: the registration goes first (the XDP program stops sending packets
    // here), then the rings are unmapped, then the socket is closed, then the claim on
    // the UMEM frames is released.
    registration: Registration,
    rings: Rings,
    /// Shared with waiters that poll without holding the socket (see `watch`).
    fd: Arc<OwnedFd>,
    /// What such a waiter checks when poll reports nothing.
    watch: Arc<Watch>,
    /// This socket's frames of the UMEM. Shared with whatever still reads them
    /// ([`RxFrames`]): the range is free for another socket only when all are gone.
    claim: Arc<FrameClaim>,
    ledger: Ledger,
    /// Completed addresses that are not this socket's frames (scratch for `complete`).
    foreign: Vec<u64>,
    /// A frame handed out by `reserve_frame` and not yet committed.
    reserved: Option<u64>,
    /// A failure to report on the next call (e.g. after packets were already queued).
    pending: Option<Error>,
    /// Since when frames have been in flight without a completion (None: not stalled).
    /// With the re-kicks made since the stall began.
    tx_stalled_since: Option<(std::time::Instant, u64)>,
    /// Rx entries looked at with `rx_peek` and not yet consumed or cancelled, and the
    /// id of that peek.
    peeked: u32,
    peek_id: u64,
    config: SocketConfig,
    ifname: String,
    ifindex: u32,
    queue: u32,
    max_packet: u32,
    zerocopy: bool,
    /// Bound with XDP_USE_SG: packets may span several frames.
    multi_buffer: bool,
    counters: Counters,
    /// Conditions on the interface that make packets arrive unfinished or too large.
    advice: Vec<advice::Advice>,
    /// What `fix_offloads` changed.
    offload_changes: Vec<String>,
    /// The process generation the socket was opened in (see
    /// [`sys::process_generation`]).
    generation: u64,
}

impl XskSocket {
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Whether this is the child of a fork of the process that opened the socket.
    pub fn forked(&self) -> bool {
        sys::process_generation() != self.generation
    }

    /// Fails in the child of a fork: the socket's rings are its parent's too.
    pub fn check_process(&self) -> Result<()> {
        if self.forked() {
            return Err(Error::forked("socket"));
        }
        Ok(())
    }

    /// What a thread needs to wait for this socket without holding it, and to tell
    /// when it stopped working.
    pub fn watch(&self) -> Arc<Watch> {
        Arc::clone(&self.watch)
    }

    /// An empty [`RxFrames`] for this socket's receive calls.
    pub fn rx_frames(&self, capacity: usize) -> RxFrames {
        RxFrames::new(Arc::clone(&self.claim), capacity, self.config.timestamps)
    }

    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    pub fn queue(&self) -> u32 {
        self.queue
    }

    pub fn config(&self) -> &SocketConfig {
        &self.config
    }

    /// Whether the kernel really runs this socket in zero-copy mode (`XDP_OPTIONS`).
    pub fn zerocopy(&self) -> bool {
        self.zerocopy
    }

    /// The NAPI ID the kernel gave the socket with the packets it delivered
    /// (`SO_INCOMING_NAPI_ID`): 0 before the first packet, and always on devices
    /// without NAPI IDs (veth, skb mode). Busy polling works only with one.
    pub fn napi_id(&self) -> Result<u32> {
        sys::xsk::napi_id(self.fd()).map_err(|e| Error::os("reading SO_INCOMING_NAPI_ID", e))
    }

    /// Changes which packets of the queue come to this socket, at once: those matching
    /// one of `rules` (see [`crate::flow`]), or all when empty. The others go to the
    /// kernel stack.
    pub fn set_match(&mut self, rules: &[crate::flow::Rule]) -> Result<()> {
        self.check_process()?;
        self.registration.set_rules(rules)
    }

    /// The rules this socket takes packets by (empty: all of its queue's).
    pub fn match_rules(&self) -> &[crate::flow::Rule] {
        self.registration.rules()
    }

    /// Whether packets may span several frames (bound with `XDP_USE_SG`).
    pub fn multi_buffer(&self) -> bool {
        self.multi_buffer
    }

    /// What on the interface makes packets arrive unfinished or too large, each with
    /// its fix (see [`advice`]); empty for a send-only socket.
    pub fn warnings(&self) -> &[advice::Advice] {
        &self.advice
    }

    /// What `fix_offloads` turned off, one line each.
    pub fn offload_changes(&self) -> &[String] {
        &self.offload_changes
    }

    /// The mode the default program is attached in, if this socket uses it.
    #[cfg(feature = "loader")]
    pub fn attach_mode(&self) -> Option<AttachMode> {
        self.program().map(|p| p.mode())
    }

    /// The default program this socket is registered with, if any.
    #[cfg(feature = "loader")]
    pub fn program(&self) -> Option<&Arc<XdpProgram>> {
        self.registration.program()
    }

    pub fn umem(&self) -> &Arc<UmemArea> {
        self.claim.umem()
    }

    /// The largest packet [`XskSocket::send`] accepts: the MTU plus an Ethernet header
    /// and a VLAN tag, and at most a frame (or [`MAX_SEGMENTS`] frames with
    /// multi-buffer).
    pub fn max_packet(&self) -> u32 {
        self.max_packet
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Where this socket's frames are (after taking back the frames of dropped
    /// [`RxFrames`]): they always add up to the socket's frame count.
    pub fn frame_counts(&mut self) -> FrameCounts {
        self.reclaim();
        self.ledger.counts()
    }

    /// The UMEM frame indices (`start..end`) this socket uses.
    pub fn frames(&self) -> (u32, u32) {
        self.claim.frames()
    }

    /// Whether the kernel asked for a system call to go on sending.
    pub fn tx_needs_wakeup(&self) -> bool {
        self.rings.tx.as_ref().is_some_and(|t| t.needs_wakeup())
    }

    /// Frames sent but not yet completed.
    pub fn tx_outstanding(&self) -> u32 {
        self.ledger.counts().tx_outstanding
    }

    /// How full each ring is, as both sides see it now (read from the shared indices).
    pub fn ring_levels(&self) -> RingLevels {
        RingLevels {
            fill_queued: self.rings.fill.pending(),
            rx_waiting: self.rings.rx.as_ref().map_or(0, |r| r.waiting()),
            tx_queued: self.rings.tx.as_ref().map_or(0, |t| t.pending()),
        }
    }

    /// The kernel's counters for this socket (`XDP_STATISTICS`).
    pub fn statistics(&self) -> Result<XdpStatistics> {
        self.stats_reader().read()
    }

    /// Reads this socket's kernel counters from any thread, also while another thread
    /// is using the socket.
    pub fn stats_reader(&self) -> StatsReader {
        StatsReader(Arc::clone(&self.fd))
    }

    /// Reports a failure saved for the next call.
    fn take_pending(&mut self) -> Result<()> {
        match self.pending.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Takes back the frames on their way home: those of [`RxFrames`] dropped without
    /// being recycled, and those another socket of the UMEM sent and the kernel
    /// completed.
    fn reclaim(&mut self) {
        if let Some(home) = self.claim.take_homecoming() {
            for addr in home.sent {
                match self.ledger.completed(addr) {
                    Some(last) => self.counters.tx_completed += last as u64,
                    None => self.counters.invalid_completions += 1,
                }
            }
            if !home.held.is_empty() {
                self.give_back(home.held);
            }
        }
    }
}
