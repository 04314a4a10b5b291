//! Describing memory to CPython's buffer protocol: the one function that fills a
//! `Py_buffer`, for the zero-copy views of packets (writable) and of a batch's numbers
//! and UMEM (read-only).
#![allow(unsafe_code)]

use std::ffi::{c_int, CStr};

use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;

/// What a view lets its user do with the memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    ReadWrite,
    ReadOnly,
}

/// Fills `view` with a one-dimensional buffer of `count` items of `itemsize` bytes at
/// `ptr`, in struct-module `format`, owned by `owner` (which the view keeps alive). A
/// read-only buffer refuses a request for a writable one, naming what to do instead.
///
/// # Safety
/// `view` must be the Py_buffer CPython passed to `__getbuffer__`, and the memory must
/// stay valid as long as `owner` keeps it exported: unchanged for `Access::ReadOnly`;
/// for `Access::ReadWrite`, written by nobody else meanwhile (the kernel included).
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn fill(
    view: *mut ffi::Py_buffer,
    owner: Bound<'_, PyAny>,
    ptr: *const u8,
    count: usize,
    itemsize: usize,
    format: &'static CStr,
    access: Access,
    flags: c_int,
) -> PyResult<()> {
    if access == Access::ReadOnly && flags & ffi::PyBUF_WRITABLE == ffi::PyBUF_WRITABLE {
        return Err(PyBufferError::new_err(
            "this view is read-only: copy it (bytes(...), numpy.array(...)) to change it",
        ));
    }
    // The shape (one entry: the item count, kept in `internal`, which nothing else
    // uses) and the strides (the item size) point into the Py_buffer itself, which
    // CPython keeps until the release.
    // SAFETY: forwarded from the caller: view is ours to fill.
    unsafe {
        (*view).obj = owner.into_ptr();
        (*view).buf = ptr.cast_mut().cast();
        (*view).len = (count * itemsize) as ffi::Py_ssize_t;
        (*view).readonly = c_int::from(access == Access::ReadOnly);
        (*view).itemsize = itemsize as ffi::Py_ssize_t;
        (*view).format = if flags & ffi::PyBUF_FORMAT != 0 {
            format.as_ptr().cast_mut()
        } else {
            std::ptr::null_mut()
        };
        (*view).ndim = 1;
        (*view).internal = count as *mut std::ffi::c_void;
        (*view).shape = if flags & ffi::PyBUF_ND != 0 {
            std::ptr::addr_of_mut!((*view).internal).cast()
        } else {
            std::ptr::null_mut()
        };
        (*view).strides = if flags & ffi::PyBUF_STRIDES == ffi::PyBUF_STRIDES {
            std::ptr::addr_of_mut!((*view).itemsize)
        } else {
            std::ptr::null_mut()
        };
        (*view).suboffsets = std::ptr::null_mut();
    }
    Ok(())
}

/// [`fill`] for a buffer of `len` unsigned bytes (format "B").
///
/// # Safety
/// As for [`fill`].
pub(super) unsafe fn fill_bytes(
    view: *mut ffi::Py_buffer,
    owner: Bound<'_, PyAny>,
    ptr: *const u8,
    len: usize,
    access: Access,
    flags: c_int,
) -> PyResult<()> {
    // SAFETY: forwarded from the caller.
    unsafe { fill(view, owner, ptr, len, 1, c"B", access, flags) }
}
