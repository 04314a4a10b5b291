//! Opening a socket, step by step: check the interface and queue, claim UMEM frames,
//! register the UMEM, size and map the four rings, attach the steering, bind, and
//! register the socket where the XDP program looks for it.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::advice;
use super::config::{BindMode, BusyPoll, MultiBuffer, SocketConfig};
use super::errors;
use super::ledger::Ledger;
use super::steer::Registration;
use super::watch::Watch;
use super::L2_OVERHEAD;
use super::{Counters, XskSocket, MAX_SEGMENTS};
use crate::error::{Error, Result};
use crate::ring::{ConsumerRing, ProducerRing, RingLayout, RingParts};
use crate::sys::uapi::{self, SockaddrXdp, XdpRingOffset, XdpUmemReg};
use crate::sys::{self, Mapping, XdpDesc};
use crate::umem::{FrameClaim, UmemArea};

/// What the kernel keeps free in front of every received packet (XDP_PACKET_HEADROOM).
const XDP_PACKET_HEADROOM: u32 = 256;

/// The socket's four rings (rx or tx may be absent: a send-only or receive-only
/// socket).
pub(super) struct Rings {
    pub fill: ProducerRing<u64>,
    pub comp: ConsumerRing<u64>,
    pub rx: Option<ConsumerRing<XdpDesc>>,
    pub tx: Option<ProducerRing<XdpDesc>>,
}

impl XskSocket {
    /// Opens a socket on queue `queue` of `ifname` with its own UMEM, steering packets
    /// to it as the config says.
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
            config.umem = owner.umem().config();
            config.need_wakeup = owner.config.need_wakeup;
            config.bind = owner.config.bind;
            config.multi_buffer = if owner.multi_buffer {
                MultiBuffer::On
            } else {
                MultiBuffer::Off
            };
        }
        config.validate()?;
        let ifindex = sys::netdev::if_index(ifname)?;
        check_queue(ifname, queue, &config)?;
        if share.is_some_and(|o| o.ifindex == ifindex && o.queue == queue) {
            return Err(errors::shared_same_queue(ifname, queue));
        }
        // Without the MTU (an interface in another namespace), the frame is the limit.
        let mtu = sys::netdev::if_mtu(ifname).unwrap_or(u32::MAX - L2_OVERHEAD);
        let umem = match share {
            Some(owner) => Arc::clone(owner.umem()),
            None => Arc::new(UmemArea::new(config.umem)?),
        };
        let frames = config.frames.unwrap_or((0, config.umem.frame_count));
        // From here on, dropping `claim` gives the frames back if open fails.
        let claim = FrameClaim::new(&umem, frames)?;
        let handed_over = fd.is_some();
        let fd = match fd {
            Some(fd) => {
                sys::xsk::check_fd(fd.as_fd())?;
                fd
            }
            None => sys::xsk::socket()?,
        };
        if let Some(b) = config.busy_poll {
            enable_busy_poll(fd.as_fd(), ifname, b)?;
        }
        if share.is_none() {
            register_umem(fd.as_fd(), &umem)?;
        }
        let rings = Rings::map(fd.as_fd(), &config)?;
        let registration =
            Registration::prepare(&config.steering, ifname, ifindex, queue, rings.rx.is_some())?;
        let frame_room = config
            .umem
            .frame_size
            .saturating_sub(XDP_PACKET_HEADROOM + config.umem.headroom);
        // Multi-buffer by default only where a packet can be larger than a frame: an MTU
        // the frame does not hold, or XDP in skb mode (superpackets after GRO) or in a
        // program this process does not know. Elsewhere asking for it would cost
        // zero-copy on drivers that cannot combine the two, for nothing.
        let want_sg = match config.multi_buffer {
            MultiBuffer::On => true,
            MultiBuffer::Off => false,
            MultiBuffer::Auto => {
                rings.rx.is_none()
                    || !registration.native_mode()
                    || mtu.saturating_add(L2_OVERHEAD) > frame_room
            }
        };
        let (zerocopy, multi_buffer) = bind(
            fd.as_fd(),
            (ifname, ifindex, queue),
            &config,
            want_sg,
            share,
            handed_over,
        )?;

        let (advice, offload_changes) = if rings.rx.is_some() {
            let found = advice::inspect(&advice::Context {
                ifname,
                ifindex,
                skb_mode: registration.skb_mode(),
                frame_room,
                completes_checksums: config.complete_checksums,
                multi_buffer,
            });
            if config.fix_offloads {
                let (changed, left) = advice::fix(found);
                (left, changed)
            } else {
                (found, Vec::new())
            }
        } else {
            (Vec::new(), Vec::new())
        };
        let mut advice = advice;
        if multi_buffer && !zerocopy && config.bind == BindMode::Auto {
            advice.extend(advice::multi_buffer_costs_zerocopy(
                ifname, ifindex, mtu, frame_room,
            ));
        }
        if config.busy_poll.is_some() {
            advice.extend(advice::busy_poll(ifname, registration.skb_mode()));
        }
        let count = frames.1 - frames.0;
        // Keep frames for tx when the socket also sends: up to a tx ring's worth, at
        // most half of them.
        let tx_reserve = if config.tx_size > 0 {
            config.tx_size.min(count / 2)
        } else {
            0
        };
        let fd = Arc::new(fd);
        let watch = Arc::new(Watch::new(
            Arc::clone(&fd),
            rings.rx.is_some(),
            ifname,
            queue,
            registration.feeds(&config.hold),
        ));
        let mut sock = XskSocket {
            registration,
            rings,
            fd,
            watch,
            ledger: Ledger::new(config.umem, frames, tx_reserve),
            foreign: Vec::new(),
            reserved: None,
            claim,
            pending: None,
            tx_stalled_since: None,
            peeked: 0,
            peek_id: 0,
            ifname: ifname.to_string(),
            ifindex,
            queue,
            max_packet: if multi_buffer {
                (config.umem.frame_size * MAX_SEGMENTS).min(mtu.saturating_add(L2_OVERHEAD))
            } else {
                config.umem.frame_size.min(mtu.saturating_add(L2_OVERHEAD))
            },
            zerocopy,
            multi_buffer,
            counters: Counters::default(),
            advice,
            offload_changes,
            generation: sys::process_generation(),
            config,
        };
        // Frames on the fill ring first, then packets may come.
        sock.refill();
        let XskSocket {
            registration,
            fd,
            config,
            ..
        } = &mut sock;
        registration.register(fd.as_fd(), &config.rules, config.timestamps)?;
        Ok(sock)
    }
}

fn enable_busy_poll(fd: BorrowedFd<'_>, ifname: &str, b: BusyPoll) -> Result<()> {
    let values = [1, b.usecs as i32, b.budget as i32];
    for ((opt, name), value) in sys::xsk::BUSY_POLL_OPTIONS.into_iter().zip(values) {
        sys::xsk::set_socket_int(fd, opt, value)
            .map_err(|e| errors::busy_poll_refused(ifname, name, value, e))?;
    }
    Ok(())
}

/// The queue must exist on each side the socket uses (when the driver says how many
/// there are).
fn check_queue(ifname: &str, queue: u32, config: &SocketConfig) -> Result<()> {
    if let Some((rxq, txq)) = sys::netdev::if_queue_count(ifname) {
        let limit = match (config.rx_size > 0, config.tx_size > 0) {
            (true, true) => rxq.min(txq),
            (true, false) => rxq,
            _ => txq,
        };
        if queue >= limit {
            return Err(errors::bad_queue(ifname, queue, Some(limit)));
        }
    }
    Ok(())
}

fn register_umem(fd: BorrowedFd<'_>, umem: &UmemArea) -> Result<()> {
    let cfg = umem.config();
    let reg = XdpUmemReg {
        addr: umem.as_ptr() as u64,
        len: umem.len() as u64,
        chunk_size: cfg.frame_size,
        headroom: cfg.headroom,
        flags: 0,
        tx_metadata_len: 0,
    };
    sys::xsk::set_opt(fd, uapi::XDP_UMEM_REG, &reg).map_err(|e| errors::umem_error(&cfg, e))
}

impl Rings {
    /// Sizes the rings (setsockopt) and maps them.
    fn map(fd: BorrowedFd<'_>, config: &SocketConfig) -> Result<Self> {
        let set_size = |name: libc::c_int, size: u32, what: &str| {
            sys::xsk::set_opt(fd, name, &size)
                .map_err(|e| Error::os(format!("setting the {what} ring size to {size}"), e))
        };
        set_size(uapi::XDP_UMEM_FILL_RING, config.fill_size, "fill")?;
        set_size(
            uapi::XDP_UMEM_COMPLETION_RING,
            config.comp_size,
            "completion",
        )?;
        if config.rx_size > 0 {
            set_size(uapi::XDP_RX_RING, config.rx_size, "rx")?;
        }
        if config.tx_size > 0 {
            set_size(uapi::XDP_TX_RING, config.tx_size, "tx")?;
        }
        let off =
            sys::xsk::mmap_offsets(fd).map_err(|e| Error::os("reading XDP_MMAP_OFFSETS", e))?;
        let addrs = std::mem::size_of::<u64>();
        let descs = std::mem::size_of::<XdpDesc>();
        let fill = map_ring(
            fd,
            &off.fr,
            uapi::XDP_UMEM_PGOFF_FILL_RING,
            config.fill_size,
            addrs,
            "fill",
        )?;
        let comp = map_ring(
            fd,
            &off.cr,
            uapi::XDP_UMEM_PGOFF_COMPLETION_RING,
            config.comp_size,
            addrs,
            "completion",
        )?;
        let rx = (config.rx_size > 0)
            .then(|| {
                map_ring(
                    fd,
                    &off.rx,
                    uapi::XDP_PGOFF_RX_RING,
                    config.rx_size,
                    descs,
                    "rx",
                )
            })
            .transpose()?;
        let tx = (config.tx_size > 0)
            .then(|| {
                map_ring(
                    fd,
                    &off.tx,
                    uapi::XDP_PGOFF_TX_RING,
                    config.tx_size,
                    descs,
                    "tx",
                )
            })
            .transpose()?;
        // Each ring was just mapped for this socket with the kernel's offsets and sizes,
        // and this socket is its only user-space producer or consumer.
        Ok(Rings {
            // SAFETY: the fill ring holds frame addresses (u64); we are its producer.
            fill: unsafe { ProducerRing::new(fill) },
            // SAFETY: the completion ring holds frame addresses (u64); we consume it.
            comp: unsafe { ConsumerRing::new(comp) },
            // SAFETY: the rx ring holds descriptors (XdpDesc); we consume it.
            rx: rx.map(|p| unsafe { ConsumerRing::new(p) }),
            // SAFETY: the tx ring holds descriptors (XdpDesc); we are its producer.
            tx: tx.map(|p| unsafe { ProducerRing::new(p) }),
        })
    }
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
    let mapping = Mapping::socket_ring(fd, len, pgoff)
        .map_err(|e| Error::os(format!("mapping the {name} ring"), e))?;
    let layout = RingLayout {
        producer: off.producer as usize,
        consumer: off.consumer as usize,
        flags: off.flags as usize,
        entries: off.desc as usize,
        size,
    };
    // SAFETY: the mapping is `len` bytes long and the offsets come from
    // XDP_MMAP_OFFSETS for this very ring, which the kernel sized for `size` entries of
    // `entry` bytes.
    Ok(unsafe { RingParts::from_mapping(mapping, layout) })
}

/// Binds the socket to (interface name, index, queue); returns whether the kernel runs
/// it in zero-copy mode, and whether packets may span several frames (`want_sg`: ask
/// for multi-buffer).
fn bind(
    fd: BorrowedFd<'_>,
    (ifname, ifindex, queue): (&str, u32, u32),
    config: &SocketConfig,
    want_sg: bool,
    share: Option<&XskSocket>,
    handed_over: bool,
) -> Result<(bool, bool)> {
    let mut flags = match config.bind {
        BindMode::Auto => 0,
        BindMode::Copy => uapi::XDP_COPY,
        BindMode::ZeroCopy => uapi::XDP_ZEROCOPY,
    };
    if config.need_wakeup {
        flags |= uapi::XDP_USE_NEED_WAKEUP;
    }
    if want_sg {
        flags |= uapi::XDP_USE_SG;
    }
    let mut shared_umem_fd = 0;
    if let Some(owner) = share {
        // A socket sharing a UMEM takes its mode and flags (multi-buffer too) from the
        // UMEM's owner; the kernel refuses any other flag here.
        flags = uapi::XDP_SHARED_UMEM;
        shared_umem_fd = owner.fd.as_raw_fd() as u32;
    }
    let mut addr = SockaddrXdp {
        sxdp_family: uapi::AF_XDP as u16,
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
    let mut sg = share.map_or(want_sg, |o| o.multi_buffer);
    let mut bound = bind_with_retry(fd, &addr, retry);
    if let Err(e) = &bound {
        // A kernel before 6.6, or a zero-copy driver without multi-buffer: without it.
        let refused = matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EOPNOTSUPP));
        if refused && share.is_none() && sg {
            if config.multi_buffer == MultiBuffer::On {
                return Err(errors::multi_buffer_refused(ifname, queue, e));
            }
            addr.sxdp_flags &= !uapi::XDP_USE_SG;
            sg = false;
            bound = bind_with_retry(fd, &addr, retry);
        }
    }
    bound.map_err(|e| errors::bind_error(ifname, queue, config.bind, handed_over, e))?;
    let zerocopy = sys::xsk::is_zerocopy(fd).map_err(|e| Error::os("reading XDP_OPTIONS", e))?;
    Ok((zerocopy, sg))
}

fn bind_with_retry(fd: BorrowedFd<'_>, addr: &SockaddrXdp, retry: Duration) -> io::Result<()> {
    let deadline = Instant::now() + retry;
    // The kernel usually finishes tearing the previous socket down within a millisecond
    // or two: start with short naps, then back off.
    let mut nap = Duration::from_micros(200);
    loop {
        match sys::xsk::bind(fd, addr) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(nap);
                nap = (nap * 2).min(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}
