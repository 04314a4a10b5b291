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
    /// Where in `descs` each packet starts: a multi-buffer packet spans several
    /// descriptors (frames).
    starts: Vec<u32>,
    /// Set while the descriptors are only peeked (still in the rx ring): the id of the
    /// peek, which only the matching consume may settle.
    peek: Option<u64>,
    /// The program puts a timestamp before each packet.
    timestamps: bool,
}

impl RxFrames {
    /// An empty set for frames of `claim`.
    pub(crate) fn new(claim: Arc<FrameClaim>, capacity: usize, timestamps: bool) -> Self {
        RxFrames {
            claim,
            descs: Vec::with_capacity(capacity),
            starts: Vec::with_capacity(capacity),
            peek: None,
            timestamps,
        }
    }

    /// Adds a packet whose descriptors the socket has checked to lie inside its
    /// frames, which the kernel handed over (or which are peeked, see `peek`).
    /// Adds a packet in one frame (checked as for [`RxFrames::push_packet`]).
    #[inline]
    pub(crate) fn push_frame(&mut self, d: XdpDesc) {
        self.starts.push(self.descs.len() as u32);
        self.descs.push(d);
    }

    /// Appends `k` descriptors written by `fill` (not yet packets: see
    /// [`RxFrames::keep_frames`]); returns where they start.
    #[inline]
    pub(crate) fn append_descs(&mut self, k: usize, fill: impl FnOnce(&mut [XdpDesc])) -> usize {
        let base = self.descs.len();
        self.descs.resize(base + k, XdpDesc::default());
        fill(&mut self.descs[base..]);
        base
    }

    /// Of the descriptors appended at `base`, keeps the first `k` as one-frame packets
    /// (checked as for [`RxFrames::push_packet`]) and drops the rest.
    #[inline]
    pub(crate) fn keep_frames(&mut self, base: usize, k: usize) {
        self.descs.truncate(base + k);
        self.starts.extend(base as u32..(base + k) as u32);
    }

    #[inline]
    pub(crate) fn push_packet(&mut self, descs: impl IntoIterator<Item = XdpDesc>) {
        self.starts.push(self.descs.len() as u32);
        self.descs.extend(descs);
    }

    pub(crate) fn claim(&self) -> &Arc<FrameClaim> {
        &self.claim
    }

    /// Hands the descriptors to the caller (the socket recycling them).
    pub(crate) fn drain(&mut self) -> std::vec::Drain<'_, XdpDesc> {
        self.starts.clear();
        self.descs.drain(..)
    }

    /// Gives the frames back to their own socket (which takes them on its next call).
    pub(crate) fn send_home(&mut self) {
        self.claim.give_back(&self.descs);
        self.descs.clear();
        self.starts.clear();
    }

    pub(crate) fn peek_id(&self) -> Option<u64> {
        self.peek
    }

    pub(crate) fn set_peek(&mut self, id: Option<u64>) {
        self.peek = id;
    }

    /// Forgets every packet (only for peeked ones, which are still in the ring).
    pub(crate) fn clear_peeked(&mut self) {
        debug_assert!(self.peek.is_some());
        self.descs.clear();
        self.starts.clear();
    }

    /// How many packets.
    #[inline]
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Every descriptor (UMEM address and length of each frame), packet after packet.
    #[inline]
    pub fn descs(&self) -> &[XdpDesc] {
        &self.descs
    }

    /// The descriptors of packet `i`: one, or several for a multi-buffer packet.
    #[inline]
    pub fn packet_descs(&self, i: usize) -> &[XdpDesc] {
        let start = self.starts[i] as usize;
        let end = self
            .starts
            .get(i + 1)
            .map_or(self.descs.len(), |&e| e as usize);
        &self.descs[start..end]
    }

    /// The length of packet `i` (all its segments).
    #[inline]
    pub fn packet_len(&self, i: usize) -> usize {
        self.packet_descs(i).iter().map(|d| d.len as usize).sum()
    }

    fn slice(&self, d: &XdpDesc) -> &[u8] {
        // SAFETY: the socket pushed only descriptors inside its frames, which are the
        // user's (held, or peeked and not consumed) until drain(), which needs &mut
        // self, takes them from this value; the claim keeps the UMEM mapped.
        unsafe { self.claim.umem.slice(d.addr, d.len) }
    }

    /// The segments of packet `i`, in order: one frame each.
    pub fn segments(&self, i: usize) -> impl Iterator<Item = &[u8]> + '_ {
        self.packet_descs(i).iter().map(move |d| self.slice(d))
    }

    /// When packet `i` reached XDP (CLOCK_MONOTONIC nanoseconds), if the socket asked
    /// for timestamps (`SocketConfig::timestamps`): the program puts it in the packet's
    /// metadata, the 8 bytes before it.
    pub fn timestamp(&self, i: usize) -> Option<u64> {
        if !self.timestamps {
            return None;
        }
        let d = self.packet_descs(i)[0];
        let frame = self.claim.umem.frame_of(d.addr);
        if d.addr < frame + 8 {
            return None;
        }
        // SAFETY: the 8 bytes before the packet are in the same frame (checked above),
        // which the user holds (see slice()).
        let meta = unsafe { self.claim.umem.slice(d.addr - 8, 8) };
        Some(u64::from_ne_bytes(meta.try_into().expect("8 bytes")))
    }

    /// The bytes of packet `i` when it is in one frame (None for a multi-buffer
    /// packet: see [`RxFrames::segments`] and [`RxFrames::bytes`]).
    #[inline]
    pub fn contiguous(&self, i: usize) -> Option<&[u8]> {
        match self.packet_descs(i) {
            [d] => Some(self.slice(d)),
            _ => None,
        }
    }

    /// The bytes of packet `i`: in place when it is in one frame, else joined in
    /// `scratch`.
    pub fn bytes<'a>(&'a self, i: usize, scratch: &'a mut Vec<u8>) -> &'a [u8] {
        if let Some(p) = self.contiguous(i) {
            return p;
        }
        scratch.clear();
        for s in self.segments(i) {
            scratch.extend_from_slice(s);
        }
        scratch
    }

    /// What the transport checksum of packet `i` says (see [`crate::csum`]).
    pub fn checksum(&self, i: usize) -> crate::csum::L4Checksum {
        match self.contiguous(i) {
            Some(p) => crate::csum::classify(p),
            None => crate::csum::classify_buffers(&self.segments(i).collect::<Vec<_>>()),
        }
    }

    /// Completes the partial checksums of packets `from..` in place; returns how many
    /// it completed.
    pub(crate) fn complete_checksums(&mut self, from: usize) -> u32 {
        let mut done = 0;
        for i in from..self.len() {
            let descs = self.packet_descs(i);
            let (first, rest) = descs.split_first().expect("a packet has a descriptor");
            let rest: Vec<&[u8]> = rest.iter().map(|d| self.slice(d)).collect();
            // SAFETY: as for slice(); the first frame is distinct from the others (each
            // descriptor is its own frame), and &mut self means no slice this value
            // handed out is alive.
            let first = unsafe { self.claim.umem.slice_mut(first.addr, first.len) };
            done += crate::csum::complete_partial_buffers(first, &rest) as u32;
        }
        done
    }

    /// Where segment `s` of packet `i` is, for exporting it through a buffer protocol:
    /// valid, and not written by the kernel, as long as this value holds the frame.
    #[inline]
    pub fn segment_ptr(&self, i: usize, s: usize) -> (NonNull<u8>, usize) {
        let p = self.slice(&self.packet_descs(i)[s]);
        (NonNull::from(p).cast(), p.len())
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
