//! The kernel ABI and every system call the crate makes, in one place:
//!
//! * [`uapi`]: the AF_XDP structures and constants (linux/if_xdp.h);
//! * [`xsk`]: the AF_XDP socket (create, options, bind, kicks, poll);
//! * [`mmap`]: [`Mapping`], the owned memory mapping of a UMEM or a ring;
//! * [`netdev`]: interfaces (index, MTU, queues, driver) and network namespaces;
//! * [`ethtool`]: offload features by name, and a veth device's peer;
//! * [`bpf`]: the bpf(2) commands on maps and links the core needs.
//!
//! Above this module the crate calls no libc function for any of these.
#![allow(unsafe_code)]

pub mod bpf;
pub mod ethtool;
pub mod mmap;
pub mod netdev;
pub mod uapi;
pub mod xsk;

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

pub use mmap::Mapping;
pub use uapi::{XdpDesc, XdpStatistics};

/// A close-on-exec duplicate of descriptor `fd`, owned by the caller (the original
/// stays open). A number that is not an open descriptor fails with EBADF.
pub fn dup_fd(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) only reads the descriptor number; a bad number
    // fails with EBADF.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: dup is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(dup) })
}

/// CPU time (user + system) the calling thread has used, in seconds.
pub fn thread_cpu_seconds() -> f64 {
    // SAFETY: rusage is plain old data; zero is a valid value, and getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: ru is a valid, writable rusage.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}
