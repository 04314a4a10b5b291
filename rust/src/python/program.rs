//! The XDP program in Python: `XdpProgram` (the default program attached on its own,
//! for a privileged helper that hands it to another process) and `interface_info`.

use std::os::fd::{AsFd, AsRawFd};
use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use super::args::{fd_arg, u32_arg};
use super::core::lock;
use super::errors::SocketClosedError;
use crate::error::Error;
use crate::program::{self, XdpMode, XdpProgram};
use crate::sys::netdev;

/// The default XDP program attached to an interface on its own, for a privileged
/// process that hands sockets (or the XSKMAP) to an unprivileged one. It stays attached
/// while this object, or a duplicate of `link_fd`, is alive.
#[pyclass(frozen, module = "afxdp_rs._afxdp", name = "XdpProgram")]
pub struct PyXdpProgram {
    prog: Mutex<Option<XdpProgram>>,
    #[pyo3(get)]
    ifname: String,
    #[pyo3(get)]
    mode: &'static str,
    #[pyo3(get)]
    prog_id: u32,
}

impl PyXdpProgram {
    fn with<R>(&self, f: impl FnOnce(&XdpProgram) -> Result<R, Error>) -> PyResult<R> {
        let guard = lock(&self.prog);
        let prog = guard
            .as_ref()
            .ok_or_else(|| SocketClosedError::new_err("this XdpProgram was closed (detached)"))?;
        Ok(f(prog)?)
    }
}

#[pymethods]
impl PyXdpProgram {
    #[new]
    #[pyo3(signature = (ifname, mode = "auto"))]
    fn new(py: Python<'_>, ifname: &str, mode: &str) -> PyResult<Self> {
        let mode = XdpMode::parse(mode)?;
        let name = ifname.to_string();
        let prog = py.detach(|| XdpProgram::attach_standalone(&name, mode))?;
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
        self.with(|p| Ok(p.xsks_map().as_fd().as_raw_fd()))
    }

    /// The BPF link's descriptor: the program is attached while it is open anywhere.
    #[getter]
    fn link_fd(&self) -> PyResult<i32> {
        self.with(|p| {
            p.link().map(|l| l.as_raw_fd()).ok_or_else(|| {
                Error::new(
                    crate::error::ErrorKind::InvalidConfig,
                    "this program is not attached through a BPF link",
                )
            })
        })
    }

    /// Routes packets of rx queue `queue` to the AF_XDP socket `sock_fd`.
    fn register(&self, queue: i64, sock_fd: i64) -> PyResult<()> {
        let queue = u32_arg("queue", queue)?;
        let fd = fd_arg("sock_fd", sock_fd)?;
        self.with(|p| p.register(queue, fd.as_fd()))
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
        self.with(|p| p.xsks_map().pin(path))
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
pub(super) fn interface_info<'py>(py: Python<'py>, ifname: &str) -> PyResult<Bound<'py, PyDict>> {
    let ifindex = netdev::if_index(ifname)?;
    let state = program::query(ifindex)?;
    let d = PyDict::new(py);
    d.set_item("ifname", ifname)?;
    d.set_item("ifindex", ifindex)?;
    d.set_item("driver", netdev::if_driver(ifname))?;
    d.set_item("mtu", netdev::if_mtu(ifname).ok())?;
    let (rxq, txq) = netdev::if_queue_count(ifname).unzip();
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

fn hook_dict<'py>(
    py: Python<'py>,
    st: &program::status::HookStatus,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("ifname", &st.ifname)?;
    d.set_item("ifindex", st.ifindex)?;
    d.set_item("prog_id", st.prog_id)?;
    d.set_item("mode", st.mode)?;
    d.set_item("name", &st.name)?;
    d.set_item("ours", st.ours)?;
    d.set_item("link_id", st.link_id)?;
    let holders: Vec<(u32, String)> = st.holders.clone();
    d.set_item("holders", holders)?;
    let queues = PyList::empty(py);
    for q in &st.queues {
        let e = PyDict::new(py);
        e.set_item("queue", q.queue)?;
        // None: every packet of the queue.
        e.set_item("takes", (!q.takes.is_empty()).then_some(&q.takes))?;
        e.set_item("timestamps", q.timestamps)?;
        queues.append(e)?;
    }
    d.set_item("queues", queues)?;
    Ok(d)
}

/// What is attached to the interface's XDP hook: the program (id, name, mode, whether
/// it is afxdp_rs's), the BPF link that attaches it, the processes holding that link
/// (pid, command), and for afxdp_rs's program the rx queues sockets take packets of
/// (`queues`: queue, `takes` in tcpdump's words or None for every packet,
/// `timestamps`).
#[pyfunction]
pub(super) fn xdp_status<'py>(py: Python<'py>, ifname: &str) -> PyResult<Bound<'py, PyDict>> {
    let st = py.detach(|| program::status::status(ifname))?;
    hook_dict(py, &st)
}

/// The queue ids `start_queue .. start_queue + queues` of the interface, checked once
/// for every user of a set of queues: at least one, no overflow, every one of them a
/// queue the interface has (QueueError names the range and what fits).
#[pyfunction]
#[pyo3(signature = (ifname, queues = 1, start_queue = 0))]
pub(super) fn queue_range(
    py: Python<'_>,
    ifname: &str,
    queues: i64,
    start_queue: i64,
) -> PyResult<Vec<u32>> {
    let (count, start) = (
        u32_arg("queues", queues)?,
        u32_arg("start_queue", start_queue)?,
    );
    let range = py.detach(|| crate::socket::queues::QueueRange::on(ifname, start, count))?;
    Ok(range.iter().collect())
}

/// Removes afxdp_rs's XDP program from the interface (and nothing else: any other
/// program raises ProgramAttachedError); returns what was attached.
#[pyfunction]
pub(super) fn detach_program<'py>(py: Python<'py>, ifname: &str) -> PyResult<Bound<'py, PyDict>> {
    let st = py.detach(|| program::status::detach(ifname))?;
    hook_dict(py, &st)
}
