//! `VhostUser` in Python: a virtual machine's virtio-net device served over a Unix
//! socket (vhost-user), its queue pairs carried by AF_XDP sockets on a host interface.
//! It runs in Rust threads (no GIL) from construction until `stop()`.

use std::path::PathBuf;
use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use super::args::u32_arg;
use super::config::SocketArgs;
use super::core::{lock, watch_until};
use super::errors::{config_err, warn_all, SocketClosedError};
use super::stats::kernel_dict;
use crate::socket::config::defaults;
use crate::vhost::virtio_net::parse_mac;
use crate::vhost::{VhostUser, VhostUserConfig};

/// A vhost-user-net device whose queue pairs are AF_XDP sockets on `interface`: give
/// QEMU (or another vhost-user frontend) `socket_path` and the guest's packets go
/// out of the interface, the interface's packets (as steered to queues
/// `start_queue .. start_queue + queues`) go to the guest. Frontends are served one
/// after another (a reboot, a reconnect, the next VM) until `stop()`.
#[pyclass(frozen, module = "afxdp_rs._afxdp", name = "VhostUser")]
pub struct PyVhostUser {
    inner: Mutex<Option<VhostUser>>,
    #[pyo3(get)]
    interface: String,
    #[pyo3(get)]
    socket_path: PathBuf,
    /// Whether it connects to a listening frontend instead of listening.
    #[pyo3(get)]
    client: bool,
    /// What on the interface makes packets arrive unfinished or too large (also
    /// emitted as AfXdpWarning).
    #[pyo3(get)]
    warnings: Vec<String>,
    /// What fix_offloads=True turned off.
    #[pyo3(get)]
    offload_changes: Vec<String>,
}

impl PyVhostUser {
    fn with<R>(&self, f: impl FnOnce(&VhostUser) -> PyResult<R>) -> PyResult<R> {
        let guard = lock(&self.inner);
        let dev = guard
            .as_ref()
            .ok_or_else(|| SocketClosedError::new_err("this VhostUser was stopped"))?;
        f(dev)
    }
}

fn mac_arg(mac: Option<&str>) -> PyResult<[u8; 6]> {
    match mac {
        None => Ok(VhostUserConfig::default().mac),
        Some(s) => parse_mac(s).ok_or_else(|| {
            config_err(format!(
                "mac={s:?}: give six hex bytes separated by colons, like 52:54:00:12:34:56"
            ))
        }),
    }
}

#[pymethods]
impl PyVhostUser {
    #[new]
    #[pyo3(signature = (
        interface, socket_path, *, queues = 1, start_queue = 0, client = false,
        mode = "auto", bind = "auto", frame_size = defaults::FRAME_SIZE as i64,
        frame_count = defaults::FRAME_COUNT as i64, mac = None, queue_size = 1024, mtu = None,
        fix_offloads = false
    ))]
    #[pyo3(
        text_signature = r#"(interface, socket_path, *, queues=1, start_queue=0, client=False, mode="auto", bind="auto", frame_size=4096, frame_count=4096, mac=None, queue_size=1024, mtu=None, fix_offloads=False)"#
    )]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        interface: &str,
        socket_path: PathBuf,
        queues: i64,
        start_queue: i64,
        client: bool,
        mode: &str,
        bind: &str,
        frame_size: i64,
        frame_count: i64,
        mac: Option<&str>,
        queue_size: i64,
        mtu: Option<i64>,
        fix_offloads: bool,
    ) -> PyResult<Self> {
        let mtu = match mtu {
            None => None,
            Some(m) => Some(u16::try_from(m).map_err(|_| {
                config_err(format!("mtu={m}: give a value from 68 to 65535, or None"))
            })?),
        };
        let socket = SocketArgs {
            mode,
            bind,
            frame_size,
            frame_count,
            fix_offloads,
            ..SocketArgs::default()
        }
        .convert()?
        .config;
        let config = VhostUserConfig {
            socket,
            path: socket_path.clone(),
            client,
            queues: u32_arg("queues", queues)?,
            start_queue: u32_arg("start_queue", start_queue)?,
            mac: mac_arg(mac)?,
            queue_size: usize::try_from(queue_size).map_err(|_| {
                config_err(format!(
                    "queue_size={queue_size}: use a power of two up to 32768"
                ))
            })?,
            mtu,
        };
        let dev = py.detach(|| VhostUser::start(interface, &config))?;
        warn_all(py, dev.warnings())?;
        Ok(PyVhostUser {
            warnings: dev.warnings().iter().map(|a| a.message.clone()).collect(),
            offload_changes: dev.offload_changes().to_vec(),
            inner: Mutex::new(Some(dev)),
            interface: interface.to_string(),
            socket_path,
            client,
        })
    }

    /// One dict per queue pair: queue, then the device's counters (tx_*: sent by the
    /// guest, out of the interface; rx_*: received by the guest): tx_packets,
    /// tx_bytes, tx_drop_bad_chain, tx_drop_too_large, tx_drop_port_refused,
    /// tx_port_full (times the guest waited for tx room, not a drop), rx_packets,
    /// rx_bytes, rx_bad_chain, rx_drop_too_large, rx_no_buffers (times a packet waited
    /// for guest buffers, not a drop), ring_errors; and kernel, the AF_XDP socket's
    /// kernel counters (rx_dropped, rx_ring_full, ...).
    fn statistics<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let report = self.with(|d| Ok(d.report()?))?;
        report
            .iter()
            .map(|p| {
                let v = &p.virtio;
                let out = PyDict::new(py);
                out.set_item("queue", p.queue)?;
                for (k, n) in [
                    ("tx_packets", v.tx_packets),
                    ("tx_bytes", v.tx_bytes),
                    ("tx_drop_bad_chain", v.tx_drop_bad_chain),
                    ("tx_drop_too_large", v.tx_drop_too_large),
                    ("tx_drop_port_refused", v.tx_drop_port_refused),
                    ("tx_port_full", v.tx_port_full),
                    ("rx_packets", v.rx_packets),
                    ("rx_bytes", v.rx_bytes),
                    ("rx_bad_chain", v.rx_bad_chain),
                    ("rx_drop_too_large", v.rx_drop_too_large),
                    ("rx_no_buffers", v.rx_no_buffers),
                    ("ring_errors", v.ring_errors),
                ] {
                    out.set_item(k, n)?;
                }
                out.set_item("kernel", kernel_dict(py, &p.kernel)?)?;
                Ok(out)
            })
            .collect()
    }

    /// Whether a frontend is connected now.
    #[getter]
    fn connected(&self) -> bool {
        lock(&self.inner).as_ref().is_some_and(|d| d.connected())
    }

    /// Connections served so far, the current one included.
    #[getter]
    fn connections(&self) -> u64 {
        lock(&self.inner).as_ref().map_or(0, |d| d.connections())
    }

    /// What happened to connections, oldest first: the events numbered `start` and
    /// later, counting from 0 (only the last 64 are kept). A reader that remembers how
    /// many it has seen passes that number to get only the new ones.
    #[pyo3(signature = (start = 0))]
    fn events(&self, start: usize) -> PyResult<Vec<String>> {
        self.with(|d| Ok(d.events(start)))
    }

    /// Whether the device is still being served (a failure ends it: `stop()` raises
    /// the error).
    #[getter]
    fn running(&self) -> bool {
        lock(&self.inner).as_ref().is_some_and(|d| d.running())
    }

    /// Waits up to `timeout` seconds (None: for ever) until a frontend is connected
    /// (`connected=True`, the default) or until none is; returns whether that
    /// happened. Ctrl-C interrupts it.
    #[pyo3(signature = (timeout = None, *, connected = true))]
    fn wait_connected(
        &self,
        py: Python<'_>,
        timeout: Option<f64>,
        connected: bool,
    ) -> PyResult<bool> {
        watch_until(py, timeout, || {
            if self.connected() == connected {
                Some(true)
            } else if !self.running() {
                Some(false)
            } else {
                None
            }
        })
    }

    /// Ends the connection, stops serving, closes the sockets (the XDP program goes
    /// with the last one) and removes the socket file it listened on; raises the error
    /// that ended serving, if one did. Stopping twice is fine.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        let dev = lock(&self.inner).take();
        if let Some(mut d) = dev {
            py.detach(|| d.stop())?;
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
        let state = match lock(&self.inner).as_ref() {
            None => "stopped",
            Some(d) if d.connected() => "connected",
            Some(d) if d.running() => "waiting",
            Some(_) => "failed",
        };
        format!(
            "<VhostUser {} on {} {state}>",
            self.socket_path.display(),
            self.interface
        )
    }
}
