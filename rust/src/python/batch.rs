//! Received packets in Python: [`RxBatch`] (one `recv()`), [`Frame`] (one packet, a
//! zero-copy buffer over its UMEM frame) and the buffer protocol that exports it.
//!
//! The rules: a batch owns its frames until it is released (explicitly, by leaving its
//! `with` block, or when it is garbage-collected); releasing it while a memoryview of
//! one of its frames is alive raises BatchInUseError, and touching a frame after
//! release raises BatchReleasedError. No view ever reads a frame the kernel reuses.
#![allow(unsafe_code)]

use std::ffi::c_int;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use pyo3::exceptions::{PyIndexError, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use super::args::u32_buffer;
use super::buffer::{self, Access::ReadWrite};
use super::core::{lock, Core};
use super::errors::{config_err, BatchInUseError, BatchReleasedError};
use crate::umem::RxFrames;

#[derive(Default)]
pub(super) struct BatchState {
    /// The frames, until the batch is released.
    pub(super) frames: Option<RxFrames>,
    /// Live buffer exports (memoryviews) of this batch's frames.
    pub(super) exports: usize,
}

/// Where the packets are and how long they are, one entry per packet (kept after
/// release, for len() and repr(); exported as arrays by the vector API).
#[derive(Debug, Default)]
pub(super) struct PacketMeta {
    /// UMEM address of each packet's first frame.
    pub(super) addrs: Vec<u64>,
    /// All its bytes.
    pub(super) lens: Vec<u32>,
    /// Frames it spans (more than one: a multi-buffer packet).
    pub(super) segments: Vec<u32>,
}

/// Packets received by one `recv()` call. Index it (or iterate) for `Frame` objects;
/// release it (or leave its `with` block) to give the frames back to the kernel.
#[pyclass(frozen, sequence, module = "afxdp_rs._afxdp")]
pub struct RxBatch {
    core: Arc<Core>,
    pub(super) meta: PacketMeta,
    pub(super) state: Mutex<BatchState>,
    /// False once released: what the per-frame calls that do not read packet bytes
    /// check (the bytes themselves are only reached under `state`'s lock).
    live: AtomicBool,
    /// Realtime minus monotonic clock, read once per batch when a timestamp is first
    /// asked for: every timestamp of the batch is converted alike.
    clock_offset: std::sync::OnceLock<i128>,
}

impl RxBatch {
    pub(super) fn new(core: Arc<Core>, frames: RxFrames) -> Self {
        RxBatch {
            core,
            meta: {
                let n = frames.len();
                let mut m = PacketMeta {
                    addrs: Vec::with_capacity(n),
                    lens: Vec::with_capacity(n),
                    segments: Vec::with_capacity(n),
                };
                for i in 0..n {
                    let descs = frames.packet_descs(i);
                    m.addrs.push(descs[0].addr);
                    m.lens.push(descs.iter().map(|d| d.len).sum());
                    m.segments.push(descs.len() as u32);
                }
                m
            },
            clock_offset: std::sync::OnceLock::new(),
            state: Mutex::new(BatchState {
                frames: Some(frames),
                exports: 0,
            }),
            live: AtomicBool::new(true),
        }
    }

    /// Fails once the batch is released (for calls that read no packet bytes).
    #[inline]
    pub(super) fn check_live_flag(&self) -> PyResult<()> {
        if self.live.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(released_error())
        }
    }

    /// The state, if the batch was not released; the guard keeps it so.
    pub(super) fn check_live(&self) -> PyResult<MutexGuard<'_, BatchState>> {
        let st = lock(&self.state);
        if st.frames.is_none() {
            return Err(released_error());
        }
        Ok(st)
    }

    fn index(&self, i: isize) -> PyResult<usize> {
        let n = self.meta.lens.len() as isize;
        let j = if i < 0 { i + n } else { i };
        if j < 0 || j >= n {
            return Err(PyIndexError::new_err(format!(
                "frame index {i} out of range for a batch of {n}"
            )));
        }
        Ok(j as usize)
    }

    /// Gives the frames back, unless a view of one is alive.
    pub(super) fn release_frames(&self) -> PyResult<()> {
        let mut st = lock(&self.state);
        if st.exports > 0 {
            return Err(BatchInUseError::new_err(format!(
                "{} memoryview(s) of this batch's frames are still alive: release them \
                 (memoryview.release() or del) before releasing the batch, so that no view \
                 reads a frame the kernel reuses",
                st.exports
            )));
        }
        if let Some(frames) = st.frames.take() {
            self.live.store(false, Ordering::Release);
            self.core.give_back(frames);
        }
        Ok(())
    }
}

impl RxBatch {
    fn clock_offset(&self) -> i128 {
        *self
            .clock_offset
            .get_or_init(crate::sys::realtime_offset_ns)
    }
}

fn released_error() -> PyErr {
    BatchReleasedError::new_err(
        "this batch was released: its frames went back to the kernel and may hold other \
         packets now; copy data (bytes(frame)) before releasing",
    )
}

/// The frames of a live batch (its state guard `st`).
pub(super) fn frames<'a>(st: &'a MutexGuard<'_, BatchState>) -> &'a RxFrames {
    st.frames.as_ref().expect("checked live under this guard")
}

/// A monotonic timestamp (ns) as wall-clock seconds, given realtime - monotonic.
fn wall_seconds(mono_ns: u64, offset_ns: i128) -> f64 {
    (mono_ns as i128 + offset_ns) as f64 / 1e9
}

/// Packet `i` of a live batch as bytes (its segments joined).
fn packet_bytes<'py>(
    py: Python<'py>,
    st: &MutexGuard<'_, BatchState>,
    i: usize,
    len: usize,
) -> PyResult<Bound<'py, PyBytes>> {
    let f = frames(st);
    if let Some(p) = f.contiguous(i) {
        return Ok(PyBytes::new(py, p));
    }
    PyBytes::new_with(py, len, |out| {
        let mut off = 0;
        for seg in f.segments(i) {
            out[off..off + seg.len()].copy_from_slice(seg);
            off += seg.len();
        }
        Ok(())
    })
}

#[pymethods]
impl RxBatch {
    fn __len__(&self) -> usize {
        self.meta.lens.len()
    }

    fn __getitem__(slf: &Bound<'_, Self>, i: isize) -> PyResult<Frame> {
        let this = slf.get();
        let index = this.index(i)?;
        this.check_live_flag()?;
        Ok(Frame {
            batch: slf.clone().unbind(),
            index,
        })
    }

    /// The frames, made in one go (no call into the extension per frame while the
    /// loop runs). Iterating a released batch raises; a frame taken from an iterator
    /// made before the release raises when touched.
    fn __iter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let this = slf.get();
        this.check_live_flag()?;
        let py = slf.py();
        let frames = (0..this.meta.lens.len())
            .map(|index| {
                Bound::new(
                    py,
                    Frame {
                        batch: slf.clone().unbind(),
                        index,
                    },
                )
            })
            .collect::<PyResult<Vec<_>>>()?;
        Ok(PyTuple::new(py, frames)?.into_any().try_iter()?.into_any())
    }

    /// The length of each packet.
    fn lengths(&self) -> Vec<u32> {
        self.meta.lens.clone()
    }

    /// Copies the packets end to end into the writable buffer `data` and their lengths
    /// into `lengths` (a writable uint32 buffer with room for len(batch) entries), e.g.
    /// numpy arrays. Returns the bytes written.
    fn copy_into(&self, data: &Bound<'_, PyAny>, lengths: &Bound<'_, PyAny>) -> PyResult<usize> {
        // Get the buffers before locking the batch: `data` may be one of its frames.
        let out = pyo3::buffer::PyBuffer::<u8>::get(data)?;
        let lens = u32_buffer(lengths)?;
        let st = self.check_live()?;
        if out.readonly() || lens.readonly() || !out.is_c_contiguous() || !lens.is_c_contiguous() {
            return Err(PyTypeError::new_err(
                "data and lengths must be writable, contiguous buffers",
            ));
        }
        let total: usize = self.meta.lens.iter().map(|&l| l as usize).sum();
        if out.len_bytes() < total || lens.item_count() < self.meta.lens.len() {
            return Err(config_err(format!(
                "copy_into needs {total} bytes of data and {} lengths; got {} and {}",
                self.meta.lens.len(),
                out.len_bytes(),
                lens.item_count()
            )));
        }
        // SAFETY: both are writable, contiguous exports checked above, large enough,
        // and alive for this call; we hold the GIL, so no Python code runs meanwhile.
        let (dst, lst) = unsafe {
            (
                std::slice::from_raw_parts_mut(out.buf_ptr() as *mut u8, out.len_bytes()),
                std::slice::from_raw_parts_mut(lens.buf_ptr() as *mut u32, lens.item_count()),
            )
        };
        let mut off = 0;
        let f = frames(&st);
        for (i, &len) in self.meta.lens.iter().enumerate() {
            for seg in f.segments(i) {
                dst[off..off + seg.len()].copy_from_slice(seg);
                off += seg.len();
            }
            lst[i] = len;
        }
        Ok(off)
    }

    /// What each packet's TCP/UDP checksum says: "complete", "partial" (left unfinished
    /// by a sender that offloads checksums), "wrong", "absent" (UDP without one) or
    /// "not_applicable" (not TCP/UDP, a fragment). Reads every byte: a check, not free.
    fn checksums(&self) -> PyResult<Vec<&'static str>> {
        let st = self.check_live()?;
        let f = frames(&st);
        Ok((0..f.len()).map(|i| f.checksum(i).as_str()).collect())
    }

    /// When each packet reached XDP, as seconds since the epoch (time.time()'s clock),
    /// or None for each when the socket was opened without timestamps=True.
    fn timestamps(&self) -> PyResult<Vec<Option<f64>>> {
        let st = self.check_live()?;
        let f = frames(&st);
        let offset = self.clock_offset();
        Ok((0..f.len())
            .map(|i| f.timestamp(i).map(|t| wall_seconds(t, offset)))
            .collect())
    }

    /// Copies every packet out as a list of bytes.
    fn to_list<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let st = self.check_live()?;
        let items = (0..self.meta.lens.len())
            .map(|i| packet_bytes(py, &st, i, self.meta.lens[i] as usize))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    #[getter]
    fn released(&self) -> bool {
        lock(&self.state).frames.is_none()
    }

    /// Gives the frames back to the kernel (fill ring). Raises BatchInUseError while
    /// a memoryview of one of its frames is alive. Releasing twice is allowed.
    fn release(&self) -> PyResult<()> {
        self.release_frames()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.release()?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!(
            "<RxBatch {} packets{}>",
            self.meta.lens.len(),
            if self.released() { " released" } else { "" }
        )
    }
}

impl Drop for RxBatch {
    fn drop(&mut self) {
        // Dropped without release(): the frames still go back (no view can be alive:
        // each holds a reference to the batch).
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        self.live.store(false, Ordering::Release);
        if let Some(frames) = st.frames.take() {
            self.core.give_back(frames);
        }
    }
}

/// One received packet: a zero-copy, writable buffer over its UMEM frame. Use
/// `memoryview(frame)`, `bytes(frame)` or anything that takes a buffer. Any use after
/// its batch was released raises BatchReleasedError.
#[pyclass(frozen, module = "afxdp_rs._afxdp")]
pub struct Frame {
    pub(super) batch: Py<RxBatch>,
    pub(super) index: usize,
}

/// Exports segment `seg` of packet `index` of `batch` into `view` as a writable byte
/// buffer owned by `owner`: counts the export (release() refuses while any is
/// counted), or raises when the batch was released.
///
/// # Safety
/// `view` must be the Py_buffer CPython passed to `__getbuffer__`, and `owner` must
/// hold `batch` (so the view keeps the batch, its frames and the UMEM alive).
unsafe fn export_bytes(
    view: *mut ffi::Py_buffer,
    owner: Bound<'_, PyAny>,
    batch: &RxBatch,
    index: usize,
    seg: usize,
    flags: c_int,
) -> PyResult<()> {
    let (ptr, len) = {
        let mut st = batch.check_live()?;
        let span = frames(&st).segment_ptr(index, seg);
        st.exports += 1;
        span
    };
    // SAFETY: the bytes are in a frame this batch owns, which release() keeps (and the
    // kernel does not touch) while the export is counted; view and owner are as the
    // caller guarantees.
    let r = unsafe { buffer::fill_bytes(view, owner, ptr.as_ptr(), len, ReadWrite, flags) };
    if r.is_err() {
        unexport(batch);
    }
    r
}

pub(super) fn unexport(batch: &RxBatch) {
    let mut st = lock(&batch.state);
    st.exports = st.exports.saturating_sub(1);
}

#[pymethods]
impl Frame {
    fn __len__(&self) -> PyResult<usize> {
        let batch = self.batch.get();
        batch.check_live_flag()?;
        Ok(batch.meta.lens[self.index] as usize)
    }

    fn __bytes__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let batch = self.batch.get();
        let st = batch.check_live()?;
        packet_bytes(py, &st, self.index, batch.meta.lens[self.index] as usize)
    }

    /// What the packet's TCP/UDP checksum says: "complete", "partial", "wrong",
    /// "absent" or "not_applicable" (see RxBatch.checksums).
    #[getter]
    fn checksum(&self) -> PyResult<&'static str> {
        let batch = self.batch.get();
        let st = batch.check_live()?;
        Ok(frames(&st).checksum(self.index).as_str())
    }

    /// When the packet reached XDP, as seconds since the epoch (time.time()'s clock), or
    /// None when the socket was opened without timestamps=True.
    #[getter]
    fn timestamp(&self) -> PyResult<Option<f64>> {
        let batch = self.batch.get();
        let st = batch.check_live()?;
        Ok(frames(&st)
            .timestamp(self.index)
            .map(|t| wall_seconds(t, batch.clock_offset())))
    }

    /// Offset of the packet (of its first frame) in the UMEM.
    #[getter]
    fn addr(&self) -> u64 {
        self.batch.get().meta.addrs[self.index]
    }

    /// How many frames the packet spans: 1, or more for a multi-buffer packet (jumbo
    /// frames), whose bytes are read with `segments()` or `bytes(frame)`.
    #[getter]
    fn nsegments(&self) -> u32 {
        self.batch.get().meta.segments[self.index]
    }

    /// Zero-copy views of the packet's segments, one per frame, in order (one for an
    /// ordinary packet). The same rules as for memoryview(frame): release them before
    /// the batch.
    fn segments<'py>(slf: &Bound<'py, Self>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let this = slf.get();
        let n = this.batch.get().meta.segments[this.index] as usize;
        (0..n)
            .map(|seg| {
                let s = Bound::new(
                    slf.py(),
                    Segment {
                        batch: this.batch.clone_ref(slf.py()),
                        index: this.index,
                        seg,
                    },
                )?;
                Ok(pyo3::types::PyMemoryView::from(s.as_any())?.into_any())
            })
            .collect()
    }

    /// The buffer protocol (memoryview(frame)), for a packet in one frame.
    ///
    /// # Safety
    /// Called by CPython with `view` pointing at a Py_buffer it owns, to be filled.
    // SAFETY: CPython calls this only through the buffer protocol, with `view` a
    // Py_buffer it owns and lends for this call; the one unsafe call inside
    // (export_bytes) states why its use of `view` and the frame is sound.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let this = slf.get();
        let batch = this.batch.get();
        let n = batch.meta.segments[this.index];
        if n > 1 {
            return Err(pyo3::exceptions::PyBufferError::new_err(format!(
                "this packet spans {n} frames (multi-buffer): read it with \
                 frame.segments() (zero-copy views of each) or bytes(frame)"
            )));
        }
        // SAFETY: view is the Py_buffer CPython gave us to fill; the owner is this
        // Frame, which holds the batch.
        unsafe { export_bytes(view, slf.clone().into_any(), batch, this.index, 0, flags) }
    }

    /// # Safety
    /// Called by CPython once per successful `__getbuffer__`; `_view` is not touched.
    // SAFETY: nothing here dereferences `_view`; CPython calls this once for each
    // export that __getbuffer__ counted, so the count it lowers never goes below zero.
    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        unexport(self.batch.get());
    }

    fn __repr__(&self) -> String {
        let batch = self.batch.get();
        let (addr, len, segments) = (
            batch.meta.addrs[self.index],
            batch.meta.lens[self.index],
            batch.meta.segments[self.index],
        );
        let segs = if segments > 1 {
            format!(" segments={segments}")
        } else {
            String::new()
        };
        let released = if batch.released() { " released" } else { "" };
        format!("<Frame addr={addr} len={len}{segs}{released}>")
    }
}

/// One frame of a multi-buffer packet: a zero-copy buffer, with the same rules as a
/// Frame (made by Frame.segments()).
#[pyclass(frozen, module = "afxdp_rs._afxdp")]
pub struct Segment {
    batch: Py<RxBatch>,
    index: usize,
    seg: usize,
}

#[pymethods]
impl Segment {
    /// The buffer protocol.
    ///
    /// # Safety
    /// Called by CPython with `view` pointing at a Py_buffer it owns, to be filled.
    // SAFETY: as for Frame.__getbuffer__: `view` is CPython's, lent for this call; the
    // unsafe call inside (export_bytes) states why its use is sound.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let this = slf.get();
        let owner = slf.clone().into_any();
        // SAFETY: view is the Py_buffer CPython gave us to fill; the owner is this
        // Segment, which holds the batch.
        unsafe { export_bytes(view, owner, this.batch.get(), this.index, this.seg, flags) }
    }

    /// # Safety
    /// Called by CPython once per successful `__getbuffer__`; `_view` is not touched.
    // SAFETY: nothing here dereferences `_view`; one call per counted export, so the
    // count never goes below zero.
    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        unexport(self.batch.get());
    }
}
