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

use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{Error, ErrorKind, Result};
use crate::sys::{Mapping, XdpDesc};

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
    end <= size && (len == 0 || addr / fs == (end - 1) / fs)
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

impl Default for UmemConfig {
    fn default() -> Self {
        UmemConfig {
            frame_size: 4096,
            frame_count: 4096,
            headroom: 0,
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
    /// Frame index ranges claimed by sockets sharing this UMEM.
    claimed: Mutex<Vec<(u32, u32)>>,
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

    /// Reserves frames `start..end` for one socket: a frame belongs to one pool only.
    fn claim(&self, (start, end): (u32, u32)) -> Result<()> {
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
        if let Some(&(s, e)) = claimed.iter().find(|&&(s, e)| start < e && s < end) {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "frames=({start}, {end}) overlaps frames ({s}, {e}) that another socket \
                     of this UMEM uses: give each socket its own range"
                ),
            ));
        }
        claimed.push((start, end));
        Ok(())
    }

    /// Gives back a range taken with [`UmemArea::claim`].
    fn unclaim(&self, range: (u32, u32)) {
        let mut claimed = self.claimed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = claimed.iter().position(|&r| r == range) {
            claimed.swap_remove(i);
        }
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

/// A socket's range of UMEM frames. While it lives, no other socket sharing the UMEM
/// can take those frames; it is given back when the socket and everything that still
/// reads its frames ([`RxFrames`]) are gone.
///
/// It is also the way home for frames: [`RxFrames`] dropped without being recycled
/// put their frames here, and the socket takes them back on its next call.
pub struct FrameClaim {
    umem: Arc<UmemArea>,
    frames: (u32, u32),
    /// Frame addresses given back by dropped [`RxFrames`].
    returns: Mutex<Vec<u64>>,
    has_returns: AtomicBool,
    /// The id of a peek whose [`RxFrames`] was dropped without being consumed.
    abandoned_peek: AtomicU64,
}

impl FrameClaim {
    /// Claims frames `frames.0..frames.1` of `umem`.
    pub fn new(umem: Arc<UmemArea>, frames: (u32, u32)) -> Result<Self> {
        umem.claim(frames)?;
        Ok(FrameClaim {
            umem,
            frames,
            returns: Mutex::new(Vec::new()),
            has_returns: AtomicBool::new(false),
            abandoned_peek: AtomicU64::new(0),
        })
    }

    /// The UMEM the frames belong to.
    pub fn umem(&self) -> &Arc<UmemArea> {
        &self.umem
    }

    /// The claimed frame indices (`start..end`).
    pub fn frames(&self) -> (u32, u32) {
        self.frames
    }

    fn give_back(&self, descs: &[XdpDesc]) {
        if descs.is_empty() {
            return;
        }
        let mut returns = self.returns.lock().unwrap_or_else(|e| e.into_inner());
        returns.extend(descs.iter().map(|d| d.addr));
        self.has_returns.store(true, Ordering::Release);
    }

    /// Takes the addresses given back by dropped [`RxFrames`] (cheap when there are
    /// none).
    pub(crate) fn take_returns(&self) -> Vec<u64> {
        if !self.has_returns.load(Ordering::Acquire) {
            return Vec::new();
        }
        let mut returns = self.returns.lock().unwrap_or_else(|e| e.into_inner());
        self.has_returns.store(false, Ordering::Release);
        std::mem::take(&mut *returns)
    }

    /// Whether the peek `id` was abandoned (its [`RxFrames`] dropped unconsumed).
    pub(crate) fn peek_abandoned(&self, id: u64) -> bool {
        self.abandoned_peek.load(Ordering::Acquire) == id
    }
}

impl Drop for FrameClaim {
    fn drop(&mut self) {
        self.umem.unclaim(self.frames);
    }
}

/// Received packets whose frames the user holds: the kernel does not write them until
/// they are recycled ([`XskSocket::recycle`](crate::XskSocket::recycle)), so reading
/// them is safe. Only a socket's receive calls fill an `RxFrames`.
///
/// Dropping it without recycling is not a leak: the frames go home to their socket,
/// which takes them back on its next call.
pub struct RxFrames {
    claim: Arc<FrameClaim>,
    descs: Vec<XdpDesc>,
    /// Set while the descriptors are only peeked (still in the rx ring): the id of the
    /// peek, which only the matching consume may settle.
    peek: Option<u64>,
}

impl RxFrames {
    /// An empty set for frames of `claim`.
    pub(crate) fn new(claim: Arc<FrameClaim>, capacity: usize) -> Self {
        RxFrames {
            claim,
            descs: Vec::with_capacity(capacity),
            peek: None,
        }
    }

    /// Adds a descriptor the socket has checked to lie inside one of its frames, which
    /// the kernel handed over (or which is peeked, see `peek`).
    #[inline]
    pub(crate) fn push(&mut self, d: XdpDesc) {
        self.descs.push(d);
    }

    pub(crate) fn claim(&self) -> &Arc<FrameClaim> {
        &self.claim
    }

    /// Hands the descriptors to the caller (the socket recycling them).
    pub(crate) fn drain(&mut self) -> std::vec::Drain<'_, XdpDesc> {
        self.descs.drain(..)
    }

    /// Gives the frames back to their own socket (which takes them on its next call).
    pub(crate) fn send_home(&mut self) {
        self.claim.give_back(&self.descs);
        self.descs.clear();
    }

    pub(crate) fn peek_id(&self) -> Option<u64> {
        self.peek
    }

    pub(crate) fn set_peek(&mut self, id: Option<u64>) {
        self.peek = id;
    }

    /// Keeps the first `n` descriptors.
    pub(crate) fn truncate(&mut self, n: usize) {
        self.descs.truncate(n);
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.descs.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.descs.is_empty()
    }

    /// The descriptors (UMEM address and length of each packet).
    #[inline]
    pub fn descs(&self) -> &[XdpDesc] {
        &self.descs
    }

    /// The bytes of packet `i`.
    #[inline]
    pub fn packet(&self, i: usize) -> &[u8] {
        let d = self.descs[i];
        // SAFETY: the socket pushed only descriptors inside one of its frames, and
        // those frames are the user's (held, or peeked and not yet consumed) until they
        // leave this value through drain(), which needs &mut self. The claim keeps the
        // UMEM mapped.
        unsafe { self.claim.umem.slice(d.addr, d.len) }
    }

    /// Where packet `i` is, for exporting it through a buffer protocol: valid, and not
    /// written by the kernel, as long as this value holds the frame.
    #[inline]
    pub fn packet_ptr(&self, i: usize) -> (NonNull<u8>, usize) {
        let p = self.packet(i);
        (NonNull::from(p).cast(), p.len())
    }

    /// Iterates over the packets.
    pub fn packets(&self) -> impl Iterator<Item = &[u8]> + '_ {
        (0..self.descs.len()).map(move |i| self.packet(i))
    }
}

impl Drop for RxFrames {
    fn drop(&mut self) {
        match self.peek {
            // Peeked entries are still in the rx ring: nothing to give back, but the
            // socket may stop waiting for this peek to be consumed.
            Some(id) => self.claim.abandoned_peek.store(id, Ordering::Release),
            None => self.claim.give_back(&self.descs),
        }
    }
}

impl std::fmt::Debug for RxFrames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RxFrames")
            .field("descs", &self.descs)
            .field("peek", &self.peek)
            .finish()
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
