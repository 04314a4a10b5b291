//! `Forwarder` in Python: zero-copy forwarding between two interfaces, run by Rust
//! threads (no GIL), with counters to read while it runs.

use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use super::args::u32_arg;
use super::config::SocketArgs;
use super::core::{lock, watch_until};
use super::errors::{warn_all, SocketClosedError};
use super::stats::kernel_dict;
use crate::forwarder::{self, ForwarderConfig};
use crate::socket::config::defaults;

/// Forwards every frame between two interfaces, both ways, without copying it (one
/// UMEM per queue pair), completing partial checksums on the way. It runs in Rust
/// threads, one per queue pair, from construction until `stop()`; with `busy_poll`,
/// an idle thread busy-polls both devices instead of sleeping in poll(2).
#[pyclass(frozen, module = "afxdp_rs._afxdp", name = "Forwarder")]
pub struct PyForwarder {
    inner: Mutex<Option<forwarder::Forwarder>>,
    #[pyo3(get)]
    interfaces: (String, String),
    /// What on the interfaces makes packets arrive unfinished or too large, each with
    /// the command that fixes it (also emitted as AfXdpWarning).
    #[pyo3(get)]
    warnings: Vec<String>,
    /// What fix_offloads=True turned off.
    #[pyo3(get)]
    offload_changes: Vec<String>,
}

impl PyForwarder {
    fn with<R>(&self, f: impl FnOnce(&mut forwarder::Forwarder) -> PyResult<R>) -> PyResult<R> {
        let mut guard = lock(&self.inner);
        let fwd = guard
            .as_mut()
            .ok_or_else(|| SocketClosedError::new_err("this Forwarder was stopped"))?;
        f(fwd)
    }
}

#[pymethods]
impl PyForwarder {
    #[new]
    #[pyo3(signature = (
        if_a, if_b, *, queues = 1, start_queue = 0, mode = "auto", bind = "auto",
        frame_size = defaults::FRAME_SIZE as i64, frame_count = defaults::FRAME_COUNT as i64,
        batch = 64, complete_checksums = true, fix_offloads = false, busy_poll = false,
        busy_poll_usecs = defaults::BUSY_POLL_USECS as i64,
        busy_poll_budget = defaults::BUSY_POLL_BUDGET as i64
    ))]
    #[pyo3(
        text_signature = r#"(if_a, if_b, *, queues=1, start_queue=0, mode="auto", bind="auto", frame_size=4096, frame_count=4096, batch=64, complete_checksums=True, fix_offloads=False, busy_poll=False, busy_poll_usecs=20, busy_poll_budget=64)"#
    )]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        if_a: &str,
        if_b: &str,
        queues: i64,
        start_queue: i64,
        mode: &str,
        bind: &str,
        frame_size: i64,
        frame_count: i64,
        batch: i64,
        complete_checksums: bool,
        fix_offloads: bool,
        busy_poll: bool,
        busy_poll_usecs: i64,
        busy_poll_budget: i64,
    ) -> PyResult<Self> {
        let socket = SocketArgs {
            mode,
            bind,
            frame_size,
            frame_count,
            fix_offloads,
            busy_poll,
            busy_poll_usecs,
            busy_poll_budget,
            ..SocketArgs::default()
        }
        .convert()?
        .config;
        let config = ForwarderConfig {
            socket,
            queues: u32_arg("queues", queues)?,
            start_queue: u32_arg("start_queue", start_queue)?,
            batch: u32_arg("batch", batch)?,
            complete_checksums,
        };
        let fwd = py.detach(|| forwarder::Forwarder::start(if_a, if_b, &config))?;
        warn_all(py, fwd.warnings())?;
        Ok(PyForwarder {
            warnings: fwd.warnings().iter().map(|a| a.message.clone()).collect(),
            offload_changes: fwd.offload_changes().to_vec(),
            inner: Mutex::new(Some(fwd)),
            interfaces: (if_a.to_string(), if_b.to_string()),
        })
    }

    /// One dict per direction and queue: queue, from, to, packets, bytes, checksums
    /// (partial checksums completed), and the kernel counters of the receiving socket
    /// (rx: rx_dropped, rx_ring_full, ...) and of the sending one (tx); from_down
    /// (the receiving interface was down at the last look: forwarding resumes when it is
    /// up), from_downs (how many times it went down) and zerocopy (both sockets of the
    /// direction are bound in zero-copy).
    fn statistics<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let report = self.with(|f| Ok(f.report()?))?;
        report
            .iter()
            .map(|d| {
                let out = PyDict::new(py);
                out.set_item("queue", d.queue)?;
                out.set_item("from", &d.from)?;
                out.set_item("to", &d.to)?;
                out.set_item("packets", d.packets)?;
                out.set_item("bytes", d.bytes)?;
                out.set_item("checksums", d.checksums)?;
                out.set_item("rx", kernel_dict(py, &d.rx)?)?;
                out.set_item("tx", kernel_dict(py, &d.tx)?)?;
                out.set_item("from_down", d.from_down)?;
                out.set_item("from_downs", d.from_downs)?;
                out.set_item("zerocopy", d.zerocopy.0 && d.zerocopy.1)?;
                Ok(out)
            })
            .collect()
    }

    /// Whether every queue pair is still forwarding (one that failed has ended:
    /// `stop()` raises its error).
    #[getter]
    fn running(&self) -> bool {
        lock(&self.inner).as_ref().is_some_and(|f| f.running())
    }

    /// Waits up to `timeout` seconds (None: for ever) while every pair forwards;
    /// returns False when the time ran out, True as soon as a pair has ended (then
    /// call `stop()` for its error). Ctrl-C interrupts it.
    #[pyo3(signature = (timeout = None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        watch_until(py, timeout, || (!self.running()).then_some(true))
    }

    /// Stops forwarding, waits for the threads and closes the sockets; raises the
    /// error that ended a pair, if one did. Stopping twice is fine.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        let fwd = lock(&self.inner).take();
        if let Some(mut f) = fwd {
            py.detach(|| f.stop())?;
        }
        Ok(())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.stop(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let state = if self.running() { "running" } else { "stopped" };
        format!(
            "<Forwarder {} <-> {} {state}>",
            self.interfaces.0, self.interfaces.1
        )
    }
}
