//! The system calls on an AF_XDP socket: create, socket options, bind, the zero-length
//! `sendto`/`recvfrom` that kick the kernel, and `poll`.
#![allow(unsafe_code)]

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::uapi::*;
use crate::error::{Error, ErrorKind, Result};

/// Creates an AF_XDP socket.
pub fn socket() -> Result<OwnedFd> {
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

/// getsockopt(level, name) into a plain-old-data value; returns the length the kernel
/// wrote.
fn get_opt<T: Copy + Default>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<(T, usize)> {
    let mut value = T::default();
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: value is a valid, writable T and len holds its size; the kernel writes at
    // most len bytes and reports how many.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
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

/// Checks that `fd` is an AF_XDP socket (one handed over by another process).
pub fn check_fd(fd: BorrowedFd<'_>) -> Result<()> {
    match get_opt::<libc::c_int>(fd, libc::SOL_SOCKET, libc::SO_DOMAIN) {
        Ok((AF_XDP, _)) => Ok(()),
        _ => Err(Error::new(
            ErrorKind::InvalidConfig,
            format!(
                "sock_fd={} is not an AF_XDP socket: pass descriptors of sockets created \
                 with socket(AF_XDP, SOCK_RAW, 0)",
                fd.as_raw_fd()
            ),
        )),
    }
}

/// setsockopt(SOL_XDP, name) with a plain-old-data value.
pub fn set_opt<T: Copy>(fd: BorrowedFd<'_>, name: libc::c_int, value: &T) -> io::Result<()> {
    set_opt_at(fd, SOL_XDP, name, value)
}

fn set_opt_at<T: Copy>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: value points to size_of::<T>() readable bytes for the duration of the
    // call; T is a repr(C) plain-old-data type the kernel reads by value.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
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

/// The socket options of preferred busy polling, in the order they are set:
/// `SO_PREFER_BUSY_POLL`, `SO_BUSY_POLL` (microseconds), `SO_BUSY_POLL_BUDGET`.
pub const BUSY_POLL_OPTIONS: [(libc::c_int, &str); 3] = [
    (libc::SO_PREFER_BUSY_POLL, "SO_PREFER_BUSY_POLL"),
    (libc::SO_BUSY_POLL, "SO_BUSY_POLL"),
    (libc::SO_BUSY_POLL_BUDGET, "SO_BUSY_POLL_BUDGET"),
];

/// setsockopt(SOL_SOCKET, name) with an int.
pub fn set_socket_int(fd: BorrowedFd<'_>, name: libc::c_int, value: i32) -> io::Result<()> {
    set_opt_at(fd, libc::SOL_SOCKET, name, &value)
}

/// getsockopt(SOL_SOCKET, name) of an int.
pub fn socket_int(fd: BorrowedFd<'_>, name: libc::c_int) -> io::Result<i32> {
    get_opt::<libc::c_int>(fd, libc::SOL_SOCKET, name).map(|(v, _)| v)
}

/// The NAPI instance that delivered the socket's packets (`SO_INCOMING_NAPI_ID`); 0
/// when none did (no packet yet, or a device without NAPI IDs), in which case the
/// kernel cannot busy-poll for it.
pub fn napi_id(fd: BorrowedFd<'_>) -> io::Result<u32> {
    socket_int(fd, libc::SO_INCOMING_NAPI_ID).map(|v| v as u32)
}

/// Where the four rings lie in their mappings (`XDP_MMAP_OFFSETS`).
pub fn mmap_offsets(fd: BorrowedFd<'_>) -> io::Result<XdpMmapOffsets> {
    let (off, len) = get_opt::<XdpMmapOffsets>(fd, SOL_XDP, XDP_MMAP_OFFSETS)?;
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
    get_opt::<XdpStatistics>(fd, SOL_XDP, XDP_STATISTICS).map(|(s, _)| s)
}

/// Whether the bound socket really runs in zero-copy mode (`XDP_OPTIONS`).
pub fn is_zerocopy(fd: BorrowedFd<'_>) -> io::Result<bool> {
    get_opt::<XdpOptions>(fd, SOL_XDP, XDP_OPTIONS)
        .map(|(o, _)| o.flags & XDP_OPTIONS_ZEROCOPY != 0)
}

/// The pending error of a socket (SO_ERROR, which reading clears): Ok if none.
pub fn so_error(fd: BorrowedFd<'_>) -> io::Result<()> {
    match get_opt::<libc::c_int>(fd, libc::SOL_SOCKET, libc::SO_ERROR)? {
        (0, _) => Ok(()),
        (err, _) => Err(io::Error::from_raw_os_error(err)),
    }
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

/// poll(2) on several descriptors for the same events; returns whether any is ready
/// (or flagged with an error). EINTR counts as nothing ready.
pub fn poll_any(
    fds: &[BorrowedFd<'_>],
    events: libc::c_short,
    timeout_ms: i32,
) -> io::Result<bool> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events,
            revents: 0,
        })
        .collect();
    // SAFETY: pfds is a valid array of pfds.len() pollfd structures.
    let rc = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout_ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(e)
        };
    }
    Ok(rc > 0)
}
