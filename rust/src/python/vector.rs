//! The vector API of `RxBatch`, for code that processes whole batches with numpy
//! (or anything that takes a buffer) instead of frame by frame: zero-copy arrays of
//! the packets' UMEM offsets and lengths, a read-only view of the UMEM to index with
//! them, and one field of every packet gathered into one buffer in a single call.
//!
//! The lifetime rule stays: the UMEM view counts as a view of the batch's frames
//! (releasing the batch while it is alive raises BatchInUseError). The offsets and
//! lengths are the batch's own numbers, not packet memory: they may outlive it.
#![allow(unsafe_code)]

use std::ffi::{c_int, CStr};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::batch::{frames, unexport, RxBatch};
use super::buffer::{self, Access::ReadOnly};
use super::errors::config_err;

/// Which of a batch's numbers an array exports.
#[derive(Clone, Copy)]
enum Numbers {
    Offsets,
    Lengths,
}

/// A read-only, one-dimensional array over a batch's packet offsets (uint64) or
/// lengths (uint32), zero-copy: `numpy.frombuffer(a, numpy.uint64)` or
/// `memoryview(a)`.
#[pyclass(frozen, module = "afxdp_rs._afxdp")]
pub struct PacketArray {
    batch: Py<RxBatch>,
    which: Numbers,
}

/// A read-only view of the whole UMEM (every frame of the socket's packet memory),
/// to index with a batch's offsets. It counts as a view of the batch's frames.
#[pyclass(frozen, module = "afxdp_rs._afxdp")]
pub struct UmemView {
    batch: Py<RxBatch>,
}

#[pymethods]
impl PacketArray {
    /// # Safety
    /// Called by CPython with `view` pointing at a Py_buffer it owns, to be filled.
    // SAFETY: CPython calls this only through the buffer protocol, with `view` a
    // Py_buffer it owns and lends for this call; the unsafe call inside (buffer::fill)
    // states why the pointer and length it exports stay valid.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let (ptr, count, size, format): (*const u8, usize, usize, &'static CStr) = {
            let this = slf.get();
            let meta = &this.batch.get().meta;
            match this.which {
                Numbers::Offsets => (meta.addrs.as_ptr().cast(), meta.addrs.len(), 8, c"Q"),
                Numbers::Lengths => (meta.lens.as_ptr().cast(), meta.lens.len(), 4, c"I"),
            }
        };
        // SAFETY: the numbers are the batch's, never changed after it was made; the
        // view holds this array, which holds the batch.
        unsafe {
            buffer::fill(
                view,
                slf.into_any(),
                ptr,
                count,
                size,
                format,
                ReadOnly,
                flags,
            )
        }
    }

    /// # Safety
    /// Called by CPython once per successful `__getbuffer__`; nothing to undo.
    // SAFETY: an empty body: `_view` is not touched.
    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {}

    fn __len__(&self) -> usize {
        self.batch.get().meta.lens.len()
    }
}

#[pymethods]
impl UmemView {
    /// # Safety
    /// Called by CPython with `view` pointing at a Py_buffer it owns, to be filled.
    // SAFETY: CPython calls this only through the buffer protocol, with `view` a
    // Py_buffer it owns and lends for this call; the unsafe call inside (buffer::fill)
    // states why the pointer and length it exports stay valid.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let (ptr, len) = {
            let batch = slf.get().batch.get();
            let mut st = batch.check_live()?;
            let umem = frames(&st).claim().umem().clone();
            st.exports += 1;
            (umem.as_ptr().cast_const(), umem.len())
        };
        let owner = slf.clone().into_any();
        // SAFETY: the UMEM lives as long as the batch's frames (their claim holds it),
        // and the batch is not released while this export is counted; the view holds
        // this object, which holds the batch.
        let r = unsafe { buffer::fill_bytes(view, owner, ptr, len, ReadOnly, flags) };
        if r.is_err() {
            unexport(slf.get().batch.get());
        }
        r
    }

    /// # Safety
    /// Called by CPython once per successful `__getbuffer__`; `_view` is not touched.
    // SAFETY: nothing here dereferences `_view`; one call per counted export, so the
    // count never goes below zero.
    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        unexport(self.batch.get());
    }
}

#[pymethods]
impl RxBatch {
    /// Each packet's offset in the UMEM (of its first frame), as a read-only uint64
    /// array: `numpy.frombuffer(batch.offsets(), numpy.uint64)`. With `umem()`,
    /// packet i's bytes are `umem[offsets[i] : offsets[i] + lengths[i]]` when it is in
    /// one frame (see `Frame.nsegments`).
    fn offsets(slf: &Bound<'_, Self>) -> PacketArray {
        PacketArray {
            batch: slf.clone().unbind(),
            which: Numbers::Offsets,
        }
    }

    /// Each packet's length, as a read-only uint32 array (zero-copy; `lengths()` gives
    /// a list).
    fn lengths_array(slf: &Bound<'_, Self>) -> PacketArray {
        PacketArray {
            batch: slf.clone().unbind(),
            which: Numbers::Lengths,
        }
    }

    /// A read-only view of the whole UMEM to index with `offsets()`:
    /// `numpy.frombuffer(batch.umem(), numpy.uint8)`. Release it (del the arrays made
    /// from it) before releasing the batch.
    fn umem(slf: &Bound<'_, Self>) -> PyResult<UmemView> {
        slf.get().check_live_flag()?;
        Ok(UmemView {
            batch: slf.clone().unbind(),
        })
    }

    /// The `size` bytes at byte `offset` of every packet, end to end in one bytes
    /// object (len(batch) * size bytes; zeros where a packet is shorter): one field of
    /// every packet in one call, e.g. the UDP destination ports of IPv4 packets
    /// without options, `numpy.frombuffer(batch.field(36, 2), ">u2")`.
    fn field<'py>(
        &self,
        py: Python<'py>,
        offset: usize,
        size: usize,
    ) -> PyResult<Bound<'py, PyBytes>> {
        if size == 0 || size > 4096 {
            return Err(config_err(format!(
                "size={size}: read 1 to 4096 bytes of each packet"
            )));
        }
        let st = self.check_live()?;
        let f = frames(&st);
        let n = self.meta.lens.len();
        PyBytes::new_with(py, n * size, |out| {
            for (i, dst) in out.chunks_exact_mut(size).enumerate() {
                if let Some(p) = f.contiguous(i) {
                    let end = p.len().min(offset.saturating_add(size));
                    if offset < end {
                        dst[..end - offset].copy_from_slice(&p[offset..end]);
                    }
                    continue;
                }
                // A multi-buffer packet: walk its segments.
                let mut at = 0usize;
                for seg in f.segments(i) {
                    let (lo, hi) = (at, at + seg.len());
                    let (a, b) = (offset.max(lo), offset.saturating_add(size).min(hi));
                    if a < b {
                        dst[a - offset..b - offset].copy_from_slice(&seg[a - lo..b - lo]);
                    }
                    at = hi;
                }
            }
            Ok(())
        })
    }
}
