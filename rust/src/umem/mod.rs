//! The UMEM: the packet memory an AF_XDP socket shares with the kernel.
//!
//! A UMEM is one page-aligned area split into equal frames (2048 or 4096 bytes in the
//! aligned mode used here). The kernel writes received packets into frames the user
//! offered on the fill ring and reads packets to send from frames named in tx
//! descriptors. A frame address is its byte offset from the start of the area.
//!
//! At any time each frame belongs to exactly one party: the user's free pool, the fill
//! ring, the kernel, an rx batch the user holds, the tx ring, or the completion ring.
//! [`FramePool`] is the user's free pool: a LIFO stack, so the frame handed out next is
//! the one most recently used and likely still in cache.
#![allow(unsafe_code)]

use std::sync::{Arc, Mutex, Weak};

use crate::error::{Error, ErrorKind, Result};
use crate::sys::Mapping;

mod claim;

pub use claim::{FrameClaim, RxFrames};

/// Frame sizes the kernel accepts in aligned mode.
pub const FRAME_SIZES: [u32; 2] = [2048, 4096];

/// Whether a descriptor `(addr, len)` lies inside one frame of a UMEM with this
/// geometry: what the library checks before the kernel sees a descriptor.
#[inline]
pub fn desc_in_bounds(config: &UmemConfig, addr: u64, len: u32) -> bool {
    let fs = config.frame_size as u64;
    if fs == 0 {
        return false;
    }
    let size = fs * config.frame_count as u64;
    let end = addr.saturating_add(len as u64);
    if end > size {
        return false;
    }
    if len == 0 {
        return true;
    }
    // Frame sizes are powers of two (FRAME_SIZES): a shift, not a division, on this
    // per-descriptor path.
    if fs.is_power_of_two() {
        let shift = fs.trailing_zeros();
        addr >> shift == (end - 1) >> shift
    } else {
        addr / fs == (end - 1) / fs
    }
}

/// The frame geometry of a UMEM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UmemConfig {
    /// Bytes per frame: 2048 or 4096.
    pub frame_size: u32,
    /// Number of frames.
    pub frame_count: u32,
    /// Bytes the kernel leaves free before each received packet (for user headers).
    pub headroom: u32,
}

/// The default frame size, frame count and headroom (see `socket::config::defaults`).
pub const DEFAULT_FRAME_SIZE: u32 = 4096;
pub const DEFAULT_FRAME_COUNT: u32 = 4096;
pub const DEFAULT_HEADROOM: u32 = 0;

impl Default for UmemConfig {
    fn default() -> Self {
        UmemConfig {
            frame_size: DEFAULT_FRAME_SIZE,
            frame_count: DEFAULT_FRAME_COUNT,
            headroom: DEFAULT_HEADROOM,
        }
    }
}

/// The error for a frame size the kernel does not accept.
pub fn frame_size_error(value: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::InvalidConfig,
        format!("frame_size={value} is not allowed: use 2048 or 4096 (aligned UMEM frames)"),
    )
}

impl UmemConfig {
    pub fn validate(&self) -> Result<()> {
        if !FRAME_SIZES.contains(&self.frame_size) {
            return Err(frame_size_error(self.frame_size));
        }
        if self.frame_count == 0 || self.frame_count > (1 << 22) {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "frame_count={} is out of range: use 1 to {} frames",
                    self.frame_count,
                    1u32 << 22
                ),
            ));
        }
        // The kernel needs room for its own XDP headroom (256 bytes) and a minimal
        // packet after the user's headroom.
        let max_headroom = self.frame_size / 2;
        if self.headroom > max_headroom {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "headroom={} is too large for frame_size={}: use at most {max_headroom}",
                    self.headroom, self.frame_size
                ),
            ));
        }
        Ok(())
    }

    /// Size of the area in bytes.
    pub fn len(&self) -> usize {
        self.frame_size as usize * self.frame_count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.frame_count == 0
    }
}

/// The mmapped packet area. It stays mapped as long as anything holds it: a socket,
/// or an rx batch whose frames a user is still reading after the socket closed.
pub struct UmemArea {
    mapping: Mapping,
    config: UmemConfig,
    /// The frame ranges sockets sharing this UMEM have claimed.
    claimed: Mutex<Vec<Claimed>>,
}

/// One socket's range of frames, and the way to its claim.
struct Claimed {
    range: (u32, u32),
    claim: Weak<FrameClaim>,
}

impl UmemArea {
    /// Maps a zeroed, page-aligned area for `config`.
    pub fn new(config: UmemConfig) -> Result<Self> {
        config.validate()?;
        let len = config.len();
        let mapping = Mapping::anonymous(len).map_err(|e| {
            Error::os(
                format!(
                    "mapping a UMEM of {len} bytes ({} frames of {})",
                    config.frame_count, config.frame_size
                ),
                e,
            )
        })?;
        Ok(UmemArea {
            mapping,
            config,
            claimed: Mutex::new(Vec::new()),
        })
    }

    /// Reserves frames `start..end` for the claim `make` builds: a frame belongs to
    /// one socket only.
    fn claim(
        self: &Arc<Self>,
        (start, end): (u32, u32),
        make: impl FnOnce(&Weak<FrameClaim>) -> FrameClaim,
    ) -> Result<Arc<FrameClaim>> {
        if start >= end || end > self.config.frame_count {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "frames=({start}, {end}) is not a range of this UMEM's {} frames: use \
                     0 <= start < end <= {}",
                    self.config.frame_count, self.config.frame_count
                ),
            ));
        }
        let mut claimed = self.claimed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = claimed
            .iter()
            .find(|c| start < c.range.1 && c.range.0 < end)
        {
            let (s, e) = c.range;
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "frames=({start}, {end}) overlaps frames ({s}, {e}) that another socket \
                     of this UMEM uses: give each socket its own range"
                ),
            ));
        }
        let claim = Arc::new_cyclic(make);
        claimed.push(Claimed {
            range: (start, end),
            claim: Arc::downgrade(&claim),
        });
        Ok(claim)
    }

    /// Gives back a range taken with [`UmemArea::claim`].
    fn unclaim(&self, range: (u32, u32)) {
        let mut claimed = self.claimed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = claimed.iter().position(|c| c.range == range) {
            claimed.swap_remove(i);
        }
    }

    /// The claim that owns the frame at `addr`, if a live one does.
    pub(crate) fn owner_of(&self, addr: u64) -> Option<Arc<FrameClaim>> {
        let frame = (addr / self.config.frame_size as u64).min(u32::MAX as u64) as u32;
        let claimed = self.claimed.lock().unwrap_or_else(|e| e.into_inner());
        claimed
            .iter()
            .find(|c| c.range.0 <= frame && frame < c.range.1)
            .and_then(|c| c.claim.upgrade())
    }

    pub fn config(&self) -> UmemConfig {
        self.config
    }

    /// The start of the area (for `XDP_UMEM_REG`).
    pub fn as_ptr(&self) -> *mut u8 {
        self.mapping.ptr().as_ptr()
    }

    pub fn len(&self) -> usize {
        self.mapping.len()
    }

    pub fn is_empty(&self) -> bool {
        self.mapping.is_empty()
    }

    /// Whether `[addr, addr + len)` lies inside one frame of this UMEM.
    #[inline]
    pub fn contains(&self, addr: u64, len: u32) -> bool {
        desc_in_bounds(&self.config, addr, len)
    }

    /// The frame base address of any address inside the frame.
    #[inline]
    pub fn frame_of(&self, addr: u64) -> u64 {
        addr & !(self.config.frame_size as u64 - 1)
    }

    /// A raw pointer to byte `addr` of the area.
    ///
    /// # Safety
    /// `addr` must be inside the area.
    #[inline]
    unsafe fn at(&self, addr: u64) -> *mut u8 {
        // SAFETY: the caller keeps addr inside the mapping.
        unsafe { self.as_ptr().add(addr as usize) }
    }

    /// The bytes at `[addr, addr + len)`.
    ///
    /// # Safety
    /// The range must be inside one frame ([`UmemArea::contains`]) and the caller must
    /// own that frame (the kernel is not writing it) for the lifetime of the slice.
    #[inline]
    pub(crate) unsafe fn slice(&self, addr: u64, len: u32) -> &[u8] {
        // SAFETY: inside the mapping and owned by the caller (see above).
        unsafe { std::slice::from_raw_parts(self.at(addr), len as usize) }
    }

    /// The writable bytes at `[addr, addr + len)`.
    ///
    /// # Safety
    /// As for [`UmemArea::slice`], and no other reference to the range may exist.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slice_mut(&self, addr: u64, len: u32) -> &mut [u8] {
        // SAFETY: inside the mapping, owned by the caller and not aliased (see above).
        unsafe { std::slice::from_raw_parts_mut(self.at(addr), len as usize) }
    }
}

/// The user's free frames: a LIFO stack of frame base addresses.
#[derive(Debug, Default)]
pub struct FramePool {
    free: Vec<u64>,
}

impl FramePool {
    // Frames are pushed in reverse so the lowest addresses are handed out first.

    /// A pool holding every frame of a UMEM with this geometry.
    pub fn full(config: &UmemConfig) -> Self {
        Self::range(config, 0, config.frame_count)
    }

    /// A pool holding frames `start..end` of a UMEM with this geometry.
    pub fn range(config: &UmemConfig, start: u32, end: u32) -> Self {
        let free = (start as u64..end as u64)
            .rev()
            .map(|i| i * config.frame_size as u64)
            .collect();
        FramePool { free }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.free.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.free.is_empty()
    }

    #[inline]
    pub fn pop(&mut self) -> Option<u64> {
        self.free.pop()
    }

    #[inline]
    pub fn push(&mut self, frame: u64) {
        self.free.push(frame);
    }

    /// Makes room for `n` more frames without reallocating on the way.
    #[inline]
    pub fn reserve(&mut self, n: usize) {
        self.free.reserve(n);
    }

    /// Takes the `n` frames `pop` would return next, in that order (fewer when the
    /// pool has fewer).
    #[inline]
    pub fn take(&mut self, n: usize) -> impl Iterator<Item = u64> + '_ {
        let from = self.free.len().saturating_sub(n);
        self.free.drain(from..).rev()
    }

    /// The free frames, the next one to be handed out last.
    #[cfg(test)]
    pub(crate) fn as_slice(&self) -> &[u64] {
        &self.free
    }

    /// Takes `frame` out of the pool if it is there (slow: for tests and recovery).
    pub fn remove(&mut self, frame: u64) -> bool {
        match self.free.iter().position(|&f| f == frame) {
            Some(i) => {
                self.free.remove(i);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_validation_names_the_value() {
        let bad = UmemConfig {
            frame_size: 3000,
            ..Default::default()
        };
        let err = bad.validate().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
        assert!(err.message().contains("frame_size=3000"), "{err}");
        let bad = UmemConfig {
            frame_count: 0,
            ..Default::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .message()
            .contains("frame_count=0"));
    }

    #[test]
    fn pool_is_lifo_and_complete() {
        let cfg = UmemConfig {
            frame_size: 2048,
            frame_count: 4,
            headroom: 0,
        };
        let mut pool = FramePool::full(&cfg);
        assert_eq!(pool.pop(), Some(0));
        assert_eq!(pool.pop(), Some(2048));
        pool.push(0);
        assert_eq!(pool.pop(), Some(0));
        assert_eq!(pool.len(), 2);
    }

    #[test]
    fn bounds() {
        let area = UmemArea::new(UmemConfig {
            frame_size: 2048,
            frame_count: 2,
            headroom: 0,
        })
        .unwrap();
        assert!(area.contains(0, 2048));
        assert!(!area.contains(1, 2048), "crosses into the next frame");
        assert!(area.contains(2048 + 100, 1948));
        assert!(!area.contains(4096, 1), "past the end");
        assert!(!area.contains(u64::MAX - 1, 10));
        assert_eq!(area.frame_of(2048 + 300), 2048);
    }
}
