//! Network interfaces as the kernel describes them: index, MTU, queue counts and driver
//! (the ethtool ioctl), and the network namespace the calling thread is in.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::error::{Error, ErrorKind, Result};

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

/// Runs the ethtool command whose request `data` starts with its command word.
///
/// # Safety
/// `T` must be the request structure the kernel expects for that command (the kernel
/// reads and writes it by size).
unsafe fn ethtool<T>(ifname: &str, data: &mut T) -> io::Result<()> {
    // SAFETY: forwarded from the caller; data lives for the call.
    unsafe { ethtool_raw(ifname, (data as *mut T).cast()) }
}

/// Runs the ethtool command whose request at `data` starts with its command word.
///
/// # Safety
/// `data` must point at the request structure the kernel expects for that command,
/// valid for reads and writes of its whole size for the duration of the call.
pub(super) unsafe fn ethtool_raw(ifname: &str, data: *mut libc::c_void) -> io::Result<()> {
    let sock = inet_socket()?;
    let mut req = ifreq_for(ifname);
    req.ifr_ifru.ifru_data = data.cast();
    // SAFETY: req names the interface and points at data, which the caller guarantees
    // is the right structure for its command and which outlives the call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL, &mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
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
const ETHTOOL_GDRVINFO: u32 = 0x3;

/// How many (rx, tx) queues the interface has, counting combined channels, if the
/// driver says.
pub fn if_queue_count(ifname: &str) -> Option<(u32, u32)> {
    let mut ch = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..Default::default()
    };
    // SAFETY: ETHTOOL_GCHANNELS takes a struct ethtool_channels.
    unsafe { ethtool(ifname, &mut ch) }.ok()?;
    let rx = ch.rx_count + ch.combined_count;
    let tx = ch.tx_count + ch.combined_count;
    (rx > 0 || tx > 0).then_some((rx, tx))
}

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
    // SAFETY: EthtoolDrvinfo is plain old data; all-zero bytes are a valid value.
    let mut info: EthtoolDrvinfo = unsafe { std::mem::zeroed() };
    info.cmd = ETHTOOL_GDRVINFO;
    // SAFETY: ETHTOOL_GDRVINFO takes a struct ethtool_drvinfo.
    unsafe { ethtool(ifname, &mut info) }.ok()?;
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

/// The name of interface `index` in the calling thread's network namespace.
pub fn if_name(index: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IFNAMSIZ];
    // SAFETY: buf has the IFNAMSIZ bytes if_indextoname may write.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: on success buf holds a NUL-terminated name.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}
