//! The AF_XDP part of the kernel ABI (linux/if_xdp.h) and thin wrappers around the
//! system calls the core makes. Everything here mirrors the UAPI header; the kernel
//! reads these structures byte for byte.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::error::{Error, ErrorKind, Result};

pub const AF_XDP: libc::c_int = 44;
pub const SOL_XDP: libc::c_int = 283;

// setsockopt/getsockopt names at SOL_XDP.
pub const XDP_MMAP_OFFSETS: libc::c_int = 1;
pub const XDP_RX_RING: libc::c_int = 2;
pub const XDP_TX_RING: libc::c_int = 3;
pub const XDP_UMEM_REG: libc::c_int = 4;
pub const XDP_UMEM_FILL_RING: libc::c_int = 5;
pub const XDP_UMEM_COMPLETION_RING: libc::c_int = 6;
pub const XDP_STATISTICS: libc::c_int = 7;
pub const XDP_OPTIONS: libc::c_int = 8;

// sxdp_flags of bind().
pub const XDP_SHARED_UMEM: u16 = 1 << 0;
pub const XDP_COPY: u16 = 1 << 1;
pub const XDP_ZEROCOPY: u16 = 1 << 2;
pub const XDP_USE_NEED_WAKEUP: u16 = 1 << 3;

/// Set by the kernel in a ring's flags word when it needs a system call to go on.
pub const XDP_RING_NEED_WAKEUP: u32 = 1 << 0;
/// `xdp_options.flags`: the socket runs in zero-copy mode.
pub const XDP_OPTIONS_ZEROCOPY: u32 = 1 << 0;

// mmap offsets of the four rings.
pub const XDP_PGOFF_RX_RING: libc::off_t = 0;
pub const XDP_PGOFF_TX_RING: libc::off_t = 0x8000_0000;
pub const XDP_UMEM_PGOFF_FILL_RING: libc::off_t = 0x1_0000_0000;
pub const XDP_UMEM_PGOFF_COMPLETION_RING: libc::off_t = 0x1_8000_0000;

/// One rx or tx descriptor: where in the UMEM the packet is and how long it is.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XdpDesc {
    pub addr: u64,
    pub len: u32,
    pub options: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct XdpRingOffset {
    pub producer: u64,
    pub consumer: u64,
    pub desc: u64,
    pub flags: u64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct XdpMmapOffsets {
    pub rx: XdpRingOffset,
    pub tx: XdpRingOffset,
    pub fr: XdpRingOffset,
    pub cr: XdpRingOffset,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct XdpUmemReg {
    pub addr: u64,
    pub len: u64,
    pub chunk_size: u32,
    pub headroom: u32,
    pub flags: u32,
    pub tx_metadata_len: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct SockaddrXdp {
    pub sxdp_family: u16,
    pub sxdp_flags: u16,
    pub sxdp_ifindex: u32,
    pub sxdp_queue_id: u32,
    pub sxdp_shared_umem_fd: u32,
}

/// The kernel's per-socket counters (`XDP_STATISTICS`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XdpStatistics {
    /// Packets dropped for reasons other than invalid descriptors (e.g. no fill buffer).
    pub rx_dropped: u64,
    /// Invalid descriptors on the rx ring. Current kernels never count here: a bad
    /// fill-ring address is skipped and counted on the fill ring, which is not reported.
    pub rx_invalid_descs: u64,
    /// Tx descriptors the kernel found invalid.
    pub tx_invalid_descs: u64,
    /// Packets dropped because the rx ring was full.
    pub rx_ring_full: u64,
    /// Times the kernel found the fill ring empty.
    pub rx_fill_ring_empty_descs: u64,
    /// Times the kernel found the tx ring empty when asked to send.
    pub tx_ring_empty_descs: u64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct XdpOptions {
    flags: u32,
}

/// Creates an AF_XDP socket.
pub fn xsk_socket() -> Result<OwnedFd> {
    // SAFETY: socket(2) takes no pointers; a non-negative result is a new descriptor
    // that nothing else owns, so OwnedFd may take it.
    let fd = unsafe { libc::socket(AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        let err = io::Error::last_os_error();
        return Err(match err.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => Error::new(
                ErrorKind::Permission,
                "creating an AF_XDP socket needs CAP_NET_RAW: run as root, grant the \
                 capability (setcap cap_net_raw,cap_net_admin,cap_bpf+ep), or receive \
                 ready sockets from a privileged process",
            )
            .with_errno(libc::EPERM),
            Some(libc::EAFNOSUPPORT) => Error::new(
                ErrorKind::Os,
                "this kernel has no AF_XDP support (CONFIG_XDP_SOCKETS is off)",
            )
            .with_errno(libc::EAFNOSUPPORT),
            _ => Error::os("socket(AF_XDP)", err),
        });
    }
    // SAFETY: fd is a fresh descriptor returned by socket(2) and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Checks that `fd` is an AF_XDP socket (one handed over by another process).
pub fn check_xsk_fd(fd: BorrowedFd<'_>) -> Result<()> {
    let mut domain: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: domain is a valid, writable c_int and len holds its size.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_DOMAIN,
            (&mut domain as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 || domain != AF_XDP {
        return Err(Error::new(
            ErrorKind::InvalidConfig,
            format!(
                "sock_fd={} is not an AF_XDP socket: pass descriptors of sockets created \
                 with socket(AF_XDP, SOCK_RAW, 0)",
                fd.as_raw_fd()
            ),
        ));
    }
    Ok(())
}

/// setsockopt(SOL_XDP, name) with a plain-old-data value.
pub fn set_opt<T: Copy>(fd: BorrowedFd<'_>, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: value points to size_of::<T>() readable bytes for the duration of the
    // call; T is a repr(C) plain-old-data type the kernel reads by value.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            SOL_XDP,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// getsockopt(SOL_XDP, name) into a plain-old-data value; returns the length the
/// kernel wrote.
fn get_opt<T: Copy + Default>(fd: BorrowedFd<'_>, name: libc::c_int) -> io::Result<(T, usize)> {
    let mut value = T::default();
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: value is a valid, writable T and len holds its size; the kernel writes at
    // most len bytes and reports how many.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            SOL_XDP,
            name,
            (&mut value as *mut T).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok((value, len as usize))
    } else {
        Err(io::Error::last_os_error())
    }
}

pub fn mmap_offsets(fd: BorrowedFd<'_>) -> io::Result<XdpMmapOffsets> {
    let (off, len) = get_opt::<XdpMmapOffsets>(fd, XDP_MMAP_OFFSETS)?;
    if len != size_of::<XdpMmapOffsets>() {
        // Kernels before 5.4 had no flags word: need_wakeup cannot work there.
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "kernel too old: AF_XDP rings without a flags word (need Linux 5.4 or later)",
        ));
    }
    Ok(off)
}

pub fn statistics(fd: BorrowedFd<'_>) -> io::Result<XdpStatistics> {
    get_opt::<XdpStatistics>(fd, XDP_STATISTICS).map(|(s, _)| s)
}

/// Whether the bound socket really runs in zero-copy mode (`XDP_OPTIONS`).
pub fn is_zerocopy(fd: BorrowedFd<'_>) -> io::Result<bool> {
    get_opt::<XdpOptions>(fd, XDP_OPTIONS).map(|(o, _)| o.flags & XDP_OPTIONS_ZEROCOPY != 0)
}

pub fn bind(fd: BorrowedFd<'_>, addr: &SockaddrXdp) -> io::Result<()> {
    // SAFETY: addr is a valid sockaddr_xdp of the size we pass.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (addr as *const SockaddrXdp).cast(),
            size_of::<SockaddrXdp>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Kicks the kernel to process the tx ring (a zero-length, non-blocking sendto).
pub fn kick_tx(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: a null buffer of length zero and no address: the kernel reads nothing.
    let rc = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            std::ptr::null(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null(),
            0,
        )
    };
    if rc >= 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Kicks the kernel to process the fill ring (a zero-length, non-blocking recvfrom).
pub fn kick_rx(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: a null buffer of length zero and no address: the kernel writes nothing.
    let rc = unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            std::ptr::null_mut(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    if rc >= 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// poll(2) on one descriptor; returns the revents (0 on timeout). A negative timeout
/// waits forever. EINTR is returned to the caller, which owns the deadline.
pub fn poll(
    fd: BorrowedFd<'_>,
    events: libc::c_short,
    timeout_ms: i32,
) -> io::Result<libc::c_short> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    };
    // SAFETY: pfd is one valid pollfd and we pass a count of 1.
    let rc = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(pfd.revents)
    }
}

/// The interface index of `ifname` in the calling thread's network namespace.
pub fn if_index(ifname: &str) -> Result<u32> {
    let bad = || {
        Error::new(
            ErrorKind::InterfaceNotFound,
            format!(
                "no network interface named {ifname:?} in this network namespace; \
                 list them with `ip link` (or enter the right namespace first)"
            ),
        )
    };
    if ifname.is_empty() || ifname.len() >= libc::IFNAMSIZ || ifname.contains('/') {
        return Err(bad());
    }
    let c = CString::new(ifname).map_err(|_| bad())?;
    // SAFETY: c is a valid NUL-terminated string for the duration of the call.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        return Err(bad());
    }
    Ok(index)
}

fn ifreq_for(ifname: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain old data for which all-zero bytes are a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req
        .ifr_name
        .iter_mut()
        .zip(ifname.bytes().take(libc::IFNAMSIZ - 1))
    {
        *dst = src as libc::c_char;
    }
    req
}

fn inet_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes no pointers; we own the descriptor it returns.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is fresh and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The interface's MTU (SIOCGIFMTU).
pub fn if_mtu(ifname: &str) -> io::Result<u32> {
    let sock = inet_socket()?;
    let mut req = ifreq_for(ifname);
    // SAFETY: req is a valid ifreq naming the interface; the kernel writes ifru_mtu.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFMTU, &mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFMTU filled the mtu member of the union.
    Ok(unsafe { req.ifr_ifru.ifru_mtu } as u32)
}

#[repr(C)]
#[derive(Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

const ETHTOOL_GCHANNELS: u32 = 0x3c;

/// The pending error of a socket (SO_ERROR, which reading clears): Ok if none.
pub fn so_error(fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut err: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: err is a valid, writable c_int and len holds its size.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if err != 0 {
        return Err(io::Error::from_raw_os_error(err));
    }
    Ok(())
}

/// How many (rx, tx) queues the interface has, counting combined channels, if the
/// driver says.
pub fn if_queue_count(ifname: &str) -> Option<(u32, u32)> {
    let sock = inet_socket().ok()?;
    let mut ch = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..Default::default()
    };
    let mut req = ifreq_for(ifname);
    req.ifr_ifru.ifru_data = (&mut ch as *mut EthtoolChannels).cast();
    // SAFETY: req names the interface and points at ch, a valid ethtool_channels the
    // kernel fills; ch outlives the call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL, &mut req) };
    if rc < 0 {
        return None;
    }
    let rx = ch.rx_count + ch.combined_count;
    let tx = ch.tx_count + ch.combined_count;
    (rx > 0 || tx > 0).then_some((rx, tx))
}

const ETHTOOL_GDRVINFO: u32 = 0x3;

#[repr(C)]
struct EthtoolDrvinfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

/// The interface's driver name (ETHTOOL_GDRVINFO), if the driver says.
pub fn if_driver(ifname: &str) -> Option<String> {
    let sock = inet_socket().ok()?;
    // SAFETY: EthtoolDrvinfo is plain old data; all-zero bytes are a valid value.
    let mut info: EthtoolDrvinfo = unsafe { std::mem::zeroed() };
    info.cmd = ETHTOOL_GDRVINFO;
    let mut req = ifreq_for(ifname);
    req.ifr_ifru.ifru_data = (&mut info as *mut EthtoolDrvinfo).cast();
    // SAFETY: req names the interface and points at info, a valid ethtool_drvinfo
    // that outlives the call; the kernel fills it.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL, &mut req) };
    if rc < 0 {
        return None;
    }
    let end = info.driver.iter().position(|&b| b == 0).unwrap_or(32);
    Some(String::from_utf8_lossy(&info.driver[..end]).into_owned())
}

/// The inode of the calling thread's network namespace: with the interface index it
/// names an interface uniquely across namespaces.
pub fn netns_id() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/thread-self/ns/net")
        .map(|m| m.ino())
        .unwrap_or(0)
}
