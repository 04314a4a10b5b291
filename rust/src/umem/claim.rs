//! A socket's claim on UMEM frames, and [`RxFrames`], the safe view of received
//! packets.
#![allow(unsafe_code)]

use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::UmemArea;
use crate::error::Result;
use crate::sys::XdpDesc;

/// A socket's range of UMEM frames. While it lives, no other socket sharing the UMEM
/// can take those frames; it is given back when the socket and everything that still
/// reads its frames ([`RxFrames`]) are gone.
///
/// It is also the way home for frames: [`RxFrames`] dropped without being recycled
/// put their frames here, and so does another socket of the UMEM that sent one of this
/// socket's frames (zero-copy forwarding) once the kernel has completed it. The socket
/// takes them back on its next call.
pub struct FrameClaim {
    umem: Arc<UmemArea>,
    frames: (u32, u32),
    homecoming: Mutex<Homecoming>,
    coming_home: AtomicBool,
    /// The id of a peek whose [`RxFrames`] was dropped without being consumed.
    abandoned_peek: AtomicU64,
}

/// Frames on their way back to their socket.
#[derive(Debug, Default)]
pub(crate) struct Homecoming {
    /// Received frames the user held (from dropped [`RxFrames`]).
    pub held: Vec<u64>,
    /// Frames another socket sent, completed by the kernel.
    pub sent: Vec<u64>,
}

impl FrameClaim {
    /// Claims frames `frames.0..frames.1` of `umem`.
    pub fn new(umem: &Arc<UmemArea>, frames: (u32, u32)) -> Result<Arc<Self>> {
        umem.claim(frames, |_| FrameClaim {
            umem: Arc::clone(umem),
            frames,
            homecoming: Mutex::new(Homecoming::default()),
            coming_home: AtomicBool::new(false),
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

    fn send_home(&self, put: impl FnOnce(&mut Homecoming)) {
        let mut home = self.homecoming.lock().unwrap_or_else(|e| e.into_inner());
        put(&mut home);
        self.coming_home.store(true, Ordering::Release);
    }

    fn give_back(&self, descs: &[XdpDesc]) {
        if !descs.is_empty() {
            self.send_home(|h| h.held.extend(descs.iter().map(|d| d.addr)));
        }
    }

    /// Frames of this claim that another socket sent and the kernel completed.
    pub(crate) fn completed_elsewhere(&self, addrs: &[u64]) {
        if !addrs.is_empty() {
            self.send_home(|h| h.sent.extend_from_slice(addrs));
        }
    }

    /// Takes the frames on their way home (cheap when there are none).
    pub(crate) fn take_homecoming(&self) -> Option<Homecoming> {
        if !self.coming_home.load(Ordering::Acquire) {
            return None;
        }
        let mut home = self.homecoming.lock().unwrap_or_else(|e| e.into_inner());
        self.coming_home.store(false, Ordering::Release);
        Some(std::mem::take(&mut *home))
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

    /// What the transport checksum of packet `i` says (see [`crate::csum`]).
    pub fn checksum(&self, i: usize) -> crate::csum::L4Checksum {
        crate::csum::classify(self.packet(i))
    }

    /// Completes the partial checksums of packets `from..` in place; returns how many
    /// it completed.
    pub(crate) fn complete_checksums(&mut self, from: usize) -> u32 {
        let mut done = 0;
        for d in &self.descs[from..] {
            // SAFETY: as for packet(); &mut self means no slice this value handed out
            // is alive.
            let p = unsafe { self.claim.umem.slice_mut(d.addr, d.len) };
            done += crate::csum::complete_partial(p) as u32;
        }
        done
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
