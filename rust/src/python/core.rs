//! The state a Python socket shares with its batches and waiters, and how calls reach
//! it: the socket's mutex is only ever *waited for* with the GIL released
//! (`py.detach`), so a thread blocked in a wait never holds the GIL and another thread
//! holding the GIL never waits for the socket while the first one waits for the GIL.
//! With the GIL held it is only ever tried (`try_locked`): the fast path of a call
//! that has nothing to wait for. Long waits are cut in slices so that Ctrl-C (Python's
//! signal handlers) is seen.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pyo3::prelude::*;

use crate::error::Error;
use crate::socket::{Backoff, SendStep, XskSocket};
use crate::umem::RxFrames;

/// How long one GIL-free wait may last before we look at Python signals (Ctrl-C).
pub(super) const SIGNAL_SLICE: Duration = Duration::from_millis(100);

/// State shared by a socket and the rx batches it handed out.
pub(super) struct Core {
    inner: Mutex<Option<XskSocket>>,
    closed: AtomicBool,
    /// Set when close() begins: a long Rust loop holding the socket ends early.
    closing: AtomicBool,
    /// Set by stop_loop(): the running Rust loop ends early, or, when none runs, the
    /// next one to start ends at once; cleared when a loop ends.
    interrupt: AtomicBool,
    /// Emptied RxFrames of released batches, reused by the next receives (no
    /// allocation per batch).
    spare: Mutex<Vec<RxFrames>>,
}

/// How many emptied RxFrames a socket keeps for reuse.
const SPARE_FRAMES: usize = 8;

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Core {
    pub(super) fn new(sock: XskSocket) -> Self {
        Core {
            inner: Mutex::new(Some(sock)),
            closed: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            interrupt: AtomicBool::new(false),
            spare: Mutex::new(Vec::new()),
        }
    }

    /// Runs `f` on the open socket if no other thread is using it, without waiting
    /// (callable with the GIL held); None when the socket is busy.
    pub(super) fn try_locked<R>(
        &self,
        f: impl FnOnce(&mut XskSocket) -> Result<R, Error>,
    ) -> Option<Result<R, Error>> {
        let mut guard = self.inner.try_lock().ok()?;
        let Some(sock) = guard.as_mut() else {
            return Some(Err(Error::closed()));
        };
        Some(sock.check_process().and_then(|()| f(sock)))
    }

    /// An empty RxFrames for `sock`, reused from a released batch when there is one.
    pub(super) fn frames_for(&self, sock: &XskSocket, capacity: usize) -> RxFrames {
        match lock(&self.spare).pop() {
            Some(f) => f,
            None => sock.rx_frames(capacity),
        }
    }

    /// Runs `f` on the open socket (call with the GIL released).
    pub(super) fn locked<R>(
        &self,
        f: impl FnOnce(&mut XskSocket) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let mut guard = lock(&self.inner);
        let sock = guard.as_mut().ok_or_else(Error::closed)?;
        sock.check_process()?;
        f(sock)
    }

    /// Gives a batch's frames back: straight onto the fill ring when the socket is
    /// free, else (never waiting for it) they go home through their claim, and the
    /// socket takes them on its next call.
    pub(super) fn give_back(&self, mut frames: RxFrames) {
        if let Ok(mut guard) = self.inner.try_lock() {
            if let Some(sock) = guard.as_mut().filter(|s| !s.forked()) {
                sock.recycle(&mut frames);
                if frames.is_empty() {
                    let mut spare = lock(&self.spare);
                    if spare.len() < SPARE_FRAMES {
                        spare.push(frames);
                    }
                }
            }
        }
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Takes the socket out (to be dropped, which closes it); later calls fail.
    pub(super) fn shutdown(&self) -> Option<XskSocket> {
        self.closing.store(true, Ordering::Release);
        let sock = lock(&self.inner).take();
        self.closed.store(true, Ordering::Release);
        sock
    }

    pub(super) fn interrupt(&self) {
        self.interrupt.store(true, Ordering::Relaxed);
    }
}

/// Looks at `check` (with the GIL held) every 20 ms, napping with the GIL released in
/// between, until it gives an answer or `timeout` seconds (None: for ever) pass, which
/// answers false. Ctrl-C raises. For waits on state other threads change (a
/// forwarder's pairs, a vhost-user connection).
pub(super) fn watch_until(
    py: Python<'_>,
    timeout: Option<f64>,
    mut check: impl FnMut() -> Option<bool>,
) -> PyResult<bool> {
    let deadline = super::args::timeout_arg(timeout)?.map(|t| Instant::now() + t);
    loop {
        if let Some(answer) = check() {
            return Ok(answer);
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return Ok(false);
        }
        let nap = deadline.map_or(SIGNAL_SLICE, |d| (d - now).min(SIGNAL_SLICE));
        py.detach(|| std::thread::sleep(nap.min(Duration::from_millis(20))));
        py.check_signals()?;
    }
}

/// Runs `step` with the GIL released, in slices of at most [`SIGNAL_SLICE`], checking
/// for signals between slices, until it reports completion or `timeout` runs out.
/// `step` gets the time it may wait and returns `Some(result)` when done.
pub(super) fn sliced_wait<R, F>(
    py: Python<'_>,
    timeout: Option<Duration>,
    mut step: F,
) -> PyResult<Option<R>>
where
    R: Send,
    F: FnMut(Duration) -> Result<Option<R>, Error> + Send,
{
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let slice = match deadline {
            None => SIGNAL_SLICE,
            Some(d) => d
                .saturating_duration_since(Instant::now())
                .min(SIGNAL_SLICE),
        };
        if let Some(r) = py.detach(|| step(slice))? {
            return Ok(Some(r));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(None);
        }
        py.check_signals()?;
    }
}

/// One time slice of a blocking send: queues what it can of `packets[*sent..]` (all
/// checked already), for up to `slice`. The socket is locked only for each step, never
/// while waiting for the kernel to free frames, so another thread can receive
/// meanwhile. Returns Some when done (all queued, or a failure after some were queued,
/// kept for the next call).
pub(super) fn send_slice(
    core: &Core,
    packets: &[&[u8]],
    sent: &mut usize,
    slice: Duration,
) -> Result<Option<()>, Error> {
    let until = Instant::now() + slice;
    let mut backoff = Backoff::default();
    loop {
        let step = core.locked(|s| s.send_step(packets, sent))?;
        if *sent == packets.len() || step == SendStep::Stopped {
            return Ok(Some(()));
        }
        let now = Instant::now();
        if now >= until {
            return Ok(None);
        }
        match step {
            SendStep::Stalled => backoff.wait(Some(until - now)),
            _ => backoff.reset(),
        }
    }
}

/// Runs one of the Rust packet loops on the socket with the GIL released. The loop
/// ends early on Ctrl-C (Python signals are looked at every [`SIGNAL_SLICE`]; the
/// signal's exception is raised once the loop has cleaned up), on stop_loop(), or when
/// another thread closes the socket.
pub(super) fn run_loop<R: Send>(
    py: Python<'_>,
    core: &Core,
    f: impl FnOnce(&mut XskSocket, &mut dyn FnMut() -> bool) -> Result<R, Error> + Send,
) -> PyResult<R> {
    let mut signal: Option<PyErr> = None;
    let r = py.detach(|| {
        let mut next = Instant::now() + SIGNAL_SLICE;
        let mut stop = || {
            if core.closing.load(Ordering::Relaxed)
                || core.interrupt.load(Ordering::Relaxed)
                || signal.is_some()
            {
                return true;
            }
            let now = Instant::now();
            if now < next {
                return false;
            }
            next = now + SIGNAL_SLICE;
            signal = Python::attach(|py| py.check_signals().err());
            signal.is_some()
        };
        core.locked(|s| {
            let r = f(s, &mut stop);
            // A stop_loop() made before the loop got going ended it at once instead of
            // being lost (a thread started and stopped right away would otherwise run
            // its whole duration); either way the stop is used up now, while the
            // socket is still held, so that it cannot erase a stop meant for a loop
            // that takes the socket next.
            core.interrupt.store(false, Ordering::Relaxed);
            r
        })
    });
    if let Some(e) = signal {
        return Err(e);
    }
    Ok(r?)
}
