//! The socket's error messages: each names the value or the interface and says what to
//! do about it.

use std::io;

use super::config::BindMode;
use super::L2_OVERHEAD;
use crate::error::{Error, ErrorKind};
use crate::sys;
use crate::umem::UmemConfig;

pub(super) fn bad_queue(ifname: &str, queue: u32, queues: Option<u32>) -> Error {
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

pub(super) fn shared_same_queue(ifname: &str, queue: u32) -> Error {
    Error::new(
        ErrorKind::InvalidConfig,
        format!(
            "sharing the UMEM of the socket on {ifname} queue {queue} with another socket on \
             the same queue is not supported: share it across queues (or interfaces)"
        ),
    )
}

pub(super) fn bind_error(
    ifname: &str,
    queue: u32,
    mode: BindMode,
    handed_over: bool,
    e: io::Error,
) -> Error {
    match e.raw_os_error() {
        Some(libc::EINVAL) => {
            if let Some((rxq, txq)) = sys::netdev::if_queue_count(ifname) {
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
                 the kernel has not torn down yet): there is one AF_XDP socket per queue, \
                 whatever its match (to take several flows, give one socket a filter with \
                 `or`); close it, or pick another queue"
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

pub(super) fn umem_error(cfg: &UmemConfig, e: io::Error) -> Error {
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

/// A busy-polling socket option the kernel refused.
pub(super) fn busy_poll_refused(ifname: &str, option: &str, value: i32, e: io::Error) -> Error {
    let errno = e.raw_os_error().unwrap_or(0);
    let (kind, why) = match errno {
        libc::EPERM | libc::EACCES => (
            ErrorKind::Permission,
            "needs CAP_NET_ADMIN (without it a socket may only lower these values): run \
             with CAP_NET_ADMIN, or open the socket without busy_poll"
                .to_string(),
        ),
        libc::ENOPROTOOPT => (
            ErrorKind::InvalidConfig,
            "is unknown to this kernel (preferred busy polling needs Linux 5.11 or later \
             built with CONFIG_NET_RX_BUSY_POLL): open the socket without busy_poll"
                .to_string(),
        ),
        libc::EINVAL => (
            ErrorKind::InvalidConfig,
            "is out of the kernel's range: use smaller busy_poll_usecs/busy_poll_budget"
                .to_string(),
        ),
        _ => (ErrorKind::Os, format!("failed: {e}")),
    };
    Error::new(
        kind,
        format!("busy_poll on {ifname}: setting {option}={value} {why}"),
    )
    .with_errno(errno)
}

/// The socket's interface is down: the socket stays usable.
pub(crate) fn link_down(ifname: &str, queue: u32, what: &str) -> Error {
    Error::new(
        ErrorKind::LinkDown,
        format!(
            "{what} on {ifname} queue {queue}: the interface is down; the socket stays \
             usable and works again when the link is up (ip link set dev {ifname} up)"
        ),
    )
    .with_errno(libc::ENETDOWN)
}

/// The socket lost its binding: the interface was removed (or lost the queue).
pub(crate) fn unbound(ifname: &str, queue: u32, e: &io::Error) -> Error {
    Error::new(
        ErrorKind::Os,
        format!(
            "the AF_XDP socket on {ifname} queue {queue} stopped working ({e}): the \
             interface was removed or lost the queue, and the socket cannot work again: \
             close it (and open a new one once the interface is back)"
        ),
    )
    .with_errno(e.raw_os_error().unwrap_or(0))
}

/// A failed kick or wakeup on a bound socket. Kicks go through `Watch::settle_kick`,
/// which takes ENETDOWN as a state first; should it reach here from elsewhere, it
/// reads as the same LinkDown error.
pub(super) fn io_error(ifname: &str, queue: u32, what: &str, e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::ENETDOWN) => link_down(ifname, queue, what),
        Some(libc::ENXIO) | Some(libc::ENODEV) => unbound(ifname, queue, &e),
        _ => Error::os(format!("{what} on {ifname} queue {queue}"), e),
    }
}

pub(super) fn cannot_receive() -> Error {
    Error::new(
        ErrorKind::InvalidConfig,
        "this socket was opened with rx_size=0 (send only): it cannot receive",
    )
}

pub(super) fn cannot_send() -> Error {
    Error::new(
        ErrorKind::InvalidConfig,
        "this socket was opened with tx_size=0 (receive only): it cannot send",
    )
}

pub(super) fn peek_in_progress() -> Error {
    Error::new(
        ErrorKind::InvalidConfig,
        "rx entries are peeked (a deliver() is in progress): consume or cancel them \
         before receiving again",
    )
}

#[cfg(feature = "python")]
pub(super) fn frame_not_free(frame: u64) -> Error {
    Error::new(
        ErrorKind::InvalidConfig,
        format!("frame {frame} is not free: use a free frame or an address outside the UMEM"),
    )
}

pub(super) fn packet_too_large(
    index: usize,
    len: usize,
    max: u32,
    ifname: &str,
    frame_size: u32,
    multi_buffer: bool,
) -> Error {
    let mtu = sys::netdev::if_mtu(ifname).map_or(0, |m| m + L2_OVERHEAD);
    let what = if multi_buffer {
        format!(
            "MTU+18={mtu}, at most {} frames of {frame_size}",
            super::MAX_SEGMENTS
        )
    } else {
        format!("MTU+18={mtu}, one frame of {frame_size}")
    };
    let fix = if multi_buffer || mtu <= frame_size {
        "split it, or raise the MTU of the interface"
    } else {
        "split it, or use multi_buffer (Linux 6.6+) to send packets over several frames"
    };
    Error::new(
        ErrorKind::PacketSize,
        format!(
            "packet {index} is {len} bytes, larger than the {max} bytes this socket sends on \
             {ifname} ({what}): {fix}"
        ),
    )
}

pub(super) fn packet_too_short(index: usize, len: usize) -> Error {
    Error::new(
        ErrorKind::PacketSize,
        format!(
            "packet {index} is {len} bytes, shorter than an Ethernet header \
             ({} bytes): nothing was sent",
            super::MIN_PACKET
        ),
    )
}

pub(super) fn multi_buffer_refused(ifname: &str, queue: u32, e: &io::Error) -> Error {
    Error::new(
        ErrorKind::InvalidConfig,
        format!(
            "multi_buffer=True: the kernel refused multi-buffer (XDP_USE_SG) on {ifname} \
             queue {queue} ({e}): it needs Linux 6.6 or later, and for zero-copy a driver \
             that supports it; use multi_buffer=\"auto\" (falls back to one frame per \
             packet) or bind=\"copy\""
        ),
    )
    .with_errno(e.raw_os_error().unwrap_or(0))
}
