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
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::Arc;
#[cfg(feature = "loader")]
use std::sync::Weak;
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};
use crate::ring::{ConsumerRing, ProducerRing, RingParts};
use crate::sys::{self, SockaddrXdp, XdpDesc, XdpRingOffset, XdpStatistics, XdpUmemReg};
use crate::umem::{FramePool, UmemArea, UmemConfig};

#[cfg(feature = "loader")]
use crate::program::{self, AttachMode, XdpMode, XdpProgram};

/// Ethernet header plus one VLAN tag: what an interface accepts on top of its MTU.
const L2_OVERHEAD: u32 = 14 + 4;
/// The shortest frame worth sending: an Ethernet header.
pub const MIN_PACKET: usize = 14;

/// How to bind: copy mode, zero-copy, or whatever the driver supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BindMode {
    /// Let the kernel choose (zero-copy where the driver supports it, else copy).
    #[default]
    Auto,
    /// `XDP_COPY`: always copy (QEMU's force-copy).
    Copy,
    /// `XDP_ZEROCOPY`: fail if the driver cannot do zero-copy.
    ZeroCopy,
}

impl BindMode {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "auto" | "default" => Ok(BindMode::Auto),
            "copy" => Ok(BindMode::Copy),
            "zerocopy" | "zero-copy" | "zc" => Ok(BindMode::ZeroCopy),
            other => Err(Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "bind={other:?} is not a bind mode: use \"copy\", \"zerocopy\" or \"auto\""
                ),
            )),
        }
    }
}

/// Everything needed to open a socket.
#[derive(Debug, Clone)]
pub struct SocketConfig {
    pub umem: UmemConfig,
    /// Fill ring entries (power of two).
    pub fill_size: u32,
    /// Completion ring entries (power of two).
    pub comp_size: u32,
    /// Rx ring entries (power of two), 0 for a send-only socket.
    pub rx_size: u32,
    /// Tx ring entries (power of two), 0 for a receive-only socket.
    pub tx_size: u32,
    pub bind: BindMode,
    /// Bind with `XDP_USE_NEED_WAKEUP` (recommended; off means a syscall every batch).
    pub need_wakeup: bool,
    /// XDP attach mode of the default program.
    #[cfg(feature = "loader")]
    pub mode: XdpMode,
    /// Load and attach the default program (when the socket has an rx ring).
    #[cfg(feature = "loader")]
    pub load_program: bool,
    /// Insert the socket into this XSKMAP instead of loading the default program: a
    /// program someone else attached (QEMU's `inhibit` with `xsks-map-fd`).
    #[cfg(feature = "loader")]
    pub xsks_map: Option<Arc<OwnedFd>>,
    /// The UMEM frames (indices `start..end`) this socket's pool uses; `None` for all.
    /// Sockets sharing a UMEM must use disjoint ranges.
    pub frames: Option<(u32, u32)>,
    /// Descriptors kept open as long as the socket: e.g. the BPF link of a program a
    /// privileged helper attached, so the program stays exactly as long as the socket.
    pub hold: Vec<Arc<OwnedFd>>,
    /// How long to retry a bind that the kernel answers with EBUSY (a socket on the
    /// same queue that was just closed is torn down asynchronously).
    pub bind_retry: Duration,
}

impl Default for SocketConfig {
    fn default() -> Self {
        SocketConfig {
            umem: UmemConfig::default(),
            fill_size: 2048,
            comp_size: 2048,
            rx_size: 2048,
            tx_size: 2048,
            bind: BindMode::Auto,
            need_wakeup: true,
            #[cfg(feature = "loader")]
            mode: XdpMode::Auto,
            #[cfg(feature = "loader")]
            load_program: true,
            #[cfg(feature = "loader")]
            xsks_map: None,
            frames: None,
            hold: Vec::new(),
            bind_retry: Duration::from_secs(2),
        }
    }
}

const MAX_RING: u32 = 1 << 20;

fn check_ring(name: &str, size: u32, optional: bool) -> Result<()> {
    if optional && size == 0 {
        return Ok(());
    }
    if !size.is_power_of_two() || size > MAX_RING {
        let zero = if optional { ", or 0 for none" } else { "" };
        return Err(Error::new(
            ErrorKind::InvalidConfig,
            format!(
                "{name}={size} is not a valid ring size: use a power of two from 1 to \
                 {MAX_RING}{zero} (e.g. {})",
                size.checked_next_power_of_two()
                    .unwrap_or(MAX_RING)
                    .clamp(1, MAX_RING)
            ),
        ));
    }
    Ok(())
}

impl SocketConfig {
    pub fn validate(&self) -> Result<()> {
        self.umem.validate()?;
        check_ring("fill_size", self.fill_size, false)?;
        check_ring("comp_size", self.comp_size, false)?;
        check_ring("rx_size", self.rx_size, true)?;
        check_ring("tx_size", self.tx_size, true)?;
        if self.rx_size == 0 && self.tx_size == 0 {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                "rx_size=0 and tx_size=0: a socket needs an rx ring, a tx ring or both",
            ));
        }
        Ok(())
    }
}

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
    /// System calls made because the kernel asked for a wakeup (fill ring).
    pub rx_wakeups: u64,
    /// Completion-ring addresses that were not this socket's frames (dropped, never
    /// reused). Only descriptors that bypassed the library's checks cause them.
    pub invalid_completions: u64,
    /// Rx descriptors whose frame was not this socket's (dropped, never handed out).
    pub invalid_rx_descs: u64,
    /// Frames handed back that this socket had not handed out (ignored).
    pub invalid_returns: u64,
}

/// An AF_XDP socket bound to one queue of one interface, with its own UMEM.
pub struct XskSocket {
    // Drop order: the program registration goes first (Drop impl), then the rings are
    // unmapped, then the socket is closed, then the UMEM reference is released.
    #[cfg(feature = "loader")]
    program: Option<Arc<XdpProgram>>,
    fill: ProducerRing<u64>,
    comp: ConsumerRing<u64>,
    rx: Option<ConsumerRing<XdpDesc>>,
    tx: Option<ProducerRing<XdpDesc>>,
    /// Shared with waiters that poll without holding the socket (see `fd_handle`).
    fd: Arc<OwnedFd>,
    /// What such a waiter checks when poll reports nothing (see `watch`).
    watch: Arc<Watch>,
    /// This socket's frames of the UMEM. Shared with whatever still reads them (rx
    /// batches in Python): the range is free for another socket only when all are gone.
    claim: Arc<FrameClaim>,
    umem: Arc<UmemArea>,
    pool: FramePool,
    /// The UMEM frame indices this socket owns.
    frames: (u32, u32),
    /// One bit per frame of `frames`: set while the frame is in a user's rx batch.
    held: Vec<u64>,
    /// Frames on the fill ring or with the kernel for rx (not yet received).
    rx_in_kernel: u32,
    /// At most this many frames go to the fill ring; the rest stay for tx.
    fill_cap: u32,
    /// A failure to report on the next call (e.g. after packets were already queued).
    pending: Option<Error>,
    /// Rx entries looked at with `rx_peek` and not yet consumed or cancelled.
    peeked: u32,
    config: SocketConfig,
    ifname: String,
    ifindex: u32,
    queue: u32,
    max_packet: u32,
    zerocopy: bool,
    /// Frames in the tx ring or the kernel, not yet seen on the completion ring.
    tx_outstanding: u32,
    /// Frames handed to the user in rx batches.
    rx_held: u32,
    counters: Counters,
}

fn map_ring(
    fd: BorrowedFd<'_>,
    off: &XdpRingOffset,
    pgoff: libc::off_t,
    size: u32,
    entry: usize,
    name: &str,
) -> Result<RingParts> {
    let len = off.desc as usize + size as usize * entry;
    // SAFETY: a shared mapping of the ring the kernel created for this socket at pgoff;
    // we check the result for MAP_FAILED.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_POPULATE,
            fd.as_raw_fd(),
            pgoff,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(Error::last_os(format!("mapping the {name} ring")));
    }
    let ptr = NonNull::new(ptr.cast::<u8>()).expect("mmap returned null");
    // SAFETY: the mapping is len bytes long and the offsets come from XDP_MMAP_OFFSETS
    // for this very ring, which the kernel sized for `size` entries of `entry` bytes.
    Ok(unsafe {
        RingParts::from_mmap(
            ptr,
            len,
            off.producer as usize,
            off.consumer as usize,
            off.flags as usize,
            off.desc as usize,
            size,
        )
    })
}

impl XskSocket {
    /// Opens a socket on queue `queue` of `ifname` with its own UMEM, loading and
    /// attaching the default XDP program if the config asks for it.
    pub fn open(ifname: &str, queue: u32, config: SocketConfig) -> Result<Self> {
        Self::open_with(ifname, queue, config, None, None)
    }

    /// Like [`XskSocket::open`], with two more sources:
    ///
    /// * `fd`: an AF_XDP socket created elsewhere (e.g. by a privileged process that
    ///   put it in its program's XSKMAP and passed it over): it is set up and bound
    ///   here, which needs no capability, only enough RLIMIT_MEMLOCK for the UMEM;
    /// * `share`: bind with `XDP_SHARED_UMEM`, using `share`'s UMEM (frame geometry
    ///   and bind mode come from it; `config.frames` must pick frames it does not use).
    pub fn open_with(
        ifname: &str,
        queue: u32,
        mut config: SocketConfig,
        fd: Option<OwnedFd>,
        share: Option<&XskSocket>,
    ) -> Result<Self> {
        if let Some(owner) = share {
            config.umem = owner.umem.config();
            config.need_wakeup = owner.config.need_wakeup;
            config.bind = owner.config.bind;
        }
        config.validate()?;
        let ifindex = sys::if_index(ifname)?;
        if let Some((rxq, txq)) = sys::if_queue_count(ifname) {
            // The queue must exist on each side the socket uses.
            let limit = match (config.rx_size > 0, config.tx_size > 0) {
                (true, true) => rxq.min(txq),
                (true, false) => rxq,
                _ => txq,
            };
            if queue >= limit {
                return Err(bad_queue(ifname, queue, Some(limit)));
            }
        }
        if let Some(owner) = share {
            if owner.ifindex == ifindex && owner.queue == queue {
                return Err(Error::new(
                    ErrorKind::InvalidConfig,
                    format!(
                        "sharing the UMEM of the socket on {ifname} queue {queue} with another \
                         socket on the same queue is not supported: share it across queues \
                         (or interfaces)"
                    ),
                ));
            }
        }
        // Without the MTU (an interface in another namespace), the frame is the limit.
        let mtu = sys::if_mtu(ifname).unwrap_or(u32::MAX - L2_OVERHEAD);
        let umem = match share {
            Some(owner) => Arc::clone(&owner.umem),
            None => Arc::new(UmemArea::new(config.umem)?),
        };
        let frames = config.frames.unwrap_or((0, config.umem.frame_count));
        // From here on, dropping `claim` gives the frames back if open fails.
        let claim = Arc::new(FrameClaim::new(Arc::clone(&umem), frames)?);
        let handed_over = fd.is_some();
        let fd = match fd {
            Some(fd) => {
                sys::check_xsk_fd(fd.as_fd())?;
                fd
            }
            None => sys::xsk_socket()?,
        };
        let fdb = fd.as_fd();

        if share.is_none() {
            let reg = XdpUmemReg {
                addr: umem.as_ptr() as u64,
                len: umem.len() as u64,
                chunk_size: config.umem.frame_size,
                headroom: config.umem.headroom,
                flags: 0,
                tx_metadata_len: 0,
            };
            sys::set_opt(fdb, sys::XDP_UMEM_REG, &reg).map_err(|e| umem_error(&config.umem, e))?;
        }
        let set_size = |name: libc::c_int, size: u32, what: &str| {
            sys::set_opt(fdb, name, &size)
                .map_err(|e| Error::os(format!("setting the {what} ring size to {size}"), e))
        };
        set_size(sys::XDP_UMEM_FILL_RING, config.fill_size, "fill")?;
        set_size(
            sys::XDP_UMEM_COMPLETION_RING,
            config.comp_size,
            "completion",
        )?;
        if config.rx_size > 0 {
            set_size(sys::XDP_RX_RING, config.rx_size, "rx")?;
        }
        if config.tx_size > 0 {
            set_size(sys::XDP_TX_RING, config.tx_size, "tx")?;
        }
        let off = sys::mmap_offsets(fdb).map_err(|e| Error::os("reading XDP_MMAP_OFFSETS", e))?;
        let u64s = std::mem::size_of::<u64>();
        let descs = std::mem::size_of::<XdpDesc>();
        let fill_parts = map_ring(
            fdb,
            &off.fr,
            sys::XDP_UMEM_PGOFF_FILL_RING,
            config.fill_size,
            u64s,
            "fill",
        )?;
        let comp_parts = map_ring(
            fdb,
            &off.cr,
            sys::XDP_UMEM_PGOFF_COMPLETION_RING,
            config.comp_size,
            u64s,
            "completion",
        )?;
        let rx_parts = (config.rx_size > 0)
            .then(|| {
                map_ring(
                    fdb,
                    &off.rx,
                    sys::XDP_PGOFF_RX_RING,
                    config.rx_size,
                    descs,
                    "rx",
                )
            })
            .transpose()?;
        let tx_parts = (config.tx_size > 0)
            .then(|| {
                map_ring(
                    fdb,
                    &off.tx,
                    sys::XDP_PGOFF_TX_RING,
                    config.tx_size,
                    descs,
                    "tx",
                )
            })
            .transpose()?;
        // SAFETY (all four): each ring was just mapped for this socket with the kernel's
        // offsets and sizes, and this socket is its only user-space producer/consumer.
        let fill = unsafe { ProducerRing::new(fill_parts) };
        // SAFETY: see above.
        let comp = unsafe { ConsumerRing::new(comp_parts) };
        // SAFETY: see above.
        let rx = rx_parts.map(|p| unsafe { ConsumerRing::new(p) });
        // SAFETY: see above.
        let tx = tx_parts.map(|p| unsafe { ProducerRing::new(p) });

        // Attach the program before binding, so that "another program is attached"
        // is reported before anything else is set up on the queue.
        #[cfg(feature = "loader")]
        let program = if config.load_program && config.xsks_map.is_none() && config.rx_size > 0 {
            Some(program::attach(ifname, ifindex, config.mode)?)
        } else {
            None
        };

        let mut flags = match config.bind {
            BindMode::Auto => 0,
            BindMode::Copy => sys::XDP_COPY,
            BindMode::ZeroCopy => sys::XDP_ZEROCOPY,
        };
        if config.need_wakeup {
            flags |= sys::XDP_USE_NEED_WAKEUP;
        }
        let mut shared_umem_fd = 0;
        if let Some(owner) = share {
            // A socket sharing a UMEM takes its mode and flags from the UMEM's owner;
            // the kernel refuses any other flag here.
            flags = sys::XDP_SHARED_UMEM;
            shared_umem_fd = owner.fd.as_raw_fd() as u32;
        }
        let addr = SockaddrXdp {
            sxdp_family: sys::AF_XDP as u16,
            sxdp_flags: flags,
            sxdp_ifindex: ifindex,
            sxdp_queue_id: queue,
            sxdp_shared_umem_fd: shared_umem_fd,
        };
        // A handed-over socket that is already bound answers EBUSY at once: no retry.
        let retry = if handed_over {
            Duration::ZERO
        } else {
            config.bind_retry
        };
        bind_with_retry(fdb, &addr, retry)
            .map_err(|e| bind_error(ifname, queue, config.bind, handed_over, e))?;
        let zerocopy = sys::is_zerocopy(fdb).map_err(|e| Error::os("reading XDP_OPTIONS", e))?;

        let pool = FramePool::range(&config.umem, frames.0, frames.1);
        let count = frames.1 - frames.0;
        // Keep frames for tx when the socket also sends: up to a tx ring's worth, at
        // most half of them.
        let tx_reserve = if config.tx_size > 0 {
            config.tx_size.min(count / 2)
        } else {
            0
        };
        let fd = Arc::new(fd);
        let watch = Arc::new(Watch {
            fd: Arc::clone(&fd),
            probe_rx: rx.is_some(),
            ifname: ifname.to_string(),
            queue,
            #[cfg(feature = "loader")]
            program: program.as_ref().map(Arc::downgrade),
            #[cfg(feature = "loader")]
            links: config
                .hold
                .iter()
                .filter(|h| program::is_bpf_link(h.as_fd()))
                .map(Arc::downgrade)
                .collect(),
        });
        let mut sock = XskSocket {
            #[cfg(feature = "loader")]
            program,
            fill,
            comp,
            rx,
            tx,
            fd,
            watch,
            claim,
            umem,
            pool,
            frames,
            held: vec![0; (count as usize).div_ceil(64)],
            rx_in_kernel: 0,
            fill_cap: count - tx_reserve,
            pending: None,
            peeked: 0,
            ifname: ifname.to_string(),
            ifindex,
            queue,
            max_packet: config.umem.frame_size.min(mtu.saturating_add(L2_OVERHEAD)),
            zerocopy,
            tx_outstanding: 0,
            rx_held: 0,
            counters: Counters::default(),
            config,
        };
        if sock.rx.is_some() {
            sock.refill();
        }
        #[cfg(feature = "loader")]
        if let Some(prog) = &sock.program {
            prog.register(queue, sock.fd.as_raw_fd())?;
        } else if let Some(map) = &sock.config.xsks_map {
            program::map_insert(map.as_raw_fd(), queue, sock.fd.as_raw_fd())?;
        }
        Ok(sock)
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The socket's descriptor, kept open by the handle even if the socket is closed
    /// meanwhile: for waiting (poll) without holding the socket.
    pub fn fd_handle(&self) -> Arc<OwnedFd> {
        Arc::clone(&self.fd)
    }

    /// What a thread needs to wait for this socket without holding it, and to tell
    /// when it stopped working.
    pub fn watch(&self) -> Arc<Watch> {
        Arc::clone(&self.watch)
    }

    /// This socket's claim on its UMEM frames: hold it while reading frames the socket
    /// handed out, so that no other socket gets them before the reader is done.
    pub fn frame_claim(&self) -> Arc<FrameClaim> {
        Arc::clone(&self.claim)
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

    /// The mode the default program is attached in, if this socket loaded it.
    #[cfg(feature = "loader")]
    pub fn attach_mode(&self) -> Option<AttachMode> {
        self.program.as_ref().map(|p| p.mode())
    }

    #[cfg(feature = "loader")]
    pub fn program(&self) -> Option<&Arc<XdpProgram>> {
        self.program.as_ref()
    }

    pub fn umem(&self) -> &Arc<UmemArea> {
        &self.umem
    }

    /// The largest packet [`XskSocket::send`] accepts: the frame size, or the MTU plus
    /// an Ethernet header and a VLAN tag, whichever is smaller.
    pub fn max_packet(&self) -> u32 {
        self.max_packet
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Free frames in the user's pool.
    pub fn free_frames(&self) -> usize {
        self.pool.len()
    }

    /// The UMEM frame indices (`start..end`) this socket uses.
    pub fn frames(&self) -> (u32, u32) {
        self.frames
    }

    /// Whether the kernel asked for a system call to go on sending.
    pub fn tx_needs_wakeup(&self) -> bool {
        self.tx.as_ref().is_some_and(|t| t.needs_wakeup())
    }

    /// Frames sent but not yet completed.
    pub fn tx_outstanding(&self) -> u32 {
        self.tx_outstanding
    }

    pub fn statistics(&self) -> Result<XdpStatistics> {
        sys::statistics(self.fd()).map_err(|e| Error::os("reading XDP_STATISTICS", e))
    }

    /// Moves free frames onto the fill ring, keeping at most `fill_cap` frames with the
    /// kernel for rx (the rest of the pool stays for tx); returns how many.
    pub fn refill(&mut self) -> u32 {
        if self.rx.is_none() {
            return 0;
        }
        let room = self.fill_cap.saturating_sub(self.rx_in_kernel);
        let want = (self.pool.len() as u32).min(room).min(self.fill.size());
        if want == 0 {
            return 0;
        }
        let mut r = self.fill.reserve(want);
        let n = r.len();
        for i in 0..n {
            let frame = self.pool.pop().expect("pool holds at least n frames");
            r.write(i, frame);
        }
        r.submit_all();
        self.rx_in_kernel += n;
        n
    }

    /// Makes the system call the kernel asked for on the fill ring (or always, without
    /// need_wakeup).
    fn kick_rx_if_needed(&mut self) -> Result<()> {
        if self.config.need_wakeup && !self.fill.needs_wakeup() {
            return Ok(());
        }
        self.counters.rx_wakeups += 1;
        match sys::kick_rx(self.fd()) {
            Ok(()) => Ok(()),
            Err(e) if transient(&e) => Ok(()),
            Err(e) => Err(self.io_error("waking up rx", e)),
        }
    }

    /// Reports a failure saved for the next call.
    fn take_pending(&mut self) -> Result<()> {
        match self.pending.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Bit index of `frame` in `held`, if the frame is one of this socket's.
    fn frame_index(&self, frame: u64) -> Option<usize> {
        let (lo, hi) = self.frame_span();
        (frame >= lo && frame < hi)
            .then(|| ((frame - lo) / self.config.umem.frame_size as u64) as usize)
    }

    /// Takes up to `max` received packets without waiting and appends their
    /// descriptors to `out`. The frames now belong to the caller until it hands them
    /// back with [`XskSocket::recycle`]. Returns how many were taken.
    pub fn recv(&mut self, max: u32, out: &mut Vec<XdpDesc>) -> Result<u32> {
        self.take_pending()?;
        self.check_not_peeked()?;
        let (lo, hi) = self.frame_span();
        let fs = self.config.umem.frame_size as u64;
        let Some(rx) = self.rx.as_mut() else {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                "this socket was opened with rx_size=0 (send only): it cannot receive",
            ));
        };
        let peek = rx.peek(max);
        let n = peek.len();
        out.reserve(n as usize);
        let mut bytes = 0u64;
        let mut taken = 0;
        for i in 0..n {
            let d = peek.read(i);
            let frame = d.addr & !(fs - 1);
            // The kernel only returns frames we put on the fill ring; anything else
            // would be a frame we do not own: never hand it out.
            if frame < lo || frame >= hi || !self.umem.contains(d.addr, d.len) {
                self.counters.invalid_rx_descs += 1;
                continue;
            }
            let bit = ((frame - lo) / fs) as usize;
            self.held[bit / 64] |= 1 << (bit % 64);
            bytes += d.len as u64;
            out.push(d);
            taken += 1;
        }
        peek.release_all();
        self.rx_in_kernel = self.rx_in_kernel.saturating_sub(n);
        self.rx_held += taken;
        self.counters.rx_packets += taken as u64;
        self.counters.rx_bytes += bytes;
        if n == 0 {
            self.refill();
            self.kick_rx_if_needed()?;
        }
        Ok(taken)
    }

    fn check_not_peeked(&self) -> Result<()> {
        if self.peeked > 0 {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                "rx entries are peeked (a deliver() is in progress): consume or cancel them \
                 before receiving again",
            ));
        }
        Ok(())
    }

    /// Looks at up to `max` received packets without taking them: their descriptors are
    /// appended to `out` and stay in the rx ring (the kernel does not reuse their
    /// frames) until [`XskSocket::rx_consume`] takes the first `k` and cancels the
    /// rest, which the next receive returns again. Returns how many were peeked.
    pub fn rx_peek(&mut self, max: u32, out: &mut Vec<XdpDesc>) -> Result<u32> {
        self.take_pending()?;
        self.check_not_peeked()?;
        let rx = self.rx.as_mut().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidConfig,
                "this socket was opened with rx_size=0 (send only): it cannot receive",
            )
        })?;
        let (lo, hi) = (
            self.frames.0 as u64 * self.config.umem.frame_size as u64,
            self.frames.1 as u64 * self.config.umem.frame_size as u64,
        );
        let umem = &self.umem;
        let peek = rx.peek(max);
        // Hand out only the leading descriptors that are this socket's frames; an
        // invalid one is dropped (and counted) by the next recv.
        let n = (0..peek.len())
            .take_while(|&i| {
                let d = peek.read(i);
                let frame = umem.frame_of(d.addr);
                frame >= lo && frame < hi && umem.contains(d.addr, d.len)
            })
            .count() as u32;
        out.extend((0..n).map(|i| peek.read(i)));
        let invalid_first = n == 0 && !peek.is_empty();
        drop(peek); // not released: the entries stay in the ring
        if invalid_first {
            let mut dropped = Vec::new();
            self.recv(1, &mut dropped)?; // counts it in invalid_rx_descs
            self.recycle(dropped.iter().map(|d| d.addr));
            return Ok(0);
        }
        self.peeked = n;
        if n == 0 {
            self.refill();
            self.kick_rx_if_needed()?;
        }
        Ok(n)
    }

    /// Takes the first `k` peeked packets (their frames now belong to the caller, as
    /// after [`XskSocket::recv`]) and cancels the others: they stay in the ring for the
    /// next receive. Returns the descriptors taken.
    pub fn rx_consume(&mut self, k: u32, out: &mut Vec<XdpDesc>) -> Result<u32> {
        if k > self.peeked {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!("consuming {k} of {} peeked rx entries", self.peeked),
            ));
        }
        self.peeked = 0;
        if k == 0 {
            return Ok(0);
        }
        // The consumer has taken these packets: consuming them must not fail on an
        // error stored for later, or they would be delivered again.
        let stored = self.pending.take();
        let taken = self.recv(k, out);
        self.pending = stored;
        taken
    }

    /// Hands received frames (any address inside each frame) back; they go on the fill
    /// ring again. An address that is not a frame this socket handed out (or one
    /// already handed back) is ignored and counted in `invalid_returns`: a frame is
    /// never in two places. Returns how many frames were taken back.
    pub fn recycle(&mut self, addrs: impl IntoIterator<Item = u64>) -> u32 {
        let mut back = 0;
        for addr in addrs {
            let frame = self.umem.frame_of(addr);
            match self.frame_index(frame) {
                Some(bit) if self.held[bit / 64] & (1 << (bit % 64)) != 0 => {
                    self.held[bit / 64] &= !(1 << (bit % 64));
                    self.pool.push(frame);
                    back += 1;
                }
                _ => self.counters.invalid_returns += 1,
            }
        }
        self.rx_held = self.rx_held.saturating_sub(back);
        if self.refill() > 0 {
            if let Err(e) = self.kick_rx_if_needed() {
                self.pending = Some(e);
            }
        }
        back
    }

    /// Stores `e` to be reported by the next call (after a partial success).
    pub fn set_pending(&mut self, e: Error) {
        self.pending = Some(e);
    }

    /// Frames currently held in the user's rx batches.
    pub fn rx_held(&self) -> u32 {
        self.rx_held
    }

    /// Frames on the fill ring or with the kernel for receiving.
    pub fn rx_in_kernel(&self) -> u32 {
        self.rx_in_kernel
    }

    /// Like [`XskSocket::recv`], waiting up to `timeout` (forever if `None`) for at
    /// least one packet.
    pub fn recv_wait(
        &mut self,
        max: u32,
        out: &mut Vec<XdpDesc>,
        timeout: Option<Duration>,
    ) -> Result<u32> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let n = self.recv(max, out)?;
            if n > 0 {
                return Ok(n);
            }
            let Some(wait) = remaining(deadline) else {
                return Ok(0);
            };
            self.poll(libc::POLLIN, wait)?;
        }
    }

    /// Waits up to `timeout` for `events` (POLLIN/POLLOUT) on the socket; returns
    /// whether they came. Reports an interface that went away or down.
    pub fn poll(&self, events: libc::c_short, timeout: Option<Duration>) -> Result<bool> {
        self.watch.wait(events, timeout)
    }

    /// Moves completed tx frames back to the pool; returns how many.
    ///
    /// An address outside this socket's frames is never put in the pool (a frame has
    /// one owner); it is counted in `invalid_completions`. Through this library's API
    /// it cannot happen: the kernel only completes what was sent.
    pub fn complete(&mut self) -> u32 {
        let (lo, hi) = self.frame_span();
        let peek = self.comp.peek(self.comp.size());
        let n = peek.len();
        let mut valid = 0;
        for i in 0..n {
            let frame = self.umem.frame_of(peek.read(i));
            if frame >= lo && frame < hi {
                self.pool.push(frame);
                valid += 1;
            } else {
                self.counters.invalid_completions += 1;
            }
        }
        peek.release_all();
        self.tx_outstanding -= valid.min(self.tx_outstanding);
        self.counters.tx_completed += valid as u64;
        n
    }

    /// Byte offsets `[lo, hi)` of this socket's frames in the UMEM.
    fn frame_span(&self) -> (u64, u64) {
        let fs = self.config.umem.frame_size as u64;
        (self.frames.0 as u64 * fs, self.frames.1 as u64 * fs)
    }

    fn tx_ring(&mut self) -> Result<&mut ProducerRing<XdpDesc>> {
        self.tx.as_mut().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidConfig,
                "this socket was opened with tx_size=0 (receive only): it cannot send",
            )
        })
    }

    /// Checks that a packet of `len` bytes can be sent.
    pub fn check_packet(&self, index: usize, len: usize) -> Result<()> {
        if len > self.max_packet as usize {
            return Err(Error::new(
                ErrorKind::PacketSize,
                format!(
                    "packet {index} is {len} bytes, larger than the {} bytes a frame on {} \
                     can carry (frame_size={}, MTU+18={}): split it, or raise the MTU \
                     and use frame_size=4096",
                    self.max_packet,
                    self.ifname,
                    self.config.umem.frame_size,
                    sys::if_mtu(&self.ifname)
                        .map(|m| m + L2_OVERHEAD)
                        .unwrap_or(0),
                ),
            ));
        }
        if len < MIN_PACKET {
            return Err(Error::new(
                ErrorKind::PacketSize,
                format!(
                    "packet {index} is {len} bytes, shorter than an Ethernet header \
                     ({MIN_PACKET} bytes): nothing was sent"
                ),
            ));
        }
        Ok(())
    }

    /// Kicks the kernel to transmit, if it asked for it (or always without
    /// need_wakeup). Transient refusals (EAGAIN, EBUSY, ENOBUFS) are not errors: the
    /// frames stay on the ring for the next kick.
    pub fn kick_tx(&mut self) -> Result<()> {
        self.kick_tx_rounds(0)
    }

    /// Like [`XskSocket::kick_tx`], but goes on until the kernel has taken everything
    /// on the tx ring: in copy mode one sendto sends at most a small batch (32 frames)
    /// and answers EAGAIN while more wait. Completions are taken back in between, so
    /// the completion ring never blocks the kernel.
    pub fn drain_tx(&mut self) -> Result<()> {
        let rounds = self.config.tx_size / 16 + 2;
        self.kick_tx_rounds(rounds)
    }

    fn kick_tx_rounds(&mut self, mut rounds: u32) -> Result<()> {
        let Some(tx) = self.tx.as_ref() else {
            return Ok(());
        };
        if self.config.need_wakeup && !tx.needs_wakeup() {
            return Ok(());
        }
        loop {
            self.counters.tx_wakeups += 1;
            match sys::kick_tx(self.fd()) {
                Ok(()) => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && rounds > 0 => {
                    rounds -= 1;
                    self.complete();
                }
                Err(e) if transient(&e) => return Ok(()),
                Err(e) => return Err(self.io_error("sending", e)),
            }
        }
    }

    /// Queues as many of `packets` as fit now (free frames and tx ring space), copying
    /// each into a frame; returns how many. Every packet is checked first: if one is
    /// too large or too small, nothing is queued and the error names it.
    pub fn send_some<P: AsRef<[u8]>>(&mut self, packets: &[P]) -> Result<usize> {
        for (i, p) in packets.iter().enumerate() {
            self.check_packet(i, p.as_ref().len())?;
        }
        self.queue_checked(packets)
    }

    fn queue_checked<P: AsRef<[u8]>>(&mut self, packets: &[P]) -> Result<usize> {
        self.take_pending()?;
        self.tx_ring()?;
        self.complete();
        let want = packets.len().min(self.pool.len()).min(u32::MAX as usize) as u32;
        let umem = Arc::clone(&self.umem);
        let pool = &mut self.pool;
        let tx = self.tx.as_mut().expect("checked above");
        let mut r = tx.reserve(want);
        let n = r.len();
        let mut bytes = 0u64;
        for i in 0..n {
            let data = packets[i as usize].as_ref();
            let frame = pool.pop().expect("pool holds at least n frames");
            // Never hand the kernel a descriptor outside one frame of the UMEM.
            assert!(
                umem.contains(frame, data.len() as u32),
                "tx descriptor ({frame}, {}) outside the UMEM",
                data.len()
            );
            // SAFETY: the frame came from the free pool, so the user owns it and the
            // kernel is not touching it; data.len() <= max_packet <= frame_size was
            // checked, so the range stays inside the frame.
            unsafe { umem.slice_mut(frame, data.len() as u32) }.copy_from_slice(data);
            r.write(
                i,
                XdpDesc {
                    addr: frame,
                    len: data.len() as u32,
                    options: 0,
                },
            );
            bytes += data.len() as u64;
        }
        r.submit_all();
        self.tx_outstanding += n;
        self.counters.tx_packets += n as u64;
        self.counters.tx_bytes += bytes;
        if n > 0 {
            // The packets are queued whatever the kick says: report its failure on the
            // next call, so the caller's count of what was queued stays right. Drain:
            // in copy mode one sendto sends 32 frames, and the rest must not wait for
            // a later call.
            if let Err(e) = self.drain_tx() {
                self.pending = Some(e);
            }
        }
        Ok(n as usize)
    }

    /// Sends up to `max` received packets back out of this socket without copying them:
    /// each rx frame goes straight onto the tx ring (with `swap_macs`, the Ethernet
    /// destination and source are exchanged first, as an L2 forwarder does) and comes
    /// back to the pool once sent. Never waits; returns how many were forwarded.
    pub fn forward_back(&mut self, max: u32, swap_macs: bool) -> Result<u32> {
        self.take_pending()?;
        self.check_not_peeked()?;
        self.complete();
        let (lo, hi) = self.frame_span();
        let fs = self.config.umem.frame_size as u64;
        let umem = &self.umem;
        let (Some(rx), Some(tx)) = (self.rx.as_mut(), self.tx.as_mut()) else {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                "forwarding needs both an rx and a tx ring (rx_size and tx_size > 0)",
            ));
        };
        let room = tx.free(max).min(max);
        let peek = rx.peek(room);
        let n = peek.len();
        let mut r = tx.reserve(n);
        let (mut k, mut bytes, mut invalid) = (0, 0u64, 0u64);
        for i in 0..n {
            let d = peek.read(i);
            let frame = d.addr & !(fs - 1);
            if frame < lo || frame >= hi || !umem.contains(d.addr, d.len) {
                invalid += 1;
                continue;
            }
            if swap_macs && d.len >= 12 {
                // SAFETY: the kernel is done with this received frame and it is ours
                // until we put it on the tx ring below; 12 bytes fit (d.len >= 12 and
                // the descriptor lies inside one frame).
                let head = unsafe { umem.slice_mut(d.addr, 12) };
                let (dst, src) = head.split_at_mut(6);
                dst.swap_with_slice(src);
            }
            r.write(k, d);
            k += 1;
            bytes += d.len as u64;
        }
        r.submit(k);
        peek.release_all();
        self.rx_in_kernel = self.rx_in_kernel.saturating_sub(n);
        self.tx_outstanding += k;
        self.counters.invalid_rx_descs += invalid;
        self.counters.rx_packets += k as u64;
        self.counters.rx_bytes += bytes;
        self.counters.tx_packets += k as u64;
        self.counters.tx_bytes += bytes;
        if k > 0 {
            // Forwarded frames only come back (to be refilled) once sent: drain.
            if let Err(e) = self.drain_tx() {
                self.pending = Some(e);
            }
        }
        if self.refill() > 0 || n == 0 {
            self.kick_rx_if_needed()?;
        }
        Ok(k)
    }

    /// Queues all `packets`, waiting up to `timeout` (forever if `None`) for frames or
    /// ring space; returns how many were queued (fewer only when the time ran out).
    pub fn send<P: AsRef<[u8]>>(
        &mut self,
        packets: &[P],
        timeout: Option<Duration>,
    ) -> Result<usize> {
        for (i, p) in packets.iter().enumerate() {
            self.check_packet(i, p.as_ref().len())?;
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut sent = 0;
        let mut idle = 0u32;
        loop {
            let n = match self.queue_checked(&packets[sent..]) {
                Ok(n) => n,
                // Some are queued already: report them, and the error on the next call.
                Err(e) if sent > 0 => {
                    self.pending = Some(e);
                    return Ok(sent);
                }
                Err(e) => return Err(e),
            };
            sent += n;
            if sent == packets.len() {
                return Ok(sent);
            }
            if n == 0 {
                // Out of frames or tx slots: drive the kernel and wait for completions.
                self.kick_tx()?;
                if self.complete() == 0 {
                    idle += 1;
                    let Some(wait) = remaining(deadline) else {
                        return Ok(sent);
                    };
                    backoff(idle, wait);
                } else {
                    idle = 0;
                }
            }
        }
    }

    /// Waits up to `timeout` (forever if `None`) until every queued packet has been
    /// sent (seen on the completion ring). Returns whether it got there.
    pub fn flush(&mut self, timeout: Option<Duration>) -> Result<bool> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut idle = 0u32;
        loop {
            self.complete();
            if self.tx_outstanding == 0 {
                return Ok(true);
            }
            self.drain_tx()?;
            if self.complete() > 0 {
                idle = 0;
                continue;
            }
            idle += 1;
            let Some(wait) = remaining(deadline) else {
                return Ok(false);
            };
            backoff(idle, wait);
        }
    }

    /// Puts `addr` on the fill ring without any check (taking it out of the pool if it
    /// is there). Only for tests that provoke the kernel's invalid-descriptor counters.
    #[doc(hidden)]
    pub fn post_fill_unchecked(&mut self, addr: u64) -> Result<()> {
        self.take_free_frame(addr)?;
        if self.frame_index(self.umem.frame_of(addr)).is_some() {
            self.rx_in_kernel += 1;
        }
        let mut r = self.fill.reserve(1);
        if !r.is_empty() {
            r.write(0, addr);
            r.submit_all();
        }
        Ok(())
    }

    /// For the unchecked test hooks: an address outside this socket's frames is fine
    /// (the kernel rejects it); one inside must be a free frame, taken out of the pool.
    fn take_free_frame(&mut self, addr: u64) -> Result<()> {
        let frame = self.umem.frame_of(addr);
        if self.frame_index(frame).is_some() && !self.pool.remove(frame) {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "frame {frame} is not free: use a free frame or an address outside the UMEM"
                ),
            ));
        }
        Ok(())
    }

    /// Puts a tx descriptor on the ring without any check and kicks the kernel. Only
    /// for tests that provoke the kernel's invalid-descriptor counters.
    #[doc(hidden)]
    pub fn post_tx_unchecked(&mut self, addr: u64, len: u32) -> Result<()> {
        // The kernel hands even invalid descriptors back on the completion ring: the
        // frame must be one we own, taken out of the pool, so it is never in two places.
        self.take_free_frame(addr)?;
        {
            let tx = self.tx_ring()?;
            let mut r = tx.reserve(1);
            if !r.is_empty() {
                r.write(
                    0,
                    XdpDesc {
                        addr,
                        len,
                        options: 0,
                    },
                );
                r.submit_all();
            }
        }
        match sys::kick_tx(self.fd()) {
            Ok(()) => Ok(()),
            Err(e) if transient(&e) => Ok(()),
            Err(e) => Err(self.io_error("sending", e)),
        }
    }

    fn io_error(&self, what: &str, e: io::Error) -> Error {
        match e.raw_os_error() {
            Some(libc::ENETDOWN) => Error::new(
                ErrorKind::Os,
                format!(
                    "{what} on {}: the interface is down (bring it up: ip link set dev {} up)",
                    self.ifname, self.ifname
                ),
            )
            .with_errno(libc::ENETDOWN),
            Some(libc::ENXIO) | Some(libc::ENODEV) => Error::new(
                ErrorKind::Os,
                format!("{what} on {}: the interface is gone", self.ifname),
            )
            .with_errno(libc::ENXIO),
            _ => Error::os(format!("{what} on {} queue {}", self.ifname, self.queue), e),
        }
    }
}

impl Drop for XskSocket {
    fn drop(&mut self) {
        #[cfg(feature = "loader")]
        if let Some(prog) = &self.program {
            prog.unregister(self.queue);
        } else if let Some(map) = &self.config.xsks_map {
            program::map_delete(map.as_raw_fd(), self.queue);
        }
    }
}

/// A socket's range of UMEM frames. While it lives, no other socket sharing the UMEM
/// can take those frames; it is given back when the socket and everything that still
/// reads its frames (rx batches) are gone.
pub struct FrameClaim {
    umem: Arc<UmemArea>,
    frames: (u32, u32),
}

impl FrameClaim {
    fn new(umem: Arc<UmemArea>, frames: (u32, u32)) -> Result<Self> {
        umem.claim(frames)?;
        Ok(FrameClaim { umem, frames })
    }

    /// The UMEM the frames belong to.
    pub fn umem(&self) -> &Arc<UmemArea> {
        &self.umem
    }
}

impl Drop for FrameClaim {
    fn drop(&mut self) {
        self.umem.unclaim(self.frames);
    }
}

/// Waits on a socket without holding it, and tells when it stopped working: its
/// interface went away or down, or the XDP program that fed it was detached.
#[derive(Debug)]
pub struct Watch {
    fd: Arc<OwnedFd>,
    probe_rx: bool,
    ifname: String,
    queue: u32,
    /// The program this socket is registered with (weak: a waiter never keeps a
    /// closed socket's program attached).
    #[cfg(feature = "loader")]
    program: Option<Weak<XdpProgram>>,
    /// BPF links held for the socket (a program a privileged helper attached).
    #[cfg(feature = "loader")]
    links: Vec<Weak<OwnedFd>>,
}

impl Watch {
    /// Waits up to `timeout` for `events`; returns whether they came. When they did
    /// not, checks that the socket still works (see [`wait_fd`]) and that its XDP
    /// program is still attached.
    pub fn wait(&self, events: libc::c_short, timeout: Option<Duration>) -> Result<bool> {
        let ready = wait_fd(
            self.fd.as_fd(),
            events,
            timeout,
            self.probe_rx,
            &self.ifname,
            self.queue,
        )?;
        if !ready {
            self.check_program()?;
        }
        Ok(ready)
    }

    /// Fails with [`ErrorKind::ProgramDetached`] when the XDP program that steers
    /// packets to this socket was detached by someone else.
    pub fn check_program(&self) -> Result<()> {
        #[cfg(feature = "loader")]
        {
            if let Some(prog) = self.program.as_ref().and_then(Weak::upgrade) {
                prog.check_attached()?;
            }
            for link in self.links.iter().filter_map(Weak::upgrade) {
                program::check_link(link.as_fd(), &self.ifname)?;
            }
        }
        Ok(())
    }
}

/// Waits up to `timeout` for `events` on an AF_XDP socket, and reports a socket the
/// kernel has unbound (its interface went away) or flagged with an error, which
/// `poll` alone never shows. `probe_rx`: the socket has an rx ring to probe with.
pub fn wait_fd(
    fd: BorrowedFd<'_>,
    events: libc::c_short,
    timeout: Option<Duration>,
    probe_rx: bool,
    ifname: &str,
    queue: u32,
) -> Result<bool> {
    let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as i32);
    let ready = match sys::poll(fd, events, ms) {
        Ok(rev) => rev & events != 0 && rev & (libc::POLLERR | libc::POLLNVAL) == 0,
        Err(e) if e.kind() == io::ErrorKind::Interrupted => false,
        Err(e) => return Err(Error::os(format!("poll on {ifname} queue {queue}"), e)),
    };
    if ready {
        return Ok(true);
    }
    let mut failure = sys::so_error(fd).err();
    if failure.is_none() && probe_rx {
        // An unbound socket answers ENXIO; a bound one returns at once.
        failure = sys::kick_rx(fd).err().filter(|e| !transient(e));
    }
    match failure {
        None => Ok(false),
        Some(e) => Err(Error::new(
            ErrorKind::Os,
            format!(
                "the AF_XDP socket on {ifname} queue {queue} stopped working ({e}): the \
                 interface was removed, went down or lost its queue; close the socket"
            ),
        )
        .with_errno(e.raw_os_error().unwrap_or(0))),
    }
}

fn transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EAGAIN) | Some(libc::EBUSY) | Some(libc::ENOBUFS) | Some(libc::EINTR)
    )
}

/// Time left until `deadline`: `None` when it has passed, `Some(None)` without one.
fn remaining(deadline: Option<Instant>) -> Option<Option<Duration>> {
    match deadline {
        None => Some(None),
        Some(d) => {
            let now = Instant::now();
            (now < d).then(|| Some(d - now))
        }
    }
}

/// Spin briefly, then yield, then sleep a little: a blocked sender neither burns a
/// core for long nor adds latency when the kernel catches up quickly.
fn backoff(idle: u32, limit: Option<Duration>) {
    if idle < 16 {
        std::hint::spin_loop();
    } else if idle < 64 {
        std::thread::yield_now();
    } else {
        let nap = Duration::from_micros(50);
        std::thread::sleep(limit.map_or(nap, |l| l.min(nap)));
    }
}

fn bind_with_retry(fd: BorrowedFd<'_>, addr: &SockaddrXdp, retry: Duration) -> io::Result<()> {
    let deadline = Instant::now() + retry;
    // The kernel usually finishes tearing the previous socket down within a millisecond
    // or two: start with short naps, then back off.
    let mut nap = Duration::from_micros(200);
    loop {
        match sys::bind(fd, addr) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(nap);
                nap = (nap * 2).min(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

fn bad_queue(ifname: &str, queue: u32, queues: Option<u32>) -> Error {
    let have = match queues {
        Some(1) => format!("{ifname} has 1 queue: use queue 0"),
        Some(n) => format!("{ifname} has {n} queues: use 0 to {}", n - 1),
        None => format!("check the queues of {ifname} with `ethtool -l {ifname}`"),
    };
    Error::new(
        ErrorKind::InvalidQueue,
        format!("queue {queue} does not exist: {have}"),
    )
    .with_errno(libc::EINVAL)
}

fn bind_error(ifname: &str, queue: u32, mode: BindMode, handed_over: bool, e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::EINVAL) => {
            if let Some((rxq, txq)) = sys::if_queue_count(ifname) {
                if queue >= rxq.max(txq) {
                    return bad_queue(ifname, queue, Some(rxq.max(txq)));
                }
            }
            Error::os(format!("binding to {ifname} queue {queue}"), e)
        }
        Some(libc::EBUSY) if handed_over => Error::new(
            ErrorKind::Busy,
            format!(
                "the handed-over socket for {ifname} queue {queue} is already bound (or the \
                 queue is in use): pass a fresh, unbound AF_XDP socket"
            ),
        )
        .with_errno(libc::EBUSY),
        Some(libc::EOPNOTSUPP) | Some(libc::EPROTONOSUPPORT) if mode == BindMode::ZeroCopy => {
            Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "the driver of {ifname} cannot do zero-copy AF_XDP: use bind=\"auto\" (falls \
                 back to copy mode) or bind=\"copy\""
                ),
            )
            .with_errno(libc::EOPNOTSUPP)
        }
        Some(libc::EBUSY) => Error::new(
            ErrorKind::Busy,
            format!(
                "{ifname} queue {queue} is in use by another AF_XDP socket (or a closed one \
                 the kernel has not torn down yet): close it, or pick another queue"
            ),
        )
        .with_errno(libc::EBUSY),
        Some(libc::ENETDOWN) => Error::new(
            ErrorKind::Os,
            format!("{ifname} is down: bring it up first (ip link set dev {ifname} up)"),
        )
        .with_errno(libc::ENETDOWN),
        _ => Error::os(format!("binding to {ifname} queue {queue}"), e),
    }
}

fn umem_error(cfg: &UmemConfig, e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::ENOBUFS) => {
            // xdp_umem_account_pages: RLIMIT_MEMLOCK without CAP_IPC_LOCK. The limit is
            // compared with everything this user has locked, this UMEM included.
            let bytes = cfg.len();
            Error::new(
                ErrorKind::Memlock,
                format!(
                    "registering the UMEM ({bytes} bytes: {} frames of {}) failed: the locked \
                     memory limit is too low. RLIMIT_MEMLOCK must cover this UMEM's {bytes} \
                     bytes ({} KiB) plus what this user has locked already (other UMEMs): \
                     run `ulimit -l <KiB>` or `ulimit -l unlimited`, set LimitMEMLOCK= for a \
                     service, grant CAP_IPC_LOCK, or use fewer frames",
                    cfg.frame_count,
                    cfg.frame_size,
                    bytes.div_ceil(1024),
                ),
            )
            .with_errno(libc::ENOBUFS)
        }
        Some(libc::ENOMEM) => Error::new(
            ErrorKind::Os,
            format!(
                "registering the UMEM ({} bytes) failed: the kernel could not pin its pages \
                 (out of memory): use fewer frames",
                cfg.len()
            ),
        )
        .with_errno(libc::ENOMEM),
        _ => Error::os("registering the UMEM (XDP_UMEM_REG)", e),
    }
}
