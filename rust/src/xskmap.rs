//! [`XskMap`]: a typed `BPF_MAP_TYPE_XSKMAP`, the map through which an XDP program
//! redirects packets of rx queue `k` to the AF_XDP socket stored at key `k`.
//!
//! The default program's map, a map someone else's program uses (QEMU's `inhibit` with
//! `xsks-map-fd`), or one pinned on a bpf filesystem: all the same type, used through
//! borrowed socket descriptors rather than raw numbers.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use crate::error::{Error, ErrorKind, Result};
use crate::sys::{self, bpf};

/// An XSKMAP, owned through its own descriptor.
#[derive(Debug)]
pub struct XskMap {
    fd: OwnedFd,
}

impl XskMap {
    /// Takes a descriptor that must be an XSKMAP.
    pub fn from_fd(fd: OwnedFd) -> Result<Self> {
        match bpf::map_type(fd.as_fd()) {
            Ok(bpf::BPF_MAP_TYPE_XSKMAP) => Ok(XskMap { fd }),
            _ => Err(Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "xsks_map_fd={} is not an XSKMAP: pass the descriptor of the \
                     BPF_MAP_TYPE_XSKMAP that the attached XDP program redirects to",
                    fd.as_raw_fd()
                ),
            )),
        }
    }

    /// A duplicate of the caller's descriptor `fd`, which must be an XSKMAP (the caller
    /// keeps its own).
    pub fn adopt(fd: RawFd) -> Result<Self> {
        let dup = sys::dup_fd(fd).map_err(|e| {
            Error::new(
                ErrorKind::InvalidConfig,
                format!("xsks_map_fd={fd} is not an open file descriptor ({e})"),
            )
        })?;
        Self::from_fd(dup).map_err(|_| {
            Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "xsks_map_fd={fd} is not an XSKMAP: pass the descriptor of the \
                     BPF_MAP_TYPE_XSKMAP that the attached XDP program redirects to"
                ),
            )
        })
    }

    /// Opens an XSKMAP pinned on a bpf filesystem at `path`.
    pub fn open_pinned(path: &str) -> Result<Self> {
        let c = path_arg(path)?;
        let fd = bpf::obj_get(&c).map_err(|e| {
            Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "xsks_map_path={path:?} cannot be opened ({e}): pin the XSKMAP there \
                     first (it must be on a bpf filesystem)"
                ),
            )
            .with_errno(e.raw_os_error().unwrap_or(0))
        })?;
        Self::from_fd(fd).map_err(|_| {
            Error::new(
                ErrorKind::InvalidConfig,
                format!("xsks_map_path={path:?} is not an XSKMAP"),
            )
        })
    }

    /// Routes packets of rx queue `queue` to `socket`.
    pub fn set(&self, queue: u32, socket: BorrowedFd<'_>) -> Result<()> {
        bpf::map_update_u32(self.fd.as_fd(), queue, socket.as_raw_fd() as u32).map_err(|e| match e
            .raw_os_error()
        {
            Some(libc::E2BIG) => Error::new(
                ErrorKind::InvalidQueue,
                format!("queue {queue} has no slot in the XSKMAP: it is too small"),
            ),
            Some(libc::EOPNOTSUPP) => Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "descriptor {} is not an AF_XDP socket: the XSKMAP refuses it",
                    socket.as_raw_fd()
                ),
            ),
            _ => Error::os(
                format!("inserting the socket of queue {queue} into the XSKMAP"),
                e,
            ),
        })
    }

    /// Stops routing packets of `queue` to a socket (they go wherever the program sends
    /// packets of queues without one). A missing entry is fine.
    pub fn clear(&self, queue: u32) {
        let _ = bpf::map_delete_u32(self.fd.as_fd(), queue);
    }

    /// Pins the map at `path` on a bpf filesystem, so other processes can open it.
    pub fn pin(&self, path: &str) -> Result<()> {
        let c = path_arg(path)?;
        bpf::obj_pin(self.fd.as_fd(), &c).map_err(|e: io::Error| {
            Error::os(
                format!("pinning the XSKMAP at {path} (is a bpf filesystem mounted there?)"),
                e,
            )
        })
    }
}

impl AsFd for XskMap {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn path_arg(path: &str) -> Result<CString> {
    CString::new(path).map_err(|_| {
        Error::new(
            ErrorKind::InvalidConfig,
            format!("path {path:?} contains a NUL byte"),
        )
    })
}
