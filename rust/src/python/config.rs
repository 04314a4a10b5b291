//! One conversion from Python arguments to a [`SocketConfig`], for every class that
//! opens sockets (`XskSocket`, `Forwarder`, `VhostUser`): each value checked and named
//! in its error, the defaults those of [`defaults`] (a test checks the written-out
//! Python signatures and stubs against [`socket_defaults`]).

use std::os::fd::OwnedFd;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::args::{fd_arg, multi_buffer_arg, raw_fd_arg, u32_arg};
use super::errors::config_err;
use crate::program::XdpMode;
use crate::socket::config::defaults;
use crate::socket::{BindMode, BusyPoll, MapSource, SocketConfig, Steering, SteeringOptions};
use crate::umem::{frame_size_error, UmemConfig};

/// The socket arguments as Python gives them.
pub(super) struct SocketArgs<'a, 'py> {
    pub mode: &'a str,
    pub bind: &'a str,
    pub frame_size: i64,
    pub frame_count: i64,
    pub headroom: i64,
    pub fill_size: i64,
    pub comp_size: i64,
    pub rx_size: i64,
    pub tx_size: i64,
    pub need_wakeup: bool,
    pub load_program: bool,
    pub inhibit: bool,
    pub sock_fd: Option<i64>,
    pub xsks_map_fd: Option<i64>,
    pub xsks_map_path: Option<&'a str>,
    pub frames: Option<(i64, i64)>,
    pub hold_fds: Option<Vec<i64>>,
    pub complete_checksums: bool,
    pub fix_offloads: bool,
    pub multi_buffer: Option<&'a Bound<'py, PyAny>>,
    pub filter: Option<&'a str>,
    pub timestamps: bool,
    pub busy_poll: bool,
    pub busy_poll_usecs: i64,
    pub busy_poll_budget: i64,
}

impl Default for SocketArgs<'_, '_> {
    fn default() -> Self {
        SocketArgs {
            mode: "auto",
            bind: "auto",
            frame_size: defaults::FRAME_SIZE as i64,
            frame_count: defaults::FRAME_COUNT as i64,
            headroom: defaults::HEADROOM as i64,
            fill_size: defaults::RING_SIZE as i64,
            comp_size: defaults::RING_SIZE as i64,
            rx_size: defaults::RING_SIZE as i64,
            tx_size: defaults::RING_SIZE as i64,
            need_wakeup: defaults::NEED_WAKEUP,
            load_program: true,
            inhibit: false,
            sock_fd: None,
            xsks_map_fd: None,
            xsks_map_path: None,
            frames: None,
            hold_fds: None,
            complete_checksums: false,
            fix_offloads: false,
            multi_buffer: None,
            filter: None,
            timestamps: false,
            busy_poll: false,
            busy_poll_usecs: defaults::BUSY_POLL_USECS as i64,
            busy_poll_budget: defaults::BUSY_POLL_BUDGET as i64,
        }
    }
}

/// What a socket's arguments give besides its configuration: a socket a privileged
/// process created, to open the socket on.
pub(super) struct Opened {
    pub config: SocketConfig,
    pub sock_fd: Option<OwnedFd>,
}

impl SocketArgs<'_, '_> {
    /// The configuration, every value checked (the errors name the argument).
    pub(super) fn convert(&self) -> PyResult<Opened> {
        let mut maps = Vec::new();
        if let Some(fd) = self.xsks_map_fd {
            maps.push(MapSource::Fd(raw_fd_arg("xsks_map_fd", fd)?));
        }
        if let Some(path) = self.xsks_map_path {
            maps.push(MapSource::Path(path));
        }
        let steering = Steering::choose(&SteeringOptions {
            load_program: self.load_program,
            inhibit: self.inhibit,
            handed_over: self.sock_fd.is_some(),
            maps: &maps,
            mode: XdpMode::parse(self.mode)?,
        })?;
        let rules = match_arg(self.filter)?;
        let config = SocketConfig {
            umem: UmemConfig {
                frame_size: u32::try_from(self.frame_size)
                    .map_err(|_| frame_size_error(self.frame_size))?,
                frame_count: u32_arg("frame_count", self.frame_count)?,
                headroom: u32_arg("headroom", self.headroom)?,
            },
            fill_size: u32_arg("fill_size", self.fill_size)?,
            comp_size: u32_arg("comp_size", self.comp_size)?,
            rx_size: u32_arg("rx_size", self.rx_size)?,
            tx_size: u32_arg("tx_size", self.tx_size)?,
            bind: BindMode::parse(self.bind)?,
            multi_buffer: self
                .multi_buffer
                .map(multi_buffer_arg)
                .transpose()?
                .unwrap_or_default(),
            need_wakeup: self.need_wakeup,
            steering,
            rules,
            timestamps: self.timestamps,
            complete_checksums: self.complete_checksums,
            fix_offloads: self.fix_offloads,
            frames: self
                .frames
                .map(|(a, b)| Ok::<_, PyErr>((u32_arg("frames[0]", a)?, u32_arg("frames[1]", b)?)))
                .transpose()?,
            hold: self
                .hold_fds
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|fd| fd_arg("hold_fds", fd).map(Arc::new))
                .collect::<PyResult<_>>()?,
            busy_poll: if self.busy_poll {
                Some(BusyPoll {
                    usecs: u32_arg("busy_poll_usecs", self.busy_poll_usecs)?,
                    budget: u32_arg("busy_poll_budget", self.busy_poll_budget)?,
                })
            } else {
                None
            },
            ..SocketConfig::default()
        };
        let sock_fd = self.sock_fd.map(|fd| fd_arg("sock_fd", fd)).transpose()?;
        Ok(Opened { config, sock_fd })
    }
}

/// The rules of a `match` filter (None: all packets).
pub(super) fn match_arg(filter: Option<&str>) -> PyResult<Vec<crate::flow::Rule>> {
    match filter {
        None => Ok(Vec::new()),
        Some(f) => crate::flow::parse(f).map_err(|e| config_err(format!("match={f:?}: {e}"))),
    }
}

/// The defaults of the socket arguments, by name, as Python sees them: what the tests
/// check the written-out signatures and the stubs against.
#[pyfunction]
pub(super) fn socket_defaults(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let a = SocketArgs::default();
    let d = PyDict::new(py);
    d.set_item("mode", a.mode)?;
    d.set_item("bind", a.bind)?;
    for (name, v) in [
        ("frame_size", a.frame_size),
        ("frame_count", a.frame_count),
        ("headroom", a.headroom),
        ("fill_size", a.fill_size),
        ("comp_size", a.comp_size),
        ("rx_size", a.rx_size),
        ("tx_size", a.tx_size),
        ("busy_poll_usecs", a.busy_poll_usecs),
        ("busy_poll_budget", a.busy_poll_budget),
    ] {
        d.set_item(name, v)?;
    }
    for (name, v) in [
        ("need_wakeup", a.need_wakeup),
        ("load_program", a.load_program),
        ("inhibit", a.inhibit),
        ("complete_checksums", a.complete_checksums),
        ("fix_offloads", a.fix_offloads),
        ("timestamps", a.timestamps),
        ("busy_poll", a.busy_poll),
    ] {
        d.set_item(name, v)?;
    }
    for name in [
        "sock_fd",
        "xsks_map_fd",
        "xsks_map_path",
        "frames",
        "hold_fds",
        "multi_buffer",
        "match",
    ] {
        d.set_item(name, py.None())?;
    }
    Ok(d)
}
