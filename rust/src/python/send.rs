//! The sending side of `XskSocket`: `send` (sequences whole, other iterables in
//! chunks), `send_packed` (one buffer, one array of lengths) and `flush`.

use std::time::{Duration, Instant};

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

use super::args::{
    held_packets, packed_arg, sequence_items, timeout_arg, u32_buffer, with_queued, Held,
};
use super::core::{send_slice, sliced_wait};
use super::errors::config_err;
use super::socket::PySocket;

/// How many packets of an iterable `send` takes at a time.
const SEND_CHUNK: usize = 256;

impl PySocket {
    /// Checks every packet (`first`: the index of the first in the call, for errors),
    /// then sends them, waiting as `send` does.
    fn send_held(
        &self,
        py: Python<'_>,
        held: &[Held<'_>],
        first: usize,
        timeout: Option<Duration>,
    ) -> PyResult<usize> {
        let slices: Vec<&[u8]> = held.iter().map(Held::bytes).collect();
        self.with_socket(py, |s| {
            for (i, p) in slices.iter().enumerate() {
                s.check_packet(first + i, p.len())?;
            }
            Ok(())
        })?;
        self.send_checked(py, &slices, timeout)
    }

    /// Sends packets that were all checked already, waiting as `send` does.
    fn send_checked(
        &self,
        py: Python<'_>,
        slices: &[&[u8]],
        timeout: Option<Duration>,
    ) -> PyResult<usize> {
        let mut sent = 0usize;
        sliced_wait(py, timeout, |slice| {
            send_slice(&self.core, slices, &mut sent, slice)
        })?;
        Ok(sent)
    }
}

#[pymethods]
impl PySocket {
    /// Sends bytes-like packets (bytes, bytearray, memoryview, Frame, or objects with
    /// `__bytes__`). Waits up to `timeout` seconds (None: as long as needed) for free
    /// frames and tx ring space; returns how many were queued, which is fewer than
    /// given only when the time ran out or the link went down during the call (the next
    /// call then raises LinkDownError). A list or tuple is checked whole before any
    /// packet is queued; any other iterable is taken in chunks of 256. An exception
    /// (a bad packet, or one the iterator raised) says on its `queued` attribute how
    /// many packets of the call were queued before it.
    #[pyo3(signature = (packets, timeout = None))]
    fn send(
        &self,
        py: Python<'_>,
        packets: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<usize> {
        let timeout = timeout_arg(timeout)?;
        if let Some(items) = sequence_items(packets) {
            let held = held_packets(py, items, 0).map_err(|e| with_queued(py, e, 0))?;
            return self
                .send_held(py, &held, 0, timeout)
                .map_err(|e| with_queued(py, e, 0));
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut iter = packets.try_iter()?;
        let mut queued = 0usize;
        loop {
            let mut items = Vec::with_capacity(SEND_CHUNK);
            let mut failure = None;
            for item in iter.by_ref().take(SEND_CHUNK) {
                match item {
                    Ok(x) => items.push(x),
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            let n = items.len();
            if n > 0 {
                let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                let sent = held_packets(py, items, queued)
                    .and_then(|held| self.send_held(py, &held, queued, left))
                    .map_err(|e| with_queued(py, e, queued))?;
                queued += sent;
                if sent < n {
                    return Ok(queued); // the time ran out
                }
            }
            if let Some(e) = failure {
                return Err(with_queued(py, e, queued));
            }
            if n < SEND_CHUNK {
                return Ok(queued);
            }
        }
    }

    /// Waits up to `timeout` seconds (None: as long as needed) until every queued
    /// packet has left (is on the completion ring). Returns whether all did.
    #[pyo3(signature = (timeout = None))]
    fn flush(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let timeout = timeout_arg(timeout)?;
        let done = sliced_wait(py, timeout, |slice| {
            self.core
                .locked(|s| Ok(s.flush(Some(slice))?.then_some(())))
        })?;
        Ok(done.is_some())
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
        let data = packed_arg(py, data)?;
        let lengths = u32_buffer(lengths)?;
        if !lengths.is_c_contiguous() {
            return Err(PyTypeError::new_err(
                "data and lengths must be contiguous buffers",
            ));
        }
        let lens = lengths.to_vec(py)?;
        let bytes = data.bytes();
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
        self.with_socket(py, |s| s.check_packets(&slices))?;
        self.send_checked(py, &slices, timeout)
    }
}
