//! Waiting on a socket, and telling what happened to it: its interface went down (a
//! state: the socket works again when the link is up), went away (fatal), or the XDP
//! program that fed it was detached. Also the backoff a blocked sender uses while the
//! kernel frees frames.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::errors;
use crate::error::{Error, ErrorKind, Result};
#[cfg(feature = "loader")]
use crate::program::XdpProgram;
use crate::sys;

/// A BPF link whose detachment stops packets from reaching a socket.
#[derive(Debug)]
pub(super) enum Feed {
    /// The default program (weak: a waiter never keeps a closed socket's program
    /// attached).
    #[cfg(feature = "loader")]
    Program(Weak<XdpProgram>),
    /// A link held for the socket (a program a privileged helper attached).
    Link(Weak<OwnedFd>),
}

/// The link state a socket last saw, shared by the socket and its waiters: whether
/// its interface is down (the kernel answers ENETDOWN), and how many times it went
/// down.
#[derive(Debug, Default)]
pub struct LinkFlags {
    down: AtomicBool,
    downs: AtomicU64,
}

impl LinkFlags {
    /// Records what the kernel just said; returns true when the state changed.
    pub fn observe(&self, down: bool) -> bool {
        let was = self.down.swap(down, Ordering::AcqRel);
        if down && !was {
            self.downs.fetch_add(1, Ordering::Relaxed);
        }
        was != down
    }

    /// Whether the interface was down at the last look.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }

    /// How many times the interface was seen going down.
    pub fn downs(&self) -> u64 {
        self.downs.load(Ordering::Relaxed)
    }
}

/// Waits on a socket without holding it, and tells what happened to it.
#[derive(Debug)]
pub struct Watch {
    fd: Arc<OwnedFd>,
    probe_rx: bool,
    ifname: String,
    queue: u32,
    feeds: Vec<Feed>,
    link: Arc<LinkFlags>,
}

impl Watch {
    pub(super) fn new(
        fd: Arc<OwnedFd>,
        probe_rx: bool,
        ifname: &str,
        queue: u32,
        feeds: Vec<Feed>,
    ) -> Self {
        Watch {
            fd,
            probe_rx,
            ifname: ifname.to_string(),
            queue,
            feeds,
            link: Arc::default(),
        }
    }

    /// The link state shared with the socket.
    pub fn link(&self) -> &Arc<LinkFlags> {
        &self.link
    }

    /// The socket's descriptor, to wait on it with others.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The error of a socket whose link is down, for `what` it was doing.
    pub fn link_down_error(&self, what: &str) -> Error {
        errors::link_down(&self.ifname, self.queue, what)
    }

    /// What a kick's answer means (`what`: the kick, for the error). Taken: the link is
    /// up. ENETDOWN: the link is down, a state recorded here, not a failure (what is
    /// on the rings stays there and goes once it is up; sends are refused meanwhile).
    /// A transient refusal: nothing. Anything else is the error.
    pub(super) fn settle_kick(&self, answer: io::Result<()>, what: &str) -> Result<()> {
        match answer {
            Ok(()) => {
                self.link.observe(false);
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(libc::ENETDOWN) => {
                self.link.observe(true);
                Ok(())
            }
            Err(e) if transient(&e) => Ok(()),
            Err(e) => Err(errors::io_error(&self.ifname, self.queue, what, e)),
        }
    }

    /// Waits up to `timeout` for `events`; returns whether they came. When they did
    /// not, looks at the link (see [`wait_fd`]: down is a state, removed is an error)
    /// and checks that its XDP program is still attached.
    pub fn wait(&self, events: libc::c_short, timeout: Option<Duration>) -> Result<bool> {
        let ready = wait_fd(
            self.fd.as_fd(),
            events,
            timeout,
            self.probe_rx,
            &self.ifname,
            self.queue,
            &self.link,
        )?;
        if !ready {
            self.check_program()?;
        }
        Ok(ready)
    }

    /// Fails with [`ErrorKind::ProgramDetached`] when the XDP program that steers
    /// packets to this socket was detached by someone else.
    pub fn check_program(&self) -> Result<()> {
        for feed in &self.feeds {
            match feed {
                #[cfg(feature = "loader")]
                Feed::Program(p) => {
                    if let Some(link) = p.upgrade().as_ref().and_then(|p| p.link()) {
                        check_link(link, &self.ifname)?;
                    }
                }
                Feed::Link(l) => {
                    if let Some(link) = l.upgrade() {
                        check_link(link.as_fd(), &self.ifname)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Fails when `link` (an XDP BPF link) was detached from its interface: the kernel
/// then reports it with interface index 0. Anything else passes.
pub fn check_link(link: BorrowedFd<'_>, ifname: &str) -> Result<()> {
    let info = match sys::bpf::link_info(link) {
        Ok(info) if info.link_type == sys::bpf::BPF_LINK_TYPE_XDP => info,
        _ => return Ok(()), // not an XDP link: nothing to watch
    };
    if info.xdp_ifindex != 0 {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::ProgramDetached,
        format!(
            "the XDP program (id {}) that steered {ifname}'s packets to this socket was \
             detached by someone else (bpftool link detach, or another tool): no packet \
             reaches the socket any more. Close it and open a new one (which attaches the \
             program again), and find out what removed it",
            info.prog_id
        ),
    ))
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
    link: &LinkFlags,
) -> Result<bool> {
    let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as i32);
    let ready = match sys::xsk::poll(fd, events, ms) {
        Ok(rev) => rev & events != 0 && rev & (libc::POLLERR | libc::POLLNVAL) == 0,
        Err(e) if e.kind() == io::ErrorKind::Interrupted => false,
        Err(e) => return Err(Error::os(format!("poll on {ifname} queue {queue}"), e)),
    };
    if ready {
        // Readiness is no news about the link (a backlog or tx room shows while it is
        // down): only a kick or a probe says it is up.
        return Ok(true);
    }
    probe_link(fd, probe_rx, ifname, queue, link)?;
    Ok(false)
}

/// Asks the kernel whether the socket still works: a zero-length receive (or send, for
/// a send-only socket) answers at once. ENETDOWN: the interface is down, which is a
/// state (recorded in `link`); an unbound socket (ENXIO, or a pending socket error):
/// the interface was removed or lost the queue, which is fatal.
pub fn probe_link(
    fd: BorrowedFd<'_>,
    probe_rx: bool,
    ifname: &str,
    queue: u32,
    link: &LinkFlags,
) -> Result<()> {
    let mut failure = sys::xsk::so_error(fd).err();
    if failure.is_none() {
        let kick = if probe_rx {
            sys::xsk::kick_rx(fd)
        } else {
            sys::xsk::kick_tx(fd)
        };
        match kick {
            Ok(()) => {
                link.observe(false);
            }
            Err(e) if e.raw_os_error() == Some(libc::ENETDOWN) => {
                link.observe(true);
            }
            Err(e) if transient(&e) => {}
            Err(e) => failure = Some(e),
        }
    }
    match failure {
        None => Ok(()),
        Some(e) => Err(errors::unbound(ifname, queue, &e)),
    }
}

/// Errors of a kick that only mean "not now": the frames stay on the ring.
pub(crate) fn transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EAGAIN) | Some(libc::EBUSY) | Some(libc::ENOBUFS) | Some(libc::EINTR)
    )
}

/// Time left until `deadline`: `None` when it has passed, `Some(None)` without one.
pub(crate) fn remaining(deadline: Option<Instant>) -> Option<Option<Duration>> {
    match deadline {
        None => Some(None),
        Some(d) => {
            let now = Instant::now();
            (now < d).then(|| Some(d - now))
        }
    }
}

/// How a caller waits while the kernel makes no progress (frees no frames): spin
/// briefly, then yield, then sleep a little, so that a blocked sender neither burns a
/// core for long nor adds latency when the kernel catches up quickly.
#[derive(Debug, Default)]
pub struct Backoff {
    idle: u32,
}

impl Backoff {
    /// Progress was made: the next wait starts short again.
    pub fn reset(&mut self) {
        self.idle = 0;
    }

    /// Waits a little, at most `limit`.
    pub fn wait(&mut self, limit: Option<Duration>) {
        self.idle += 1;
        if self.idle < 16 {
            std::hint::spin_loop();
        } else if self.idle < 64 {
            std::thread::yield_now();
        } else {
            let nap = Duration::from_micros(50);
            std::thread::sleep(limit.map_or(nap, |l| l.min(nap)));
        }
    }
}
