//! The kernel ABI and every system call the crate makes, in one place:
//!
//! * [`uapi`]: the AF_XDP structures and constants (linux/if_xdp.h);
//! * [`xsk`]: the AF_XDP socket (create, options, bind, kicks, poll);
//! * [`mmap`]: [`Mapping`], the owned memory mapping of a UMEM or a ring;
//! * [`netdev`]: interfaces (index, MTU, queues, driver) and network namespaces;
//! * [`ethtool`]: offload features by name, and a veth device's peer;
//! * [`bpf`]: the bpf(2) commands on maps and links the core needs;
//! * [`scm`]: bytes with descriptors over Unix sockets (vhost-user).
//!
//! Above this module the crate calls no libc function for any of these.
#![allow(unsafe_code)]

pub mod bpf;
pub mod ethtool;
pub mod mmap;
pub mod netdev;
pub mod scm;
pub mod uapi;
pub mod xsk;

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};

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

/// How many times this process is a fork child of a process that used this crate.
static FORKS: AtomicU64 = AtomicU64::new(0);

extern "C" fn count_fork_in_child() {
    FORKS.fetch_add(1, Ordering::Relaxed);
}

/// Which process this is, as far as sockets care: it changes in the child of a fork.
/// A socket remembers the generation it was opened in; in a forked child the numbers
/// differ, and the child must not touch the rings it shares with its parent.
pub fn process_generation() -> u64 {
    static HANDLER: std::sync::Once = std::sync::Once::new();
    HANDLER.call_once(|| {
        // SAFETY: registers a handler that only bumps an atomic counter, which is
        // async-signal-safe and so fine in a child right after fork.
        unsafe { libc::pthread_atfork(None, None, Some(count_fork_in_child)) };
    });
    FORKS.load(Ordering::Relaxed)
}

/// CLOCK_REALTIME minus CLOCK_MONOTONIC, in nanoseconds: what turns a monotonic
/// timestamp (as XDP's bpf_ktime_get_ns takes them) into wall-clock time.
pub fn realtime_offset_ns() -> i128 {
    let read = |clock| {
        // SAFETY: timespec is plain old data; clock_gettime fills it.
        let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
        // SAFETY: ts is a valid, writable timespec.
        unsafe { libc::clock_gettime(clock, &mut ts) };
        ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
    };
    read(libc::CLOCK_REALTIME) - read(libc::CLOCK_MONOTONIC)
}

/// The kernel's id of the eventfd open as descriptor `fd` of this process (its
/// `eventfd-id` in /proc/self/fdinfo, Linux 6.2 and later); None when `fd` is not an
/// open eventfd or the kernel does not say.
pub fn eventfd_id(fd: RawFd) -> Option<u64> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("eventfd-id:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Closes descriptor `fd` if it is still the eventfd whose id is `id`: for an eventfd
/// whose owner gave up ownership with `into_raw_fd` and never closes it. Returns
/// whether it was closed.
pub fn close_abandoned_eventfd(fd: RawFd, id: u64) -> bool {
    if eventfd_id(fd) != Some(id) {
        return false;
    }
    // SAFETY: fd is open and is the very eventfd the caller created (same kernel id,
    // and ids are never reused while it is open); its last owner let go of it without
    // closing it, so nobody else will close or use this number.
    drop(unsafe { OwnedFd::from_raw_fd(fd) });
    true
}
