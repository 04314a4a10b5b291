//! `XskSocket` in Python: arguments in, one call into the core per batch with the GIL
//! released, results out. No packet logic lives here.

use std::os::fd::AsRawFd;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use super::args::{timeout_arg, u32_arg};
use super::batch::{Frame, RxBatch};
use super::config::{match_arg, Opened, SocketArgs};
use super::core::{lock, sliced_wait, Core};
use super::errors::{config_err, warn_all, QueueError};
use crate::error::Error;
use crate::socket::config::defaults;
use crate::socket::{OnLinkDown, Wait, XskSocket};

/// An AF_XDP socket on one queue of one interface.
#[pyclass(frozen, module = "afxdp_rs._afxdp", name = "XskSocket")]
pub struct PySocket {
    pub(super) core: Arc<Core>,
    #[pyo3(get)]
    ifname: String,
    #[pyo3(get)]
    queue: u32,
    #[pyo3(get)]
    zerocopy: bool,
    /// Whether packets may span several frames (multi-buffer: jumbo frames).
    #[pyo3(get)]
    multi_buffer: bool,
    #[pyo3(get)]
    attach_mode: Option<&'static str>,
    #[pyo3(get)]
    frame_size: u32,
    #[pyo3(get)]
    max_packet: u32,
    /// The UMEM frame indices (start, end) this socket uses.
    #[pyo3(get)]
    frames: (u32, u32),
    /// What on the interface makes packets arrive unfinished or too large, each with
    /// the command that fixes it (also emitted as AfXdpWarning when the socket opened).
    #[pyo3(get)]
    warnings: Vec<String>,
    /// What fix_offloads=True turned off, one line each.
    #[pyo3(get)]
    offload_changes: Vec<String>,
    /// Whether the socket asked the kernel for preferred busy polling (see napi_id
    /// for whether the kernel can do it here).
    #[pyo3(get)]
    busy_poll: bool,
    raise_link_down: bool,
    fd: i32,
}

impl PySocket {
    /// Runs `f` on the open socket with the GIL released.
    pub(super) fn with_socket<R: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut XskSocket) -> Result<R, Error> + Send,
    ) -> PyResult<R> {
        Ok(py.detach(|| self.core.locked(f))?)
    }
}

impl Drop for PySocket {
    fn drop(&mut self) {
        // Garbage-collected without close(): close it now (batches still hold the
        // core, and with it the socket, otherwise).
        drop(self.core.shutdown());
    }
}

#[pymethods]
impl PySocket {
    #[new]
    #[pyo3(signature = (
        ifname, queue = 0, *, mode = "auto", bind = "auto",
        frame_size = defaults::FRAME_SIZE as i64, frame_count = defaults::FRAME_COUNT as i64,
        headroom = defaults::HEADROOM as i64, fill_size = defaults::RING_SIZE as i64,
        comp_size = defaults::RING_SIZE as i64, rx_size = defaults::RING_SIZE as i64,
        tx_size = defaults::RING_SIZE as i64, need_wakeup = defaults::NEED_WAKEUP,
        load_program = true, inhibit = false, sock_fd = None, xsks_map_fd = None,
        xsks_map_path = None, shared_umem = None, frames = None, hold_fds = None,
        complete_checksums = false, fix_offloads = false, multi_buffer = None,
        r#match = None, timestamps = false, busy_poll = false,
        busy_poll_usecs = defaults::BUSY_POLL_USECS as i64,
        busy_poll_budget = defaults::BUSY_POLL_BUDGET as i64, link_down = "wait"
    ))]
    // pyo3 writes the default of a raw identifier (and of a constant) as `...`: spell
    // the signature out (tests/test_stubs.py checks it against socket_defaults()).
    #[pyo3(
        text_signature = r#"(ifname, queue=0, *, mode="auto", bind="auto", frame_size=4096, frame_count=4096, headroom=0, fill_size=2048, comp_size=2048, rx_size=2048, tx_size=2048, need_wakeup=True, load_program=True, inhibit=False, sock_fd=None, xsks_map_fd=None, xsks_map_path=None, shared_umem=None, frames=None, hold_fds=None, complete_checksums=False, fix_offloads=False, multi_buffer=None, match=None, timestamps=False, busy_poll=False, busy_poll_usecs=20, busy_poll_budget=64, link_down="wait")"#
    )]
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
        complete_checksums: bool,
        fix_offloads: bool,
        multi_buffer: Option<&Bound<'_, PyAny>>,
        r#match: Option<&str>,
        timestamps: bool,
        busy_poll: bool,
        busy_poll_usecs: i64,
        busy_poll_budget: i64,
        link_down: &str,
    ) -> PyResult<Self> {
        let raise_link_down = match link_down {
            "wait" => false,
            "raise" => true,
            other => {
                return Err(config_err(format!(
                    "link_down={other:?}: use \"wait\" (a receive on a down link returns no \
                     packets) or \"raise\" (it raises LinkDownError)"
                )))
            }
        };
        let queue = u32::try_from(queue).map_err(|_| {
            QueueError::new_err(format!(
                "queue={queue} is not a queue id: use a non-negative integer (0 for the first queue)"
            ))
        })?;
        let Opened {
            config,
            sock_fd: fd,
        } = SocketArgs {
            mode,
            bind,
            frame_size,
            frame_count,
            headroom,
            fill_size,
            comp_size,
            rx_size,
            tx_size,
            need_wakeup,
            load_program,
            inhibit,
            sock_fd,
            xsks_map_fd,
            xsks_map_path,
            frames,
            hold_fds,
            complete_checksums,
            fix_offloads,
            multi_buffer,
            filter: r#match,
            timestamps,
            busy_poll,
            busy_poll_usecs,
            busy_poll_budget,
        }
        .convert()?;
        let owner = shared_umem.map(|o| o.get());
        let sock = py.detach(|| match owner {
            Some(o) => o
                .core
                .locked(|s| XskSocket::open_with(ifname, queue, config, fd, Some(s))),
            None => XskSocket::open_with(ifname, queue, config, fd, None),
        })?;
        warn_all(py, sock.warnings())?;
        Ok(PySocket {
            warnings: sock.warnings().iter().map(|a| a.message.clone()).collect(),
            offload_changes: sock.offload_changes().to_vec(),
            ifname: ifname.to_string(),
            queue,
            zerocopy: sock.zerocopy(),
            multi_buffer: sock.multi_buffer(),
            attach_mode: sock.attach_mode().map(|m| m.as_str()),
            frame_size: sock.config().umem.frame_size,
            frames: sock.frames(),
            max_packet: sock.max_packet(),
            fd: sock.fd().as_raw_fd(),
            busy_poll,
            raise_link_down,
            core: Arc::new(Core::new(sock)),
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
            return Err(config_err("max=0: ask for at least one packet"));
        }
        let timeout = timeout_arg(timeout)?;
        // Fast path: the socket is free (no other thread in a call): take what is
        // there without releasing the GIL, into reused RxFrames.
        let fast = self.core.try_locked(|s| {
            let max = max.min(s.config().rx_size.max(1));
            let mut frames = self.core.frames_for(s, max as usize);
            let got = s.recv(max, &mut frames)?;
            Ok((max, got, s.watch(), frames))
        });
        let (max, got, watch, mut frames) = match fast {
            Some(r) => r?,
            None => {
                // A batch never holds more than the rx ring can: clamp before
                // allocating.
                let (max, watch, frames) = self.with_socket(py, |s| {
                    let max = max.min(s.config().rx_size.max(1));
                    Ok((max, s.watch(), s.rx_frames(max as usize)))
                })?;
                (max, 0, watch, frames)
            }
        };
        let wait = Wait {
            busy_poll: self.busy_poll,
            on_link_down: if self.raise_link_down {
                OnLinkDown::Raise
            } else {
                OnLinkDown::Wait
            },
            linger,
        };
        // The flag may be stale (a kick is made only when the kernel asks): ask the
        // kernel before raising; a removed interface raises its own error.
        if got == 0
            && wait.on_link_down == OnLinkDown::Raise
            && watch.link().is_down()
            && !self.with_socket(py, |s| s.link_up())?
        {
            self.core.give_back(frames);
            return Err(watch.link_down_error("receiving").into());
        }
        if got == max || (got > 0 && linger.is_zero()) || timeout.is_some_and(|t| t.is_zero()) {
            return Ok(RxBatch::new(Arc::clone(&self.core), frames));
        }
        // Wait with the socket unlocked, so other threads can send meanwhile; take
        // what came with it locked. Sliced, so that Ctrl-C is seen.
        let got = if got > 0 {
            Some(())
        } else {
            sliced_wait(py, timeout, |slice| {
                wait.slice(
                    &watch,
                    slice,
                    || self.core.is_closed(),
                    || {
                        let n = self.core.locked(|s| s.recv(max, &mut frames))?;
                        Ok((n > 0).then_some(()))
                    },
                )
            })?
        };
        if got.is_some() && wait.lingers(frames.len() as u32, max) {
            // Let more packets gather before handing out the batch: fewer wakeups (and
            // less CPU) per packet, at the cost of up to `linger` of latency.
            py.detach(|| std::thread::sleep(linger));
            let more = max - frames.len() as u32;
            // What recv already took is in `frames` and goes into the batch whatever
            // happens; a failure here shows again on the next call.
            let _ = self.with_socket(py, |s| s.recv(more, &mut frames));
        }
        Ok(RxBatch::new(Arc::clone(&self.core), frames))
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
        let frames = self.with_socket(py, |s| {
            let max = max.min(s.config().rx_size.max(1));
            let mut frames = s.rx_frames(max as usize);
            s.rx_peek(max, &mut frames)?;
            Ok(frames)
        })?;
        if frames.is_empty() {
            return Ok((0, false));
        }
        let n = frames.len();
        let batch = Bound::new(py, RxBatch::new(Arc::clone(&self.core), frames))?;
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
        // The consumer took `taken`: those become the batch's, the rest stay in the
        // ring. The frames leave the batch while the socket settles the peek.
        let this = batch.get();
        let mut frames = lock(&this.state).frames.take().expect("a fresh batch");
        let settled = self.with_socket(py, |s| s.rx_consume(taken as u32, &mut frames));
        lock(&this.state).frames = Some(frames);
        settled?;
        this.release_frames()?;
        if let Some(e) = failure {
            return Err(e);
        }
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

    /// Takes only the packets of the queue that match `filter`, a filter in tcpdump's
    /// words ("udp and dst port 4789", "icmp or port 53"), or all of them with None;
    /// the others go to the kernel stack. Replaces the rules at once, under traffic.
    #[pyo3(signature = (filter))]
    fn set_match(&self, py: Python<'_>, filter: Option<&str>) -> PyResult<()> {
        let rules = match_arg(filter)?;
        self.with_socket(py, |s| s.set_match(&rules))
    }

    /// The filter this socket takes packets by (as rules, in tcpdump's words), or None
    /// when it takes all of its queue's packets.
    #[getter(r#match)]
    fn get_match(&self, py: Python<'_>) -> PyResult<Option<String>> {
        let rules = self.with_socket(py, |s| Ok(s.match_rules().to_vec()))?;
        Ok((!rules.is_empty()).then(|| crate::flow::describe(&rules)))
    }

    /// Whether the socket's interface is up, asked of the kernel now. A socket whose
    /// link is down stays usable; a removed interface raises XdpOSError.
    #[getter]
    fn link_up(&self, py: Python<'_>) -> PyResult<bool> {
        self.with_socket(py, |s| s.link_up())
    }

    /// The NAPI ID the kernel gave the socket with its packets: 0 before the first
    /// packet, and always on devices without NAPI IDs (veth, skb mode), where
    /// busy_poll has no effect.
    #[getter]
    fn napi_id(&self, py: Python<'_>) -> PyResult<u32> {
        self.with_socket(py, |s| s.napi_id())
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
        let (k, c, f, r, down, downs) = self.with_socket(py, |s| {
            // Completions first, so that tx_completed and tx_outstanding are the
            // kernel's word of now, not of the last send.
            s.complete();
            Ok((
                s.statistics()?,
                s.counters(),
                s.frame_counts(),
                s.ring_levels(),
                s.link_down(),
                s.link_downs(),
            ))
        })?;
        let d = PyDict::new(py);
        let items: [(&str, u64); 29] = [
            // The link as last seen (1: down; the socket stays usable) and how many
            // times the socket saw it go down (it looks when it waits, sends, or is
            // asked through link_up).
            ("link_down", down as u64),
            ("link_downs", downs),
            ("rx_dropped", k.rx_dropped),
            ("rx_invalid_descs", k.rx_invalid_descs),
            ("tx_invalid_descs", k.tx_invalid_descs),
            ("rx_ring_full", k.rx_ring_full),
            ("rx_fill_ring_empty_descs", k.rx_fill_ring_empty_descs),
            ("tx_ring_empty_descs", k.tx_ring_empty_descs),
            ("rx_packets", c.rx_packets),
            ("rx_bytes", c.rx_bytes),
            ("tx_packets", c.tx_packets),
            ("tx_bytes", c.tx_bytes),
            ("tx_completed", c.tx_completed),
            ("tx_wakeups", c.tx_wakeups),
            ("tx_rekicks", c.tx_rekicks),
            ("busy_poll_tx_fallbacks", c.busy_poll_tx_fallbacks),
            ("rx_wakeups", c.rx_wakeups),
            ("invalid_completions", c.invalid_completions),
            ("invalid_rx_descs", c.invalid_rx_descs),
            ("invalid_returns", c.invalid_returns),
            ("checksums_completed", c.checksums_completed),
            // Where the socket's frames are: these four always add up to frame_count.
            ("free_frames", f.free as u64),
            ("tx_outstanding", f.tx_outstanding as u64),
            ("rx_held", f.rx_held as u64),
            ("rx_in_kernel", f.rx_in_kernel as u64),
            ("frame_count", f.total as u64),
            // What sits on the rings now, as both sides see it: frames for the kernel
            // to receive into, received packets not yet released, tx descriptors the
            // kernel has not taken.
            ("fill_ring_queued", r.fill_queued as u64),
            ("rx_ring_waiting", r.rx_waiting as u64),
            ("tx_ring_queued", r.tx_queued as u64),
        ];
        for (name, value) in items {
            d.set_item(name, value)?;
        }
        Ok(d)
    }

    /// The socket's file descriptor (for select/poll/selectors and asyncio).
    fn fileno(&self) -> PyResult<i32> {
        if self.core.is_closed() {
            return Err(Error::closed().into());
        }
        Ok(self.fd)
    }

    #[getter]
    fn closed(&self) -> bool {
        self.core.is_closed()
    }

    /// Closes the socket: unregisters it from the XDP program (detaching the program
    /// if this was the last socket of the interface) and frees the rings. Batches
    /// still held stay readable until released. Closing twice is allowed.
    fn close(&self, py: Python<'_>) {
        py.detach(|| drop(self.core.shutdown()));
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> bool {
        self.close(py);
        false
    }

    fn __repr__(&self) -> String {
        let state = if self.closed() { "closed" } else { "open" };
        format!(
            "<XskSocket {} queue {} {} mode={} zerocopy={} multi_buffer={}>",
            self.ifname,
            self.queue,
            state,
            self.attach_mode.unwrap_or("none"),
            self.zerocopy,
            self.multi_buffer
        )
    }
}
