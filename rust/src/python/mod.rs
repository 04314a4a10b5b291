//! PyO3 bindings: they translate (arguments in, errors and results out) and release the
//! GIL around every call into the core; no packet logic lives here. This file only
//! assembles the module:
//!
//! * `errors`: the core's errors as the exceptions of `afxdp_rs.errors`;
//! * `args`: Python arguments checked and converted;
//! * `config`: the one conversion of socket arguments into a `SocketConfig`;
//! * `core`: the state a socket shares with its batches, locking and sliced waits;
//! * `socket`: `XskSocket`: opening, receiving, the socket's state;
//! * `send`: `XskSocket`'s sending side (send, send_packed, flush);
//! * `batch`: `RxBatch`, `Frame` and `Segment`;
//! * `buffer`: filling a Py_buffer, for every zero-copy view;
//! * `vector`: the batch's arrays for numpy (offsets, lengths, the UMEM, fields);
//! * `stats`: the kernel's counters of a socket as a dict;
//! * `tools`: the test rig (Rust loops, sequence_check, counter hooks), for
//!   `afxdp_rs.tools`;
//! * `forwarder`: `Forwarder`, zero-copy forwarding between two interfaces;
//! * `program`: `XdpProgram`, `interface_info`, `xdp_status` and `detach_program`;
//! * `vhost`: `VhostUser`, a VM's virtio-net device over AF_XDP sockets.

mod args;
mod batch;
mod buffer;
mod config;
mod core;
mod errors;
mod forwarder;
mod program;
mod send;
mod socket;
mod stats;
mod tools;
mod vector;
mod vhost;

use pyo3::prelude::*;

#[pymodule]
fn _afxdp(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<socket::PySocket>()?;
    m.add_class::<batch::RxBatch>()?;
    m.add_class::<batch::Frame>()?;
    m.add_class::<batch::Segment>()?;
    m.add_class::<vector::PacketArray>()?;
    m.add_class::<vector::UmemView>()?;
    m.add_class::<program::PyXdpProgram>()?;
    m.add_class::<forwarder::PyForwarder>()?;
    m.add_class::<vhost::PyVhostUser>()?;
    m.add_function(wrap_pyfunction!(program::interface_info, m)?)?;
    m.add_function(wrap_pyfunction!(program::xdp_status, m)?)?;
    m.add_function(wrap_pyfunction!(program::detach_program, m)?)?;
    m.add_function(wrap_pyfunction!(program::queue_range, m)?)?;
    // A test hook: set as an attribute, so it stays out of the module's __all__.
    m.setattr(
        "_socket_defaults",
        wrap_pyfunction!(config::socket_defaults, m)?,
    )?;
    // The test rig (afxdp_rs.tools wraps it): attributes, out of the module's __all__.
    m.setattr(
        "_hide_tx_wakeups",
        wrap_pyfunction!(tools::_hide_tx_wakeups, m)?,
    )?;
    m.setattr("_rig_rxdrop", wrap_pyfunction!(tools::_rig_rxdrop, m)?)?;
    m.setattr("_rig_txonly", wrap_pyfunction!(tools::_rig_txonly, m)?)?;
    m.setattr("_rig_l2fwd", wrap_pyfunction!(tools::_rig_l2fwd, m)?)?;
    m.setattr(
        "_rig_sequence_check",
        wrap_pyfunction!(tools::_rig_sequence_check, m)?,
    )?;
    m.setattr(
        "_rig_stop_loop",
        wrap_pyfunction!(tools::_rig_stop_loop, m)?,
    )?;
    m.setattr("_rig_drain", wrap_pyfunction!(tools::_rig_drain, m)?)?;
    m.setattr(
        "_rig_post_fill_unchecked",
        wrap_pyfunction!(tools::_rig_post_fill_unchecked, m)?,
    )?;
    m.setattr(
        "_rig_post_tx_unchecked",
        wrap_pyfunction!(tools::_rig_post_tx_unchecked, m)?,
    )?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("FRAME_SIZES", crate::umem::FRAME_SIZES.to_vec())?;
    Ok(())
}
