//! The test rig, apart from the socket's API (`afxdp_rs.tools` wraps it): the Rust
//! packet loops (rxdrop, txonly, l2fwd), the sequence check and the stop of a loop
//! (they run in Rust with the GIL released and end early on Ctrl-C, `stop_loop` or
//! `close()`), and the hooks that provoke the kernel's counters.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::args::{duration_arg, timeout_arg, u32_arg};
use super::core::run_loop;
use super::errors::config_err;
use super::socket::PySocket;
use crate::tools::{self, LoopStats, Pace, SequenceRun};

fn loop_stats(py: Python<'_>, st: LoopStats) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("packets", st.packets)?;
    d.set_item("bytes", st.bytes)?;
    d.set_item("seconds", st.seconds)?;
    d.set_item("cpu_seconds", st.cpu_seconds)?;
    Ok(d)
}

/// The arguments of a receiving loop.
fn pace_args(batch: i64, poll: bool, linger: f64) -> PyResult<Pace> {
    Ok(Pace {
        batch: u32_arg("batch", batch)?,
        poll,
        linger: timeout_arg(Some(linger))?.unwrap_or_default(),
    })
}

/// For tests only: while `hidden`, every socket of the process skips the tx kicks the
/// kernel asks for (a lost wakeup, on purpose); only the re-kick of a stalled sender
/// still reaches the kernel.
#[pyfunction]
pub(super) fn _hide_tx_wakeups(hidden: bool) {
    crate::socket::hooks::hide_tx_wakeups(hidden);
}

/// Benchmark loop run entirely in Rust (the GIL is released): receive and drop for
/// `duration` seconds. Returns packets, bytes, seconds and cpu_seconds.
#[pyfunction]
#[pyo3(signature = (sock, duration, batch = 64, poll = false, linger = 0.0))]
pub(super) fn _rig_rxdrop<'py>(
    sock: &Bound<'py, PySocket>,
    py: Python<'py>,
    duration: f64,
    batch: i64,
    poll: bool,
    linger: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let (d, pace) = (duration_arg(duration)?, pace_args(batch, poll, linger)?);
    let st = run_loop(py, &sock.get().core, |s, stop| {
        tools::rxdrop(s, pace, d, stop)
    })?;
    loop_stats(py, st)
}

/// Benchmark loop run entirely in Rust: send `packet` in batches for `duration`.
#[pyfunction]
#[pyo3(signature = (sock, packet, duration, batch = 64))]
pub(super) fn _rig_txonly<'py>(
    sock: &Bound<'py, PySocket>,
    py: Python<'py>,
    packet: Vec<u8>,
    duration: f64,
    batch: i64,
) -> PyResult<Bound<'py, PyDict>> {
    let (d, b) = (duration_arg(duration)?, u32_arg("batch", batch)?);
    let st = run_loop(py, &sock.get().core, |s, stop| {
        tools::txonly(s, &packet, b, d, stop)
    })?;
    loop_stats(py, st)
}

/// Benchmark loop run entirely in Rust: forward every packet back out with its MAC
/// addresses swapped, for `duration`.
#[pyfunction]
#[pyo3(signature = (sock, duration, batch = 64, poll = false, linger = 0.0))]
pub(super) fn _rig_l2fwd<'py>(
    sock: &Bound<'py, PySocket>,
    py: Python<'py>,
    duration: f64,
    batch: i64,
    poll: bool,
    linger: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let (d, pace) = (duration_arg(duration)?, pace_args(batch, poll, linger)?);
    let st = run_loop(py, &sock.get().core, |s, stop| {
        tools::l2fwd(s, pace, d, stop)
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
#[pyfunction]
#[pyo3(signature = (sock, template, count, batch = 64, window = 0, swapped = true, quiet = 1.0))]
#[allow(clippy::too_many_arguments)]
pub(super) fn _rig_sequence_check<'py>(
    sock: &Bound<'py, PySocket>,
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
    let run = SequenceRun {
        template,
        count,
        batch,
        window,
        swapped,
        quiet,
    };
    let st = run_loop(py, &sock.get().core, |s, stop| {
        tools::sequence_check(s, &run, stop)
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

/// Ends the Rust loop (rxdrop, txonly, l2fwd, sequence_check) another thread is
/// running on this socket, as soon as it finishes its current batch; that call returns what
/// it did so far. The socket stays open. When no loop runs yet (the thread that
/// starts one has not got there), the next loop to start ends at once: a stop right
/// after starting a thread is never lost.
#[pyfunction]
pub(super) fn _rig_stop_loop(sock: &Bound<'_, PySocket>) {
    sock.get().core.interrupt();
}

/// Empties the rx ring through the Rust API (receive, recycle), `batch` packets at a
/// time; returns (packets, nanoseconds).
#[pyfunction]
pub(super) fn _rig_drain(
    py: Python<'_>,
    sock: &Bound<'_, PySocket>,
    batch: i64,
) -> PyResult<(u64, u64)> {
    let batch = u32_arg("batch", batch)?;
    let (n, t) = sock.get().with_socket(py, |s| tools::drain(s, batch))?;
    Ok((n, t.as_nanos() as u64))
}

/// For tests of the kernel's counters only: puts `addr` on the fill ring without any
/// check, taking it out of the socket's pool if it is there.
#[pyfunction]
pub(super) fn _rig_post_fill_unchecked(
    py: Python<'_>,
    sock: &Bound<'_, PySocket>,
    addr: u64,
) -> PyResult<()> {
    sock.get().with_socket(py, |s| s.post_fill_unchecked(addr))
}

/// For tests of the kernel's counters only: puts a tx descriptor on the ring without
/// any check and kicks the kernel.
#[pyfunction]
pub(super) fn _rig_post_tx_unchecked(
    py: Python<'_>,
    sock: &Bound<'_, PySocket>,
    addr: u64,
    len: u32,
) -> PyResult<()> {
    sock.get()
        .with_socket(py, |s| s.post_tx_unchecked(addr, len))
}
