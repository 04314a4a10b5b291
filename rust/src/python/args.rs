//! Python arguments into Rust values, each bad value a ConfigError (or TypeError) that
//! names it: integers, timeouts, file descriptors, and the packets given to `send`.
#![allow(unsafe_code)]

use std::os::fd::OwnedFd;
use std::time::Duration;

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use super::errors::config_err;

/// A non-negative integer argument that fits in u32, or an error naming it.
pub(super) fn u32_arg(name: &str, value: i64) -> PyResult<u32> {
    u32::try_from(value).map_err(|_| {
        config_err(format!(
            "{name}={value} is out of range: use a non-negative integer below 2**32"
        ))
    })
}

/// A timeout in seconds (None: wait forever), or an error naming it.
pub(super) fn timeout_arg(timeout: Option<f64>) -> PyResult<Option<Duration>> {
    match timeout {
        None => Ok(None),
        Some(t) if t.is_finite() && t >= 0.0 => Ok(Some(Duration::from_secs_f64(t))),
        Some(t) => Err(config_err(format!(
            "timeout={t} is not valid: use None (wait forever), 0 (do not wait) or a \
             positive number of seconds"
        ))),
    }
}

/// The running time of a Rust loop, in seconds.
pub(super) fn duration_arg(seconds: f64) -> PyResult<Duration> {
    if !(seconds.is_finite() && seconds > 0.0 && seconds < 86_400.0) {
        return Err(config_err(format!(
            "duration={seconds} is not valid: use a positive number of seconds"
        )));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// A descriptor number that fits in an int.
pub(super) fn raw_fd_arg(name: &str, fd: i64) -> PyResult<i32> {
    i32::try_from(fd)
        .ok()
        .filter(|&f| f >= 0)
        .ok_or_else(|| config_err(format!("{name}={fd} is not a file descriptor")))
}

/// A duplicate of a descriptor the caller passed (the caller keeps its own).
pub(super) fn fd_arg(name: &str, fd: i64) -> PyResult<OwnedFd> {
    let raw = raw_fd_arg(name, fd)?;
    crate::sys::dup_fd(raw)
        .map_err(|e| config_err(format!("{name}={fd} is not an open file descriptor ({e})")))
}

/// A packet given to `send`, kept alive while its bytes are read.
pub(super) enum Held<'py> {
    Bytes(Bound<'py, PyBytes>),
    Buffer(PyBuffer<u8>),
    Copy(Vec<u8>),
}

impl Held<'_> {
    pub(super) fn bytes(&self) -> &[u8] {
        match self {
            Held::Bytes(b) => b.as_bytes(),
            Held::Buffer(b) => readonly_bytes(b),
            Held::Copy(v) => v,
        }
    }
}

/// The bytes of a read-only, contiguous buffer.
fn readonly_bytes(b: &PyBuffer<u8>) -> &[u8] {
    assert!(b.readonly() && b.is_c_contiguous());
    // SAFETY: a read-only, contiguous export of len_bytes() bytes (checked above),
    // valid while the PyBuffer (borrowed for the slice's lifetime) lives.
    unsafe { std::slice::from_raw_parts(b.buf_ptr() as *const u8, b.len_bytes()) }
}

/// The packets of a `send` call, held while their bytes are read; `first` is the
/// index of the first one in the call (for error messages).
///
/// bytes objects are immutable and read in place. Other buffers are read in place when
/// read-only, and copied when mutable (bytearray, writable memoryview, Frame): other
/// Python threads may write to them while the GIL is released. Objects with
/// `__bytes__` (scapy packets, for example) are converted.
pub(super) fn held_packets<'py>(
    py: Python<'py>,
    items: Vec<Bound<'py, PyAny>>,
    first: usize,
) -> PyResult<Vec<Held<'py>>> {
    let mut held = Vec::with_capacity(items.len());
    for (i, obj) in items.into_iter().enumerate() {
        let i = first + i;
        let obj = match obj.cast_into::<PyBytes>() {
            Ok(b) => {
                held.push(Held::Bytes(b));
                continue;
            }
            Err(e) => e.into_inner(),
        };
        let buf = match PyBuffer::<u8>::get(&obj) {
            Ok(buf) => buf,
            Err(_) if obj.hasattr("__bytes__")? => {
                let b = obj.call_method0("__bytes__")?.cast_into::<PyBytes>()?;
                held.push(Held::Bytes(b));
                continue;
            }
            Err(_) => {
                return Err(PyTypeError::new_err(format!(
                    "packet {i} is a {}, not a bytes-like object: pass bytes, bytearray or \
                     memoryview (or an object with __bytes__)",
                    obj.get_type()
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default()
                )))
            }
        };
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
    Ok(held)
}

/// The items of a list or tuple, or None for another iterable.
pub(super) fn sequence_items<'py>(packets: &Bound<'py, PyAny>) -> Option<Vec<Bound<'py, PyAny>>> {
    if let Ok(list) = packets.cast::<PyList>() {
        Some(list.iter().collect())
    } else if let Ok(tuple) = packets.cast::<PyTuple>() {
        Some(tuple.iter().collect())
    } else {
        None
    }
}

/// Says on an exception how many packets were queued before it: as its `queued`
/// attribute and, from Python 3.11 on, in a note shown with the traceback.
pub(super) fn with_queued(py: Python<'_>, e: PyErr, queued: usize) -> PyErr {
    let value = e.value(py);
    let _ = value.setattr("queued", queued);
    if value.hasattr("add_note").unwrap_or(false) {
        let note =
            format!("afxdp_rs: {queued} packet(s) of this send were queued before the error");
        let _ = value.call_method1("add_note", (note,));
    }
    e
}

/// A uint32 buffer argument (`array('I')`, numpy uint32).
pub(super) fn u32_buffer(obj: &Bound<'_, PyAny>) -> PyResult<PyBuffer<u32>> {
    PyBuffer::<u32>::get(obj).map_err(|_| {
        PyTypeError::new_err("lengths must be a buffer of uint32 (array('I') or numpy uint32)")
    })
}

/// The bytes of `send_packed`'s `data`, held as a packet of `send` is.
pub(super) fn packed_arg<'py>(py: Python<'py>, data: &Bound<'py, PyAny>) -> PyResult<Held<'py>> {
    let buf = PyBuffer::<u8>::get(data)?;
    if !buf.is_c_contiguous() {
        return Err(PyTypeError::new_err(
            "data and lengths must be contiguous buffers",
        ));
    }
    if buf.readonly() {
        Ok(Held::Buffer(buf))
    } else {
        Ok(Held::Copy(buf.to_vec(py)?))
    }
}

/// `multi_buffer`: "auto", True or False.
pub(super) fn multi_buffer_arg(value: &Bound<'_, PyAny>) -> PyResult<crate::socket::MultiBuffer> {
    use crate::socket::MultiBuffer;
    if let Ok(b) = value.extract::<bool>() {
        return Ok(if b { MultiBuffer::On } else { MultiBuffer::Off });
    }
    match value.extract::<String>().as_deref() {
        Ok("auto") => Ok(MultiBuffer::Auto),
        _ => Err(config_err(format!(
            "multi_buffer={} is not valid: use \"auto\" (where the kernel supports it), \
             True or False",
            value.repr().map(|r| r.to_string()).unwrap_or_default()
        ))),
    }
}
