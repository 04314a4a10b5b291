//! [`Mapping`]: an owned memory mapping, the only place the crate calls mmap/munmap.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;

/// A memory mapping, unmapped on drop: the UMEM (anonymous, private) or one ring of an
/// AF_XDP socket (shared with the kernel).
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: a Mapping only owns the address range (unmapping it on drop); who may read or
// write the memory is decided by the types built on it (rings, UMEM frame ownership).
unsafe impl Send for Mapping {}
// SAFETY: as above; a Mapping itself gives no access to the memory.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// `len` bytes of zeroed, page-aligned, populated private memory (a UMEM), backed
    /// by transparent huge pages where the kernel gives them (`madvise` mode): each
    /// packet lies in its own 4 KiB frame, so with small pages every packet read
    /// would also be a TLB miss.
    pub fn anonymous(len: usize) -> io::Result<Self> {
        let m = Self::map(len, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0)?;
        // SAFETY: the range is exactly our fresh mapping; MADV_HUGEPAGE is a hint that
        // changes no contents (its failure, e.g. THP disabled, is harmless).
        unsafe {
            libc::madvise(m.ptr.as_ptr().cast(), m.len, libc::MADV_HUGEPAGE);
        }
        // Populate now, as MAP_POPULATE would have (after the advice, so that the
        // kernel can use huge pages): one write per 4 KiB page.
        let mut off = 0;
        while off < m.len {
            // SAFETY: off < len, inside our private, writable mapping that nothing else
            // references yet; writing the zero it already holds changes nothing.
            unsafe { m.ptr.as_ptr().add(off).write_volatile(0) };
            off += 4096;
        }
        Ok(m)
    }

    /// Maps `len` bytes of the ring the kernel created for socket `fd` at page offset
    /// `pgoff` (shared with the kernel).
    pub fn socket_ring(fd: BorrowedFd<'_>, len: usize, pgoff: libc::off_t) -> io::Result<Self> {
        Self::map(
            len,
            libc::MAP_SHARED | libc::MAP_POPULATE,
            fd.as_raw_fd(),
            pgoff,
        )
    }

    fn map(len: usize, flags: libc::c_int, fd: libc::c_int, off: libc::off_t) -> io::Result<Self> {
        if len == 0 {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        // SAFETY: no address hint, so the kernel picks a fresh page-aligned range that
        // overlaps nothing of ours; MAP_FAILED is checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                off,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr =
            NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Mapping { ptr, len })
    }

    /// The start of the mapping.
    #[inline]
    pub fn ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly what mmap returned; whatever points into the
        // mapping holds it (through an Arc) and is gone by now.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
