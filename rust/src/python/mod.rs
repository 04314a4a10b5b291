//! PyO3 bindings: argument conversion, GIL release and error mapping. No packet logic
//! lives here; it calls into [`crate::socket`].
//!
//! Locking rule: the socket's mutex is only ever taken with the GIL released
//! (`py.detach`), so a thread blocked in a wait never holds the GIL and another thread
//! holding the GIL never waits for the socket while the first one waits for the GIL.
//! Rx batches give their frames back through a separate, short-lived lock (the return
//! queue), which the socket drains on its next call.
#![allow(unsafe_code)]

use std::ffi::c_int;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::error::{Error, ErrorKind};
use crate::socket::FrameClaim;
use crate::socket::{BindMode, SocketConfig, XskSocket};
use crate::sys::XdpDesc;
use crate::umem::UmemConfig;

mod errors {
    pyo3::import_exception!(afxdp_rs.errors, InterfaceNotFoundError);
    pyo3::import_exception!(afxdp_rs.errors, QueueError);
    pyo3::import_exception!(afxdp_rs.errors, ConfigError);
    pyo3::import_exception!(afxdp_rs.errors, PacketSizeError);
    pyo3::import_exception!(afxdp_rs.errors, SocketClosedError);
    pyo3::import_exception!(afxdp_rs.errors, PrivilegeError);
    pyo3::import_exception!(afxdp_rs.errors, MemlockError);
    pyo3::import_exception!(afxdp_rs.errors, ProgramAttachedError);
    pyo3::import_exception!(afxdp_rs.errors, AttachError);
    pyo3::import_exception!(afxdp_rs.errors, ProgramDetachedError);
    pyo3::import_exception!(afxdp_rs.errors, BusyError);
    pyo3::import_exception!(afxdp_rs.errors, XdpOSError);
    pyo3::import_exception!(afxdp_rs.errors, BatchReleasedError);
    pyo3::import_exception!(afxdp_rs.errors, BatchInUseError);
}

fn to_py(e: Error) -> PyErr {
    let errno = e.errno();
    let err = to_py_kind(&e);
    if let Some(n) = errno {
        // Keep the kernel's errno on the exception (OSError subclasses read it).
        Python::attach(|py| {
            let _ = err.value(py).setattr("errno", n);
        });
    }
    err
}

fn to_py_kind(e: &Error) -> PyErr {
    let msg = e.message().to_string();
    match e.kind() {
        ErrorKind::InterfaceNotFound => errors::InterfaceNotFoundError::new_err(msg),
        ErrorKind::InvalidQueue => errors::QueueError::new_err(msg),
        ErrorKind::InvalidConfig => errors::ConfigError::new_err(msg),
        ErrorKind::PacketSize => errors::PacketSizeError::new_err(msg),
        ErrorKind::Closed => errors::SocketClosedError::new_err(msg),
        ErrorKind::Permission => errors::PrivilegeError::new_err(msg),
        ErrorKind::Memlock => errors::MemlockError::new_err(msg),
        ErrorKind::ProgramAttached => errors::ProgramAttachedError::new_err(msg),
        ErrorKind::Attach => errors::AttachError::new_err(msg),
        ErrorKind::ProgramDetached => errors::ProgramDetachedError::new_err(msg),
        ErrorKind::Busy => errors::BusyError::new_err(msg),
        ErrorKind::Os => errors::XdpOSError::new_err(msg),
    }
}

fn config_err(msg: String) -> PyErr {
    errors::ConfigError::new_err(msg)
}

/// A duplicate of a descriptor the caller passed (the caller keeps its own).
fn dup_fd(name: &str, fd: i64) -> PyResult<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let raw = i32::try_from(fd)
        .ok()
        .filter(|&f| f >= 0)
        .ok_or_else(|| config_err(format!("{name}={fd} is not a file descriptor")))?;
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) only reads the descriptor number; a bad number
    // fails with EBADF, which we report.
    let dup = unsafe { libc::fcntl(raw, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(config_err(format!(
            "{name}={fd} is not an open file descriptor ({})",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: dup is a fresh descriptor owned by nobody else.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(dup) })
}

/// One time slice of a blocking send: queues what it can of `slices[*sent..]`, for up
/// to `slice`. The socket is locked only while queueing, never while waiting for the
/// kernel to free frames, so another thread can receive meanwhile. Once some packets
/// are queued, an error is kept for the next call instead of losing the count. Returns
/// Some when all are queued.
fn send_slice(
    core: &Core,
    slices: &[&[u8]],
    sent: &mut usize,
    slice: Duration,
) -> Result<Option<()>, Error> {
    let until = Instant::now() + slice;
    let mut idle = 0u32;
    loop {
        let before = *sent;
        let done = core.locked(|s| {
            match s.send(&slices[*sent..], Some(Duration::ZERO)) {
                Ok(n) => *sent += n,
                Err(e) if *sent > 0 => {
                    s.set_pending(e);
                    return Ok(true);
                }
                Err(e) => return Err(e),
            }
            Ok(*sent == slices.len())
        })?;
        if done {
            return Ok(Some(()));
        }
        let now = Instant::now();
        if now >= until {
            return Ok(None);
        }
        idle = if *sent > before { 0 } else { idle + 1 };
        // The kernel has not freed frames yet: let it, without holding the socket.
        if idle < 8 {
            std::thread::yield_now();
        } else {
            std::thread::sleep((until - now).min(Duration::from_micros(50)));
        }
    }
}

fn bench_duration(seconds: f64) -> PyResult<Duration> {
    if !(seconds.is_finite() && seconds > 0.0 && seconds < 86_400.0) {
        return Err(config_err(format!(
            "duration={seconds} is not valid: use a positive number of seconds"
        )));
    }
    Ok(Duration::from_secs_f64(seconds))
}

fn loop_stats(py: Python<'_>, st: crate::bench::LoopStats) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("packets", st.packets)?;
    d.set_item("bytes", st.bytes)?;
    d.set_item("seconds", st.seconds)?;
    d.set_item("cpu_seconds", st.cpu_seconds)?;
    Ok(d)
}

/// Runs one of the Rust packet loops on the socket with the GIL released. The loop
/// ends early on Ctrl-C (Python signals are looked at every [`SIGNAL_SLICE`]; the
/// signal's exception is raised once the loop has cleaned up) or when another thread
/// closes the socket.
fn run_loop<R: Send>(
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
            core.interrupt.store(false, Ordering::Relaxed);
            f(s, &mut stop)
        })
    });
    if let Some(e) = signal {
        return Err(e);
    }
    r.map_err(to_py)
}

/// A non-negative integer argument that fits in u32, or an error naming it.
fn u32_arg(name: &str, value: i64) -> PyResult<u32> {
    u32::try_from(value).map_err(|_| {
        config_err(format!(
            "{name}={value} is out of range: use a non-negative integer below 2**32"
        ))
    })
}

/// A timeout in seconds (None: wait forever), or an error naming it.
fn timeout_arg(timeout: Option<f64>) -> PyResult<Option<Duration>> {
    match timeout {
        None => Ok(None),
        Some(t) if t.is_finite() && t >= 0.0 => Ok(Some(Duration::from_secs_f64(t))),
        Some(t) => Err(config_err(format!(
            "timeout={t} is not valid: use None (wait forever), 0 (do not wait) or a \
             positive number of seconds"
        ))),
    }
}

/// How long one GIL-free wait may last before we look at Python signals (Ctrl-C).
const SIGNAL_SLICE: Duration = Duration::from_millis(100);

/// Runs `step` with the GIL released, in slices of at most [`SIGNAL_SLICE`], checking
/// for signals between slices, until it reports completion or `timeout` runs out.
/// `step` gets the time it may wait and returns `Some(result)` when done.
fn sliced_wait<R, F>(py: Python<'_>, timeout: Option<Duration>, mut step: F) -> PyResult<Option<R>>
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
        if let Some(r) = py.detach(|| step(slice)).map_err(to_py)? {
            return Ok(Some(r));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(None);
        }
        py.check_signals()?;
    }
}

/// A packet given to `send`, kept alive while its bytes are read.
enum Held<'py> {
    Bytes(Bound<'py, PyBytes>),
    Buffer(PyBuffer<u8>),
    Copy(Vec<u8>),
}

impl Held<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Held::Bytes(b) => b.as_bytes(),
            // SAFETY: a read-only, contiguous export of len_bytes() bytes, valid while
            // the PyBuffer (owned by self) lives.
            Held::Buffer(b) => unsafe {
                std::slice::from_raw_parts(b.buf_ptr() as *const u8, b.len_bytes())
            },
            Held::Copy(v) => v,
        }
    }
}

/// State shared by a socket and the rx batches it handed out.
struct Core {
    inner: Mutex<Option<XskSocket>>,
    /// Frames given back by batches while the socket was busy, waiting for its next
    /// call to put them on the fill ring.
    returns: Mutex<Vec<u64>>,
    closed: AtomicBool,
    /// Set when close() begins: a long Rust loop holding the socket ends early.
    closing: AtomicBool,
    /// Set by stop_loop(): the running Rust loop ends early.
    interrupt: AtomicBool,
}

impl Core {
    /// Gives a batch's frames back: straight onto the fill ring when the socket is
    /// free (never waiting for it), else through the return queue.
    fn give_back(&self, descs: &[XdpDesc]) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        if let Ok(mut guard) = self.inner.try_lock() {
            if let Some(sock) = guard.as_mut() {
                sock.recycle(descs.iter().map(|d| d.addr));
            }
            return;
        }
        lock(&self.returns).extend(descs.iter().map(|d| d.addr));
    }

    fn locked<R>(&self, f: impl FnOnce(&mut XskSocket) -> Result<R, Error>) -> Result<R, Error> {
        let mut guard = lock(&self.inner);
        let sock = guard.as_mut().ok_or_else(Error::closed)?;
        let returned = std::mem::take(&mut *lock(&self.returns));
        if !returned.is_empty() {
            sock.recycle(returned);
        }
        f(sock)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An AF_XDP socket on one queue of one interface.
#[pyclass(frozen, module = "afxdp_rs._afxdp", name = "XskSocket")]
pub struct PySocket {
    core: Arc<Core>,
    #[pyo3(get)]
    ifname: String,
    #[pyo3(get)]
    queue: u32,
    #[pyo3(get)]
    zerocopy: bool,
    #[pyo3(get)]
    attach_mode: Option<&'static str>,
    #[pyo3(get)]
    frame_size: u32,
    #[pyo3(get)]
    max_packet: u32,
    /// The UMEM frame indices (start, end) this socket uses.
    #[pyo3(get)]
    frames: (u32, u32),
    fd: i32,
}

impl PySocket {
    /// Runs `f` on the open socket with the GIL released, after putting frames that
    /// batches gave back onto the fill ring.
    fn with_socket<R: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut XskSocket) -> Result<R, Error> + Send,
    ) -> PyResult<R> {
        py.detach(|| self.locked(f)).map_err(to_py)
    }

    fn locked<R>(&self, f: impl FnOnce(&mut XskSocket) -> Result<R, Error>) -> Result<R, Error> {
        self.core.locked(f)
    }

    fn shutdown(&self) -> Option<XskSocket> {
        self.core.closing.store(true, Ordering::Release);
        let sock = lock(&self.core.inner).take();
        self.core.closed.store(true, Ordering::Release);
        lock(&self.core.returns).clear();
        sock
    }
}

impl Drop for PySocket {
    fn drop(&mut self) {
        // Garbage-collected without close(): close it now (batches still hold the
        // core, and with it the socket, otherwise).
        drop(self.shutdown());
    }
}

#[pymethods]
impl PySocket {
    #[new]
    #[pyo3(signature = (
        ifname, queue = 0, *, mode = "auto", bind = "auto", frame_size = 4096,
        frame_count = 4096, headroom = 0, fill_size = 2048, comp_size = 2048,
        rx_size = 2048, tx_size = 2048, need_wakeup = true, load_program = true,
        inhibit = false, sock_fd = None, xsks_map_fd = None, xsks_map_path = None,
        shared_umem = None, frames = None, hold_fds = None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        ifname: &str,
        queue: i64,
        mode: &str,
        bind: &str,
        frame_size: i64,
        frame_count: i64,
        headroom: i64,
        fill_size: i64,
        comp_size: i64,
        rx_size: i64,
        tx_size: i64,
        need_wakeup: bool,
        load_program: bool,
        inhibit: bool,
        sock_fd: Option<i64>,
        xsks_map_fd: Option<i64>,
        xsks_map_path: Option<&str>,
        shared_umem: Option<&Bound<'_, PySocket>>,
        frames: Option<(i64, i64)>,
        hold_fds: Option<Vec<i64>>,
    ) -> PyResult<Self> {
        let queue = u32::try_from(queue).map_err(|_| {
            errors::QueueError::new_err(format!(
                "queue={queue} is not a queue id: use a non-negative integer (0 for the first queue)"
            ))
        })?;
        let config = SocketConfig {
            umem: UmemConfig {
                frame_size: u32::try_from(frame_size)
                    .map_err(|_| to_py(crate::umem::frame_size_error(frame_size)))?,
                frame_count: u32_arg("frame_count", frame_count)?,
                headroom: u32_arg("headroom", headroom)?,
            },
            fill_size: u32_arg("fill_size", fill_size)?,
            comp_size: u32_arg("comp_size", comp_size)?,
            rx_size: u32_arg("rx_size", rx_size)?,
            tx_size: u32_arg("tx_size", tx_size)?,
            bind: BindMode::parse(bind).map_err(to_py)?,
            need_wakeup,
            mode: crate::program::XdpMode::parse(mode).map_err(to_py)?,
            load_program: load_program && !inhibit,
            frames: frames
                .map(|(a, b)| Ok::<_, PyErr>((u32_arg("frames[0]", a)?, u32_arg("frames[1]", b)?)))
                .transpose()?,
            hold: hold_fds
                .unwrap_or_default()
                .into_iter()
                .map(|fd| dup_fd("hold_fds", fd).map(Arc::new))
                .collect::<PyResult<_>>()?,
            ..SocketConfig::default()
        };
        let external = sock_fd.is_some() || xsks_map_fd.is_some() || xsks_map_path.is_some();
        if inhibit && !external {
            return Err(config_err(
                "inhibit=True loads no XDP program, so the socket needs one already attached: \
                 pass sock_fd= (a socket already in that program's XSKMAP) or xsks_map_fd= / \
                 xsks_map_path= (its XSKMAP, where this socket is inserted)"
                    .into(),
            ));
        }
        if external && !inhibit {
            return Err(config_err(
                "sock_fd, xsks_map_fd and xsks_map_path use an XDP program someone else \
                 attached: pass inhibit=True with them"
                    .into(),
            ));
        }
        if xsks_map_fd.is_some() && xsks_map_path.is_some() {
            return Err(config_err(
                "pass xsks_map_fd or xsks_map_path, not both".into(),
            ));
        }
        let mut config = config;
        if let Some(fd) = xsks_map_fd {
            let fd = i32::try_from(fd)
                .map_err(|_| config_err(format!("xsks_map_fd={fd} is not a file descriptor")))?;
            config.xsks_map = Some(Arc::new(crate::program::adopt_xsks_map(fd).map_err(to_py)?));
        }
        if let Some(path) = xsks_map_path {
            config.xsks_map = Some(Arc::new(
                crate::program::open_pinned_map(path).map_err(to_py)?,
            ));
        }
        let fd = sock_fd.map(|fd| dup_fd("sock_fd", fd)).transpose()?;
        let owner = shared_umem.map(|o| o.get());
        let ifname_owned = ifname.to_string();
        let sock = py
            .detach(|| match owner {
                Some(o) => {
                    o.locked(|s| XskSocket::open_with(&ifname_owned, queue, config, fd, Some(s)))
                }
                None => XskSocket::open_with(&ifname_owned, queue, config, fd, None),
            })
            .map_err(to_py)?;
        use std::os::fd::AsRawFd;
        Ok(PySocket {
            ifname: ifname.to_string(),
            queue,
            zerocopy: sock.zerocopy(),
            attach_mode: sock.attach_mode().map(|m| m.as_str()),
            frame_size: sock.config().umem.frame_size,
            frames: sock.frames(),
            max_packet: sock.max_packet(),
            fd: sock.fd().as_raw_fd(),
            core: Arc::new(Core {
                returns: Mutex::new(Vec::new()),
                closed: AtomicBool::new(false),
                closing: AtomicBool::new(false),
                interrupt: AtomicBool::new(false),
                inner: Mutex::new(Some(sock)),
            }),
        })
    }

    /// Receives up to `max` packets as one batch, waiting up to `timeout` seconds
    /// (None: until a packet arrives; 0: not at all). The batch may be empty when the
    /// time ran out. Frames stay owned by the batch until it is released.
    #[pyo3(signature = (max = 64, timeout = None, linger = 0.0))]
    fn recv(
        &self,
        py: Python<'_>,
        max: i64,
        timeout: Option<f64>,
        linger: f64,
    ) -> PyResult<RxBatch> {
        let linger = timeout_arg(Some(linger))
            .map_err(|_| {
                config_err(format!(
                    "linger={linger}: use 0 or a positive number of seconds"
                ))
            })?
            .unwrap_or_default();
        let max = u32_arg("max", max)?;
        if max == 0 {
            return Err(config_err("max=0: ask for at least one packet".into()));
        }
        let timeout = timeout_arg(timeout)?;
        // A batch never holds more than the rx ring can: clamp before allocating.
        let (max, watch, claim) = self.with_socket(py, |s| {
            Ok((
                max.min(s.config().rx_size.max(1)),
                s.watch(),
                s.frame_claim(),
            ))
        })?;
        let mut descs = Vec::with_capacity(max as usize);
        // Take what is there with the socket locked; wait with it unlocked, so other
        // threads can send meanwhile.
        let got = sliced_wait(py, timeout, |slice| {
            if self.locked(|s| s.recv(max, &mut descs))? > 0 {
                return Ok(Some(()));
            }
            watch.wait(libc::POLLIN, Some(slice))?;
            Ok((self.locked(|s| s.recv(max, &mut descs))? > 0).then_some(()))
        })?;
        if got.is_none() {
            descs.clear();
        } else if (descs.len() as u32) < max && !linger.is_zero() {
            // Let more packets gather before handing out the batch: fewer wakeups (and
            // less CPU) per packet, at the cost of up to `linger` of latency.
            py.detach(|| std::thread::sleep(linger));
            let more = max - descs.len() as u32;
            // What recv already took is in `descs` and goes into the batch whatever
            // happens; a failure here shows again on the next call.
            let _ = self.with_socket(py, |s| s.recv(more, &mut descs));
        }
        Ok(RxBatch {
            core: Arc::clone(&self.core),
            claim,
            descs,
            state: Mutex::new(BatchState::default()),
        })
    }

    /// Sends a sequence of bytes-like packets (bytes, bytearray, memoryview, Frame).
    /// Waits up to `timeout` seconds (None: as long as needed) for free frames and tx
    /// ring space; returns how many were queued, which is fewer than `len(packets)`
    /// only when the time ran out. Each packet is checked before any is queued.
    #[pyo3(signature = (packets, timeout = None))]
    fn send(
        &self,
        py: Python<'_>,
        packets: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<usize> {
        let timeout = timeout_arg(timeout)?;
        // bytes objects are immutable and read in place. Other buffers are read in place
        // when read-only, and copied when mutable (bytearray, writable memoryview,
        // Frame): other Python threads may write to them while the GIL is released.
        let mut held: Vec<Held<'_>> = Vec::new();
        // Lists (and tuples) are walked directly; any other iterable through the
        // iterator protocol.
        let items: Vec<Bound<'_, PyAny>> = if let Ok(list) = packets.cast::<PyList>() {
            list.iter().collect()
        } else if let Ok(tuple) = packets.cast::<pyo3::types::PyTuple>() {
            tuple.iter().collect()
        } else {
            packets.try_iter()?.collect::<PyResult<_>>()?
        };
        held.reserve(items.len());
        for (i, obj) in items.into_iter().enumerate() {
            let obj = match obj.cast_into::<PyBytes>() {
                Ok(b) => {
                    held.push(Held::Bytes(b));
                    continue;
                }
                Err(e) => e.into_inner(),
            };
            let buf = PyBuffer::<u8>::get(&obj).map_err(|_| {
                PyTypeError::new_err(format!(
                    "packet {i} is a {}, not a bytes-like object: pass bytes, bytearray or memoryview",
                    obj.get_type().name().map(|n| n.to_string()).unwrap_or_default()
                ))
            })?;
            if !buf.is_c_contiguous() {
                return Err(PyTypeError::new_err(format!(
                    "packet {i} is not a contiguous buffer: pass bytes(...) of it"
                )));
            }
            if buf.readonly() {
                held.push(Held::Buffer(buf));
            } else {
                held.push(Held::Copy(buf.to_vec(py)?));
            }
        }
        let slices: Vec<&[u8]> = held.iter().map(Held::bytes).collect();
        let mut sent = 0usize;
        // XskSocket::send checks every packet before queueing any.
        sliced_wait(py, timeout, |slice| {
            send_slice(&self.core, &slices, &mut sent, slice)
        })?;
        Ok(sent)
    }

    /// Waits up to `timeout` seconds (None: as long as needed) until every queued
    /// packet has left (is on the completion ring). Returns whether all did.
    #[pyo3(signature = (timeout = None))]
    fn flush(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let timeout = timeout_arg(timeout)?;
        let done = sliced_wait(py, timeout, |slice| {
            self.locked(|s| Ok(s.flush(Some(slice))?.then_some(())))
        })?;
        Ok(done.is_some())
    }

    /// Hands up to `max` received packets, one at a time, to `consumer(frame)`, which
    /// returns True when it took the packet, False when it cannot take it now. At the
    /// first False the rest are cancelled: they stay in the rx ring, in order, for the
    /// next recv()/deliver() (nothing is lost; the kernel counts what does not fit
    /// while the ring is full). Frames are valid only during the call: copy what you
    /// keep. Returns (packets taken, whether the consumer stopped). Never waits.
    #[pyo3(signature = (consumer, max = 64))]
    fn deliver(
        &self,
        py: Python<'_>,
        consumer: &Bound<'_, PyAny>,
        max: i64,
    ) -> PyResult<(usize, bool)> {
        let max = u32_arg("max", max)?;
        let (descs, claim) = self.with_socket(py, |s| {
            let mut v = Vec::new();
            s.rx_peek(max.min(s.config().rx_size.max(1)), &mut v)?;
            Ok((v, s.frame_claim()))
        })?;
        if descs.is_empty() {
            return Ok((0, false));
        }
        let n = descs.len();
        let batch = Bound::new(
            py,
            RxBatch {
                core: Arc::clone(&self.core),
                claim,
                descs,
                state: Mutex::new(BatchState::default()),
            },
        )?;
        let mut taken = 0;
        let mut failure = None;
        for index in 0..n {
            let frame = Frame {
                batch: batch.clone().unbind(),
                index,
            };
            match consumer.call1((frame,)).and_then(|r| r.is_truthy()) {
                Ok(true) => taken += 1,
                Ok(false) => break,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let mut consumed = Vec::new();
        self.with_socket(py, |s| s.rx_consume(taken as u32, &mut consumed))?;
        let this = batch.get();
        {
            let mut st = lock(&this.state);
            st.owned = Some(taken);
        }
        if let Some(e) = failure {
            this.release()?;
            return Err(e);
        }
        this.release()?;
        Ok((taken, taken < n))
    }

    /// Sends up to `max` received packets back out of this socket, without copying,
    /// with the Ethernet source and destination swapped (`swap_macs`): an L2 "reflector"
    /// done in one call per batch. Never waits; returns how many were forwarded.
    #[pyo3(signature = (max = 64, swap_macs = true))]
    fn l2fwd(&self, py: Python<'_>, max: i64, swap_macs: bool) -> PyResult<u32> {
        let max = u32_arg("max", max)?;
        self.with_socket(py, |s| s.forward_back(max, swap_macs))
    }

    /// Sends packets laid end to end in one buffer: packet i is the next
    /// `lengths[i]` bytes of `data` (`lengths`: a buffer of uint32, e.g. a numpy array).
    /// One call, no Python object per packet. Waits as `send` does; returns how many
    /// were queued.
    #[pyo3(signature = (data, lengths, timeout = None))]
    fn send_packed(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        lengths: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<usize> {
        let timeout = timeout_arg(timeout)?;
        let data = PyBuffer::<u8>::get(data)?;
        let lengths = PyBuffer::<u32>::get(lengths).map_err(|_| {
            PyTypeError::new_err("lengths must be a buffer of uint32 (array('I') or numpy uint32)")
        })?;
        if !data.is_c_contiguous() || !lengths.is_c_contiguous() {
            return Err(PyTypeError::new_err(
                "data and lengths must be contiguous buffers",
            ));
        }
        let owned = (!data.readonly()).then(|| data.to_vec(py)).transpose()?;
        let lens = lengths.to_vec(py)?;
        // SAFETY: a read-only, contiguous export valid while `data` lives.
        let bytes: &[u8] = match &owned {
            Some(v) => v,
            None => unsafe {
                std::slice::from_raw_parts(data.buf_ptr() as *const u8, data.len_bytes())
            },
        };
        let total: u64 = lens.iter().map(|&l| l as u64).sum();
        if total > bytes.len() as u64 {
            return Err(config_err(format!(
                "lengths add up to {total} bytes but data has {}: they must describe it",
                bytes.len()
            )));
        }
        let mut slices = Vec::with_capacity(lens.len());
        let mut off = 0usize;
        for &l in &lens {
            slices.push(&bytes[off..off + l as usize]);
            off += l as usize;
        }
        self.with_socket(py, |s| {
            for (i, p) in slices.iter().enumerate() {
                s.check_packet(i, p.len())?;
            }
            Ok(())
        })?;
        let mut sent = 0usize;
        sliced_wait(py, timeout, |slice| {
            send_slice(&self.core, &slices, &mut sent, slice)
        })?;
        Ok(sent)
    }

    /// Benchmark loop run entirely in Rust (the GIL is released): receive and drop for
    /// `duration` seconds. Returns packets, bytes, seconds and cpu_seconds.
    #[pyo3(signature = (duration, batch = 64, poll = false, linger = 0.0))]
    fn rust_rxdrop<'py>(
        &self,
        py: Python<'py>,
        duration: f64,
        batch: i64,
        poll: bool,
        linger: f64,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (d, b) = (bench_duration(duration)?, u32_arg("batch", batch)?);
        let l = timeout_arg(Some(linger))?.unwrap_or_default();
        let st = run_loop(py, &self.core, |s, stop| {
            crate::bench::rxdrop(s, b, d, poll, l, stop)
        })?;
        loop_stats(py, st)
    }

    /// Benchmark loop run entirely in Rust: send `packet` in batches for `duration`.
    #[pyo3(signature = (packet, duration, batch = 64))]
    fn rust_txonly<'py>(
        &self,
        py: Python<'py>,
        packet: Vec<u8>,
        duration: f64,
        batch: i64,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (d, b) = (bench_duration(duration)?, u32_arg("batch", batch)?);
        let st = run_loop(py, &self.core, |s, stop| {
            crate::bench::txonly(s, &packet, b, d, stop)
        })?;
        loop_stats(py, st)
    }

    /// Benchmark loop run entirely in Rust: forward every packet back out with its MAC
    /// addresses swapped, for `duration`.
    #[pyo3(signature = (duration, batch = 64, poll = false, linger = 0.0))]
    fn rust_l2fwd<'py>(
        &self,
        py: Python<'py>,
        duration: f64,
        batch: i64,
        poll: bool,
        linger: f64,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (d, b) = (bench_duration(duration)?, u32_arg("batch", batch)?);
        let l = timeout_arg(Some(linger))?.unwrap_or_default();
        let st = run_loop(py, &self.core, |s, stop| {
            crate::bench::l2fwd(s, b, d, poll, l, stop)
        })?;
        loop_stats(py, st)
    }

    /// Sends `count` numbered packets and checks every packet that comes back to this
    /// socket (through a forwarder on the other side of the link, or a loop): each
    /// byte, and that sequence numbers only go up. `template`'s first 42 bytes
    /// (Ethernet, IPv4, UDP headers) start every packet; an 8-byte sequence number and
    /// a pattern follow, up to `len(template)`. `window`: at most this many packets in
    /// flight (0: send as fast as possible). `swapped`: expect the MAC addresses
    /// exchanged (an L2 forwarder's answer). Ends when everything is back, or when
    /// nothing arrived for `quiet` seconds while all were sent or the window was full
    /// (then `sent` < `count`: the far side stopped answering). Runs in Rust with the
    /// GIL released; Ctrl-C stops it. Returns a dict: sent, received, missing,
    /// out_of_order, corrupted, max_in_flight, seconds.
    #[pyo3(signature = (template, count, batch = 64, window = 0, swapped = true, quiet = 1.0))]
    #[allow(clippy::too_many_arguments)]
    fn sequence_check<'py>(
        &self,
        py: Python<'py>,
        template: Vec<u8>,
        count: i64,
        batch: i64,
        window: i64,
        swapped: bool,
        quiet: f64,
    ) -> PyResult<Bound<'py, PyDict>> {
        let count = u64::try_from(count)
            .map_err(|_| config_err(format!("count={count} is not valid: use 0 or more")))?;
        let window = u64::try_from(window).map_err(|_| {
            config_err(format!(
                "window={window} is not valid: use 0 (no limit) or a positive number"
            ))
        })?;
        let batch = match u32_arg("batch", batch)? {
            b @ 1..=4096 => b,
            b => {
                return Err(config_err(format!(
                    "batch={b} is not valid: use 1 to 4096 packets per batch"
                )))
            }
        };
        let quiet = timeout_arg(Some(quiet))?.unwrap_or_default();
        let run = crate::bench::SequenceRun {
            template,
            count,
            batch,
            window,
            swapped,
            quiet,
        };
        let st = run_loop(py, &self.core, |s, stop| {
            crate::bench::sequence_check(s, &run, stop)
        })?;
        let d = PyDict::new(py);
        d.set_item("sent", st.sent)?;
        d.set_item("received", st.received)?;
        d.set_item("missing", st.missing)?;
        d.set_item("out_of_order", st.out_of_order)?;
        d.set_item("corrupted", st.corrupted)?;
        d.set_item("max_in_flight", st.max_in_flight)?;
        d.set_item("seconds", st.seconds)?;
        Ok(d)
    }

    /// Ends the Rust loop (`rust_*`, `sequence_check`) another thread is running on
    /// this socket, as soon as it finishes its current batch; that call returns what
    /// it did so far. The socket stays open.
    fn stop_loop(&self) {
        self.core.interrupt.store(true, Ordering::Relaxed);
    }

    /// Whether the kernel asked for a system call to go on sending (with frames
    /// outstanding, a writer should poll the socket for POLLOUT).
    #[getter]
    fn tx_needs_wakeup(&self, py: Python<'_>) -> PyResult<bool> {
        self.with_socket(py, |s| Ok(s.tx_needs_wakeup()))
    }

    /// Packets queued for sending that the kernel has not completed yet.
    #[getter]
    fn tx_outstanding(&self, py: Python<'_>) -> PyResult<u32> {
        self.with_socket(py, |s| {
            s.complete();
            Ok(s.tx_outstanding())
        })
    }

    /// Waits up to `timeout` seconds for a packet to receive; returns whether one is
    /// there. Packets stay in the ring for the next recv().
    #[pyo3(signature = (timeout = None))]
    fn wait_readable(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let timeout = timeout_arg(timeout)?;
        let watch = self.with_socket(py, |s| {
            s.refill();
            Ok(s.watch())
        })?;
        let ready = sliced_wait(py, timeout, |slice| {
            Ok(watch.wait(libc::POLLIN, Some(slice))?.then_some(()))
        })?;
        Ok(ready.is_some())
    }

    /// The kernel's XDP_STATISTICS counters and the library's own, as a dict.
    fn statistics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (k, c, frames) = self.with_socket(py, |s| {
            let (lo, hi) = s.frames();
            let frames = [
                ("free_frames", s.free_frames() as u64),
                ("tx_outstanding", s.tx_outstanding() as u64),
                ("rx_held", s.rx_held() as u64),
                ("rx_in_kernel", s.rx_in_kernel() as u64),
                ("frame_count", (hi - lo) as u64),
            ];
            Ok((s.statistics()?, s.counters(), frames))
        })?;
        let d = PyDict::new(py);
        d.set_item("rx_dropped", k.rx_dropped)?;
        d.set_item("rx_invalid_descs", k.rx_invalid_descs)?;
        d.set_item("tx_invalid_descs", k.tx_invalid_descs)?;
        d.set_item("rx_ring_full", k.rx_ring_full)?;
        d.set_item("rx_fill_ring_empty_descs", k.rx_fill_ring_empty_descs)?;
        d.set_item("tx_ring_empty_descs", k.tx_ring_empty_descs)?;
        d.set_item("rx_packets", c.rx_packets)?;
        d.set_item("rx_bytes", c.rx_bytes)?;
        d.set_item("tx_packets", c.tx_packets)?;
        d.set_item("tx_bytes", c.tx_bytes)?;
        d.set_item("tx_completed", c.tx_completed)?;
        d.set_item("tx_wakeups", c.tx_wakeups)?;
        d.set_item("rx_wakeups", c.rx_wakeups)?;
        d.set_item("invalid_completions", c.invalid_completions)?;
        d.set_item("invalid_rx_descs", c.invalid_rx_descs)?;
        d.set_item("invalid_returns", c.invalid_returns)?;
        // Where the socket's frames are: these four always add up to frame_count.
        for (name, value) in frames {
            d.set_item(name, value)?;
        }
        Ok(d)
    }

    /// For tests of the kernel's counters only: puts `addr` on the fill ring without
    /// any check, taking it out of the socket's pool if it is there.
    fn _post_fill_unchecked(&self, py: Python<'_>, addr: u64) -> PyResult<()> {
        self.with_socket(py, |s| s.post_fill_unchecked(addr))
    }

    /// For tests of the kernel's counters only: puts a tx descriptor on the ring
    /// without any check and kicks the kernel.
    fn _post_tx_unchecked(&self, py: Python<'_>, addr: u64, len: u32) -> PyResult<()> {
        self.with_socket(py, |s| s.post_tx_unchecked(addr, len))
    }

    /// The socket's file descriptor (for select/poll/selectors and asyncio).
    fn fileno(&self) -> PyResult<i32> {
        if self.core.closed.load(Ordering::Acquire) {
            return Err(to_py(Error::closed()));
        }
        Ok(self.fd)
    }

    #[getter]
    fn closed(&self) -> bool {
        self.core.closed.load(Ordering::Acquire)
    }

    /// Closes the socket: unregisters it from the XDP program (detaching the program
    /// if this was the last socket of the interface) and frees the rings. Batches
    /// still held stay readable until released. Closing twice is allowed.
    fn close(&self, py: Python<'_>) {
        py.detach(|| drop(self.shutdown()));
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.close(py);
        false
    }

    fn __repr__(&self) -> String {
        let state = if self.closed() { "closed" } else { "open" };
        format!(
            "<XskSocket {} queue {} {} mode={} zerocopy={}>",
            self.ifname,
            self.queue,
            state,
            self.attach_mode.unwrap_or("none"),
            self.zerocopy
        )
    }
}

#[derive(Default)]
struct BatchState {
    released: bool,
    /// Live buffer exports (memoryviews) of this batch's frames.
    exports: usize,
    /// How many of the batch's frames it owns (the first ones); `None`: all. A
    /// delivered batch owns only the packets the consumer took.
    owned: Option<usize>,
}

/// Packets received by one `recv()` call. Index it (or iterate) for `Frame` objects;
/// release it (or leave its `with` block) to give the frames back to the kernel.
#[pyclass(frozen, sequence, module = "afxdp_rs._afxdp")]
pub struct RxBatch {
    core: Arc<Core>,
    /// Keeps the UMEM mapped, and the frames this socket's own, while the batch lives.
    claim: Arc<FrameClaim>,
    descs: Vec<XdpDesc>,
    state: Mutex<BatchState>,
}

impl RxBatch {
    fn check_live(&self) -> PyResult<MutexGuard<'_, BatchState>> {
        let st = lock(&self.state);
        if st.released {
            return Err(errors::BatchReleasedError::new_err(
                "this batch was released: its frames went back to the kernel and may hold \
                 other packets now; copy data (bytes(frame)) before releasing",
            ));
        }
        Ok(st)
    }

    fn index(&self, i: isize) -> PyResult<usize> {
        let n = self.descs.len() as isize;
        let j = if i < 0 { i + n } else { i };
        if j < 0 || j >= n {
            return Err(pyo3::exceptions::PyIndexError::new_err(format!(
                "frame index {i} out of range for a batch of {n}"
            )));
        }
        Ok(j as usize)
    }

    /// The bytes of frame `i`, valid while `_st` (the state lock) shows it live.
    fn data(&self, _st: &MutexGuard<'_, BatchState>, i: usize) -> &[u8] {
        let d = self.descs[i];
        // SAFETY: the descriptor is inside one of this socket's frames (checked by recv),
        // the frame is this batch's until release (checked by the caller under the state
        // lock), and `claim` keeps the UMEM mapped and the frame range ours.
        unsafe { self.claim.umem().slice(d.addr, d.len) }
    }
}

#[pymethods]
impl RxBatch {
    fn __len__(&self) -> usize {
        self.descs.len()
    }

    fn __getitem__(slf: &Bound<'_, Self>, i: isize) -> PyResult<Frame> {
        let this = slf.get();
        let index = this.index(i)?;
        drop(this.check_live()?);
        Ok(Frame {
            batch: slf.clone().unbind(),
            index,
        })
    }

    fn __iter__(slf: &Bound<'_, Self>) -> BatchIter {
        BatchIter {
            batch: slf.clone().unbind(),
            next: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The length of each packet.
    fn lengths(&self) -> Vec<u32> {
        self.descs.iter().map(|d| d.len).collect()
    }

    /// Copies the packets end to end into the writable buffer `data` and their lengths
    /// into `lengths` (a writable uint32 buffer with room for len(batch) entries), e.g.
    /// numpy arrays. Returns the bytes written.
    fn copy_into(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        lengths: &Bound<'_, PyAny>,
    ) -> PyResult<usize> {
        // Get the buffers before locking the batch: `data` may be one of its frames.
        let out = PyBuffer::<u8>::get(data)?;
        let lens = PyBuffer::<u32>::get(lengths).map_err(|_| {
            PyTypeError::new_err("lengths must be a buffer of uint32 (array('I') or numpy uint32)")
        })?;
        let st = self.check_live()?;
        if out.readonly() || lens.readonly() || !out.is_c_contiguous() || !lens.is_c_contiguous() {
            return Err(PyTypeError::new_err(
                "data and lengths must be writable, contiguous buffers",
            ));
        }
        let total: usize = self.descs.iter().map(|d| d.len as usize).sum();
        if out.len_bytes() < total || lens.item_count() < self.descs.len() {
            return Err(config_err(format!(
                "copy_into needs {total} bytes of data and {} lengths; got {} and {}",
                self.descs.len(),
                out.len_bytes(),
                lens.item_count()
            )));
        }
        // SAFETY: both are writable, contiguous exports checked above, large enough,
        // and alive for this call; we hold the GIL, so no Python code runs meanwhile.
        let (dst, lst) = unsafe {
            (
                std::slice::from_raw_parts_mut(out.buf_ptr() as *mut u8, out.len_bytes()),
                std::slice::from_raw_parts_mut(lens.buf_ptr() as *mut u32, lens.item_count()),
            )
        };
        let _ = py;
        let mut off = 0;
        for (i, d) in self.descs.iter().enumerate() {
            let src = self.data(&st, i);
            dst[off..off + src.len()].copy_from_slice(src);
            lst[i] = d.len;
            off += src.len();
        }
        Ok(off)
    }

    /// Copies every packet out as a list of bytes.
    fn to_list<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let st = self.check_live()?;
        let items: Vec<Bound<'py, PyBytes>> = (0..self.descs.len())
            .map(|i| PyBytes::new(py, self.data(&st, i)))
            .collect();
        PyList::new(py, items)
    }

    #[getter]
    fn released(&self) -> bool {
        lock(&self.state).released
    }

    /// Gives the frames back to the kernel (fill ring). Raises BatchInUseError while
    /// a memoryview of one of its frames is alive. Releasing twice is allowed.
    fn release(&self) -> PyResult<()> {
        let mut st = lock(&self.state);
        if st.released {
            return Ok(());
        }
        if st.exports > 0 {
            return Err(errors::BatchInUseError::new_err(format!(
                "{} memoryview(s) of this batch's frames are still alive: release them \
                 (memoryview.release() or del) before releasing the batch, so that no view \
                 reads a frame the kernel reuses",
                st.exports
            )));
        }
        st.released = true;
        let owned = st.owned.unwrap_or(self.descs.len());
        self.core.give_back(&self.descs[..owned]);
        Ok(())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.release()?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let st = lock(&self.state);
        format!(
            "<RxBatch {} packets{}>",
            self.descs.len(),
            if st.released { " released" } else { "" }
        )
    }
}

impl Drop for RxBatch {
    fn drop(&mut self) {
        // Dropped without release(): the frames still go back.
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        if !st.released {
            st.released = true;
            let owned = st.owned.unwrap_or(self.descs.len());
            self.core.give_back(&self.descs[..owned]);
        }
    }
}

/// Iterator over the frames of a batch.
#[pyclass(frozen, module = "afxdp_rs._afxdp")]
pub struct BatchIter {
    batch: Py<RxBatch>,
    next: std::sync::atomic::AtomicUsize,
}

#[pymethods]
impl BatchIter {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Frame>> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        let batch = self.batch.get();
        if i >= batch.descs.len() {
            return Ok(None);
        }
        drop(batch.check_live()?);
        Ok(Some(Frame {
            batch: self.batch.clone_ref(py),
            index: i,
        }))
    }
}

/// One received packet: a zero-copy, writable buffer over its UMEM frame. Use
/// `memoryview(frame)`, `bytes(frame)` or anything that takes a buffer. Any use after
/// its batch was released raises BatchReleasedError.
#[pyclass(frozen, module = "afxdp_rs._afxdp")]
pub struct Frame {
    batch: Py<RxBatch>,
    index: usize,
}

#[pymethods]
impl Frame {
    fn __len__(&self) -> PyResult<usize> {
        let batch = self.batch.get();
        drop(batch.check_live()?);
        Ok(batch.descs[self.index].len as usize)
    }

    fn __bytes__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let batch = self.batch.get();
        let st = batch.check_live()?;
        Ok(PyBytes::new(py, batch.data(&st, self.index)))
    }

    /// Offset of the packet in the UMEM.
    #[getter]
    fn addr(&self) -> u64 {
        self.batch.get().descs[self.index].addr
    }

    /// The buffer protocol (memoryview(frame)).
    ///
    /// # Safety
    /// Called by CPython with `view` pointing at a Py_buffer it owns, to be filled.
    // SAFETY: see above; the unsafe operations inside are justified where they happen.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let (ptr, len) = {
            let this = slf.get();
            let batch = this.batch.get();
            let mut st = batch.check_live()?;
            let data = batch.data(&st, this.index);
            let span = (data.as_ptr(), data.len());
            st.exports += 1;
            span
        };
        // SAFETY: view is the Py_buffer CPython gave us to fill; buf points into a frame
        // this batch owns, which release() keeps while `exports` > 0, and the view holds
        // a reference to this Frame (so to the batch, its claim and the UMEM).
        unsafe {
            (*view).obj = slf.into_any().into_ptr();
            (*view).buf = ptr as *mut std::ffi::c_void;
            (*view).len = len as ffi::Py_ssize_t;
            (*view).readonly = 0;
            (*view).itemsize = 1;
            (*view).format = if flags & ffi::PyBUF_FORMAT != 0 {
                c"B".as_ptr().cast_mut()
            } else {
                std::ptr::null_mut()
            };
            (*view).ndim = 1;
            (*view).shape = if flags & ffi::PyBUF_ND != 0 {
                &mut (*view).len
            } else {
                std::ptr::null_mut()
            };
            (*view).strides = if flags & ffi::PyBUF_STRIDES == ffi::PyBUF_STRIDES {
                &mut (*view).itemsize
            } else {
                std::ptr::null_mut()
            };
            (*view).suboffsets = std::ptr::null_mut();
            (*view).internal = std::ptr::null_mut();
        }
        Ok(())
    }

    /// # Safety
    /// Called by CPython once per successful `__getbuffer__`; `_view` is not touched.
    // SAFETY: see above; only this batch's export count changes.
    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        let mut st = lock(&self.batch.get().state);
        st.exports = st.exports.saturating_sub(1);
    }

    fn __repr__(&self) -> String {
        let batch = self.batch.get();
        let st = lock(&batch.state);
        let d = batch.descs[self.index];
        if st.released {
            format!("<Frame addr={} len={} released>", d.addr, d.len)
        } else {
            format!("<Frame addr={} len={}>", d.addr, d.len)
        }
    }
}

/// The default XDP program attached to an interface on its own, for a privileged
/// process that hands sockets (or the XSKMAP) to an unprivileged one. It stays attached
/// while this object, or a duplicate of `link_fd`, is alive.
#[pyclass(frozen, module = "afxdp_rs._afxdp", name = "XdpProgram")]
pub struct PyXdpProgram {
    prog: Mutex<Option<crate::program::XdpProgram>>,
    #[pyo3(get)]
    ifname: String,
    #[pyo3(get)]
    mode: &'static str,
    #[pyo3(get)]
    prog_id: u32,
}

impl PyXdpProgram {
    fn with<R>(
        &self,
        f: impl FnOnce(&crate::program::XdpProgram) -> Result<R, Error>,
    ) -> PyResult<R> {
        let guard = lock(&self.prog);
        let prog = guard.as_ref().ok_or_else(|| {
            errors::SocketClosedError::new_err("this XdpProgram was closed (detached)")
        })?;
        f(prog).map_err(to_py)
    }
}

#[pymethods]
impl PyXdpProgram {
    #[new]
    #[pyo3(signature = (ifname, mode = "auto"))]
    fn new(py: Python<'_>, ifname: &str, mode: &str) -> PyResult<Self> {
        let mode = crate::program::XdpMode::parse(mode).map_err(to_py)?;
        let name = ifname.to_string();
        let prog = py
            .detach(|| crate::program::XdpProgram::attach_standalone(&name, mode))
            .map_err(to_py)?;
        Ok(PyXdpProgram {
            ifname: name,
            mode: prog.mode().as_str(),
            prog_id: prog.prog_id(),
            prog: Mutex::new(Some(prog)),
        })
    }

    /// The XSKMAP's descriptor (owned by this object: duplicate it to keep it).
    #[getter]
    fn xsks_map_fd(&self) -> PyResult<i32> {
        self.with(|p| Ok(p.xsks_map_fd()))
    }

    /// The BPF link's descriptor: the program is attached while it is open anywhere.
    #[getter]
    fn link_fd(&self) -> PyResult<i32> {
        self.with(|p| Ok(p.link_fd()))
    }

    /// Routes packets of rx queue `queue` to the AF_XDP socket `sock_fd`.
    fn register(&self, queue: i64, sock_fd: i64) -> PyResult<()> {
        let queue = u32_arg("queue", queue)?;
        let fd = i32::try_from(sock_fd)
            .map_err(|_| config_err(format!("sock_fd={sock_fd} is not a file descriptor")))?;
        self.with(|p| p.register(queue, fd))
    }

    /// Stops routing packets of `queue` to a socket.
    fn unregister(&self, queue: i64) -> PyResult<()> {
        let queue = u32_arg("queue", queue)?;
        self.with(|p| {
            p.unregister(queue);
            Ok(())
        })
    }

    /// Pins the XSKMAP at `path` (on a bpf filesystem) for other processes.
    fn pin_map(&self, path: &str) -> PyResult<()> {
        self.with(|p| p.pin_map(path))
    }

    #[getter]
    fn closed(&self) -> bool {
        lock(&self.prog).is_none()
    }

    /// Releases this process's hold on the program: it is detached unless another
    /// process still holds a duplicate of its link.
    fn close(&self) {
        drop(lock(&self.prog).take());
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.close();
        false
    }

    fn __repr__(&self) -> String {
        format!(
            "<XdpProgram {} {} id={}>",
            self.ifname, self.mode, self.prog_id
        )
    }
}

/// What the kernel says about an interface: index, driver, MTU, queues, the XDP
/// program attached (if any) and what the driver supports.
#[pyfunction]
fn interface_info<'py>(py: Python<'py>, ifname: &str) -> PyResult<Bound<'py, PyDict>> {
    use crate::program;
    let ifindex = crate::sys::if_index(ifname).map_err(to_py)?;
    let state = program::query(ifindex).map_err(to_py)?;
    let d = PyDict::new(py);
    d.set_item("ifname", ifname)?;
    d.set_item("ifindex", ifindex)?;
    d.set_item("driver", crate::sys::if_driver(ifname))?;
    d.set_item("mtu", crate::sys::if_mtu(ifname).ok())?;
    let (rxq, txq) = crate::sys::if_queue_count(ifname).unzip();
    d.set_item("rx_queues", rxq)?;
    d.set_item("tx_queues", txq)?;
    d.set_item("xdp_mode", state.mode)?;
    d.set_item("xdp_prog_id", state.prog_id)?;
    // Unknown (None) when the kernel does not report the driver's XDP features.
    let known = state.features != 0;
    let native = program::XDP_ACT_BASIC | program::XDP_ACT_REDIRECT;
    d.set_item(
        "native_xdp",
        known.then_some(state.features & native == native),
    )?;
    let zc = program::XDP_ACT_XSK_ZEROCOPY;
    d.set_item("zerocopy", known.then_some(state.features & zc != 0))?;
    d.set_item("xdp_features", state.features)?;
    Ok(d)
}

#[pymodule]
fn _afxdp(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PySocket>()?;
    m.add_class::<RxBatch>()?;
    m.add_class::<Frame>()?;
    m.add_class::<BatchIter>()?;
    m.add_class::<PyXdpProgram>()?;
    m.add_function(wrap_pyfunction!(interface_info, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("FRAME_SIZES", crate::umem::FRAME_SIZES.to_vec())?;
    Ok(())
}
