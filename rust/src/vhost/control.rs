//! What the serving thread and its [`VhostUser`](super::VhostUser) share: the stop
//! request (with an eventfd that wakes a thread waiting for a frontend), the live
//! connection, and what happened to connections.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::error::{Error, Result};
use crate::sys;

use vhost_user_backend::ShutdownHandle;

/// What the serving thread shares with [`VhostUser`].
pub(super) struct Control {
    stop: AtomicBool,
    /// Readable once stop is requested: wakes a thread waiting for a frontend.
    wake: EventFd,
    /// The same eventfd, to poll.
    wake_fd: OwnedFd,
    /// The live connection, to shut down on stop.
    conn: Mutex<Option<ShutdownHandle>>,
    connected: AtomicBool,
    connections: AtomicU64,
    /// What happened to connections, oldest first (the last [`EVENTS_KEPT`]), and
    /// how many older ones were let go.
    events: Mutex<(Vec<String>, usize)>,
}

/// How many connection events are kept.
const EVENTS_KEPT: usize = 64;

impl Control {
    pub(super) fn new() -> Result<Self> {
        let wake = EventFd::new(EFD_NONBLOCK)
            .map_err(|e| Error::os("creating an eventfd for the vhost-user server", e))?;
        Ok(Control {
            stop: AtomicBool::new(false),
            wake_fd: sys::dup_fd(wake.as_raw_fd())
                .map_err(|e| Error::os("duplicating an eventfd", e))?,
            wake,
            conn: Mutex::new(None),
            connected: AtomicBool::new(false),
            connections: AtomicU64::new(0),
            events: Mutex::new((Vec::new(), 0)),
        })
    }

    pub(super) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    pub(super) fn wake_fd(&self) -> BorrowedFd<'_> {
        self.wake_fd.as_fd()
    }

    pub(super) fn request_stop(&self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.wake.write(1);
        if let Some(h) = self.conn.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            h.shutdown();
        }
    }

    /// A connection began: keep its handle so that a stop can end it. If the stop came
    /// first, end it now (the lock orders this against [`Control::request_stop`]).
    pub(super) fn connected(&self, handle: Option<ShutdownHandle>) {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if self.stopping() {
            if let Some(h) = &handle {
                h.shutdown();
            }
        }
        *conn = handle;
        self.connected.store(true, Ordering::Release);
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn disconnected(&self) {
        *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.connected.store(false, Ordering::Release);
    }

    pub(super) fn event(&self, what: String) {
        log::info!("{what}");
        let mut ev = self.events.lock().unwrap_or_else(|p| p.into_inner());
        if ev.0.len() == EVENTS_KEPT {
            ev.0.remove(0);
            ev.1 += 1;
        }
        ev.0.push(what);
    }

    pub(super) fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    pub(super) fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// The events numbered `start` and later (see [`VhostUser::events`](super::VhostUser::events)).
    pub(super) fn events(&self, start: usize) -> Vec<String> {
        let ev = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let skip = start.saturating_sub(ev.1);
        ev.0.iter().skip(skip).cloned().collect()
    }
}
