//! The frame ledger: who owns each of a socket's UMEM frames.
//!
//! A frame is always in exactly one place:
//!
//! ```text
//!  free pool --refill--> fill ring / kernel --recv--> user (held) --recycle--> free pool
//!  free pool --queue--> tx ring / kernel --complete--> free pool
//!  fill ring / kernel --recv, forwarded--> tx ring / kernel   (l2fwd: no copy)
//! ```
//!
//! The ledger keeps the free pool, one bit per frame for the frames the user holds,
//! and the count of frames in each place, and answers the one question every path asks
//! of an address coming back from the kernel or the user: is this one of my frames, and
//! may it move where it is going? An address that fails the check is never put in the
//! pool, so no frame is ever handed out twice. The rings and the kernel are not its
//! business: the socket moves descriptors and tells the ledger.

use crate::sys::XdpDesc;
use crate::umem::{desc_in_bounds, FramePool, UmemConfig};

/// How many of a socket's frames are where (they always add up to `total`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameCounts {
    /// In the user's free pool.
    pub free: u32,
    /// On the fill ring or with the kernel for receiving.
    pub rx_in_kernel: u32,
    /// In rx batches the user holds.
    pub rx_held: u32,
    /// On the tx ring or with the kernel for sending, not yet completed.
    pub tx_outstanding: u32,
    /// All of the socket's frames.
    pub total: u32,
}

/// The ledger of one socket's frames (indices `frames.0..frames.1` of a UMEM).
#[derive(Debug)]
pub struct Ledger {
    umem: UmemConfig,
    /// Byte offsets `[lo, hi)` of the frames in the UMEM.
    lo: u64,
    hi: u64,
    pool: FramePool,
    /// One bit per frame: set while the user holds the frame in an rx batch.
    held: Vec<u64>,
    /// One bit per frame: set while the frame is out for sending as the last (or
    /// only) frame of its packet, so that completions count packets.
    last: Vec<u64>,
    rx_in_kernel: u32,
    rx_held: u32,
    tx_outstanding: u32,
    /// At most this many frames go to the fill ring; the rest stay for tx.
    fill_cap: u32,
}

impl Ledger {
    /// A ledger whose frames `frames.0..frames.1` are all free. `tx_reserve` frames are
    /// never put on the fill ring, so that sending always finds some.
    pub fn new(umem: UmemConfig, frames: (u32, u32), tx_reserve: u32) -> Self {
        let fs = umem.frame_size as u64;
        let count = frames.1 - frames.0;
        Ledger {
            umem,
            lo: frames.0 as u64 * fs,
            hi: frames.1 as u64 * fs,
            pool: FramePool::range(&umem, frames.0, frames.1),
            held: vec![0; (count as usize).div_ceil(64)],
            last: vec![0; (count as usize).div_ceil(64)],
            rx_in_kernel: 0,
            rx_held: 0,
            tx_outstanding: 0,
            fill_cap: count - tx_reserve.min(count),
        }
    }

    /// The frame base address of any address inside it.
    #[inline]
    fn frame_of(&self, addr: u64) -> u64 {
        addr & !(self.umem.frame_size as u64 - 1)
    }

    /// The bit of `addr`'s frame, if that frame is one of ours.
    #[inline]
    fn bit(&self, addr: u64) -> Option<usize> {
        let frame = self.frame_of(addr);
        // frame_size is a power of two (FRAME_SIZES): a shift, not a division.
        (frame >= self.lo && frame < self.hi)
            .then(|| ((frame - self.lo) >> self.umem.frame_size.trailing_zeros()) as usize)
    }

    #[inline]
    fn is_held(&self, bit: usize) -> bool {
        self.held[bit / 64] & (1 << (bit % 64)) != 0
    }

    /// Whether the descriptor lies inside one of this socket's frames: the check for
    /// anything the kernel hands over on the rx ring.
    #[inline]
    pub fn owns(&self, d: &XdpDesc) -> bool {
        let frame = self.frame_of(d.addr);
        frame >= self.lo && frame < self.hi && desc_in_bounds(&self.umem, d.addr, d.len)
    }

    /// How many free frames may go to the fill ring now.
    #[inline]
    pub fn fill_room(&self) -> u32 {
        let room = self.fill_cap.saturating_sub(self.rx_in_kernel);
        room.min(self.pool.len() as u32)
    }

    /// Takes a free frame for the fill ring. Call at most `fill_room()` times.
    #[inline]
    pub fn to_fill(&mut self) -> u64 {
        let frame = self.pool.pop().expect("fill_room() counted free frames");
        self.rx_in_kernel += 1;
        frame
    }

    /// The kernel consumed `n` fill-ring frames and returned them on the rx ring, each
    /// either handed to the user ([`Ledger::hold`]), forwarded, or (foreign) dropped.
    #[inline]
    pub fn received(&mut self, n: u32) {
        self.rx_in_kernel = self.rx_in_kernel.saturating_sub(n);
    }

    /// The user now holds the frame of `d` if it is one of ours (as
    /// [`Ledger::owns`] checks); false, changing nothing, if not. One look at the
    /// address for both.
    #[inline]
    pub fn hold_if_owned(&mut self, d: &XdpDesc) -> bool {
        let frame = self.frame_of(d.addr);
        if frame < self.lo || frame >= self.hi || !desc_in_bounds(&self.umem, d.addr, d.len) {
            return false;
        }
        let bit = ((frame - self.lo) >> self.umem.frame_size.trailing_zeros()) as usize;
        self.held[bit / 64] |= 1 << (bit % 64);
        self.rx_held += 1;
        true
    }

    /// Holds the leading run of `descs` that are one-frame packets (no `XDP_PKT_CONTD`)
    /// in frames of ours, as [`Ledger::hold_if_owned`] does for each, in one tight
    /// loop; returns how many it held and their bytes. It stops at the first that is
    /// not (the caller deals with it).
    #[inline]
    pub fn hold_run(&mut self, descs: &[XdpDesc]) -> (usize, u64) {
        let (lo, hi) = (self.lo, self.hi);
        let fs = self.umem.frame_size as u64;
        let (mask, shift) = (!(fs - 1), self.umem.frame_size.trailing_zeros());
        let umem = self.umem;
        let held = &mut self.held[..];
        let mut bytes = 0u64;
        let mut k = 0;
        // Consecutive frames share a word of the bitmap: gather a word's bits in a
        // register and store it once, rather than a load and a store per frame that
        // each wait for the last.
        let (mut word, mut bits) = (usize::MAX, 0u64);
        for d in descs {
            let frame = d.addr & mask;
            if d.options & crate::sys::uapi::XDP_PKT_CONTD != 0
                || frame < lo
                || frame >= hi
                || !desc_in_bounds(&umem, d.addr, d.len)
            {
                break;
            }
            let bit = ((frame - lo) >> shift) as usize;
            if bit / 64 != word {
                if word != usize::MAX {
                    held[word] |= bits;
                }
                (word, bits) = (bit / 64, 0);
            }
            bits |= 1 << (bit % 64);
            bytes += d.len as u64;
            k += 1;
        }
        if word != usize::MAX {
            held[word] |= bits;
        }
        self.rx_held += k as u32;
        (k, bytes)
    }

    /// Gives back the frames of `descs` (as [`Ledger::give_back`] does for each, in
    /// one loop); returns how many were ours and held (the others change nothing).
    #[inline]
    pub fn give_back_all(&mut self, descs: &[XdpDesc]) -> u32 {
        self.pool.reserve(descs.len());
        let (window, pool) = (self.window(), &mut self.pool);
        let back = release_held(&mut self.held, window, descs, |frame| pool.push(frame));
        self.rx_held -= back;
        back
    }

    /// This ledger's frames: (first address, end address, frame size).
    #[inline]
    fn window(&self) -> (u64, u64, u32) {
        (self.lo, self.hi, self.umem.frame_size)
    }

    /// How many frames may go onto the fill ring now, wherever they come from (the fill
    /// cap leaves the rest for sending).
    #[inline]
    pub fn fill_cap_room(&self) -> u32 {
        self.fill_cap.saturating_sub(self.rx_in_kernel)
    }

    /// Gives back the frames of `descs` straight to the fill ring, skipping the free
    /// pool: each that is ours and held is handed to `put` (which writes it on the
    /// ring); the others change nothing. Returns how many were put. Call with at most
    /// `fill_cap_room()` descriptors.
    #[inline]
    pub fn give_back_to_fill(&mut self, descs: &[XdpDesc], put: impl FnMut(u64)) -> u32 {
        let window = self.window();
        let back = release_held(&mut self.held, window, descs, put);
        self.rx_held -= back;
        self.rx_in_kernel += back;
        back
    }

    /// Takes `n` free frames for the fill ring, most recently freed first (call with at
    /// most `fill_room()`).
    #[inline]
    pub fn to_fill_many(&mut self, n: u32) -> impl Iterator<Item = u64> + '_ {
        self.rx_in_kernel += n;
        self.pool.take(n as usize)
    }

    /// The user now holds the frame of `d` (checked with [`Ledger::owns`]).
    #[inline]
    pub fn hold(&mut self, d: &XdpDesc) {
        let bit = self
            .bit(d.addr)
            .expect("hold() of a descriptor owns() accepted");
        self.held[bit / 64] |= 1 << (bit % 64);
        self.rx_held += 1;
    }

    /// The user gives a frame back (any address inside it). Returns false, and changes
    /// nothing, unless it is one of ours that the user holds.
    #[inline]
    pub fn give_back(&mut self, addr: u64) -> bool {
        match self.bit(addr) {
            Some(bit) if self.is_held(bit) => {
                self.held[bit / 64] &= !(1 << (bit % 64));
                self.rx_held -= 1;
                self.pool.push(self.frame_of(addr));
                true
            }
            _ => false,
        }
    }

    /// Free frames for sending.
    #[inline]
    pub fn free(&self) -> u32 {
        self.pool.len() as u32
    }

    /// Takes a free frame to send from, `last` when it ends its packet. Call at most
    /// `free()` times.
    #[inline]
    pub fn to_tx(&mut self, last: bool) -> u64 {
        let frame = self.pool.pop().expect("free() counted free frames");
        self.tx_outstanding += 1;
        let bit = self.bit(frame).expect("a frame of the pool is ours");
        self.mark_last(bit, last);
        frame
    }

    #[inline]
    fn mark_last(&mut self, bit: usize, last: bool) {
        if last {
            self.last[bit / 64] |= 1 << (bit % 64);
        } else {
            self.last[bit / 64] &= !(1 << (bit % 64));
        }
    }

    /// A received frame (checked with [`Ledger::owns`]) went straight onto a tx ring
    /// (forwarded without a copy), `last` when it ends its packet. Call
    /// [`Ledger::received`] for it too.
    #[inline]
    pub fn forwarded(&mut self, d: &XdpDesc, last: bool) {
        let bit = self
            .bit(d.addr)
            .expect("forwarded() of a descriptor owns() accepted");
        self.mark_last(bit, last);
        self.tx_outstanding += 1;
    }

    /// The kernel completed a sent frame: Some(whether it ended its packet), or None
    /// (and nothing changes) unless it is one of ours.
    #[inline]
    pub fn completed(&mut self, addr: u64) -> Option<bool> {
        let bit = self.bit(addr)?;
        self.pool.push(self.frame_of(addr));
        debug_assert!(self.tx_outstanding > 0, "a completion nobody sent");
        self.tx_outstanding = self.tx_outstanding.saturating_sub(1);
        Some(self.last[bit / 64] & (1 << (bit % 64)) != 0)
    }

    /// Takes frame `addr` out of the free pool, for the test hooks that post
    /// descriptors unchecked: Ok(true) if it was free, Ok(false) if it is not one of
    /// ours (fine: the kernel rejects it), Err if it is ours but not free.
    pub fn take_free(&mut self, addr: u64) -> Result<bool, u64> {
        let frame = self.frame_of(addr);
        if self.bit(addr).is_none() {
            return Ok(false);
        }
        if self.pool.remove(frame) {
            Ok(true)
        } else {
            Err(frame)
        }
    }

    /// A frame taken with [`Ledger::take_free`] was put on the fill ring.
    pub fn posted_fill(&mut self) {
        self.rx_in_kernel += 1;
    }

    /// A frame taken with [`Ledger::take_free`] was put on the tx ring.
    pub fn posted_tx(&mut self, addr: u64) {
        if let Some(bit) = self.bit(addr) {
            self.mark_last(bit, true);
        }
        self.tx_outstanding += 1;
    }

    pub fn counts(&self) -> FrameCounts {
        FrameCounts {
            free: self.pool.len() as u32,
            rx_in_kernel: self.rx_in_kernel,
            rx_held: self.rx_held,
            tx_outstanding: self.tx_outstanding,
            total: ((self.hi - self.lo) / self.umem.frame_size as u64) as u32,
        }
    }
}

/// Clears the held bit of each frame of `descs` that is ours and held, and hands it
/// to `each`; the others change nothing. Returns how many were handed on. As in
/// hold_run, the current word of the bitmap lives in a register.
#[inline]
fn release_held(
    held: &mut [u64],
    (lo, hi, frame_size): (u64, u64, u32),
    descs: &[XdpDesc],
    mut each: impl FnMut(u64),
) -> u32 {
    let (mask, shift) = (!(frame_size as u64 - 1), frame_size.trailing_zeros());
    let mut back = 0u32;
    let (mut word, mut cur) = (usize::MAX, 0u64);
    for d in descs {
        let frame = d.addr & mask;
        if frame < lo || frame >= hi {
            continue;
        }
        let bit = ((frame - lo) >> shift) as usize;
        if bit / 64 != word {
            if word != usize::MAX {
                held[word] = cur;
            }
            word = bit / 64;
            cur = held[word];
        }
        let b = 1u64 << (bit % 64);
        if cur & b == 0 {
            continue; // not held: a duplicate, or never handed out
        }
        cur &= !b;
        each(frame);
        back += 1;
    }
    if word != usize::MAX {
        held[word] = cur;
    }
    back
}

#[cfg(test)]
mod tests {
    //! The ledger against a model of the kernel and the user, without a kernel: random
    //! sequences of refill, receive, hold, give back, send, complete and forward, with
    //! foreign and duplicate addresses thrown in. After every step each frame is in
    //! exactly one place and the counts add up.
    use super::*;
    use proptest::prelude::*;
    use std::collections::{HashSet, VecDeque};

    const FS: u64 = 2048;

    fn cfg(count: u32) -> UmemConfig {
        UmemConfig {
            frame_size: FS as u32,
            frame_count: count,
            headroom: 0,
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Refill,
        /// The kernel delivers up to n fill frames (offset by `off` inside the frame).
        Receive {
            n: usize,
            off: u64,
        },
        /// The user gives back the i-th held frame (or an address that is not one).
        GiveBack {
            i: usize,
            foreign: bool,
        },
        Send {
            n: usize,
        },
        Complete {
            n: usize,
            foreign: bool,
        },
        /// Up to n received frames go straight to tx.
        Forward {
            n: usize,
        },
        /// The kernel delivers up to n fill frames in one batch (hold_run), with a
        /// foreign descriptor at `bad` (past the end: none).
        ReceiveRun {
            n: usize,
            bad: usize,
        },
        /// The user gives back up to n held frames at once, with a duplicate and a
        /// foreign address: to the fill ring (give_back_to_fill) or to the pool.
        GiveBackBatch {
            n: usize,
            to_fill: bool,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            Just(Op::Refill),
            (0usize..20, 0u64..4).prop_map(|(n, off)| Op::Receive { n, off: off * 64 }),
            (0usize..40, any::<bool>()).prop_map(|(i, foreign)| Op::GiveBack { i, foreign }),
            (0usize..20).prop_map(|n| Op::Send { n }),
            (0usize..20, any::<bool>()).prop_map(|(n, foreign)| Op::Complete { n, foreign }),
            (0usize..20).prop_map(|n| Op::Forward { n }),
            (0usize..20, 0usize..30).prop_map(|(n, bad)| Op::ReceiveRun { n, bad }),
            (0usize..20, any::<bool>()).prop_map(|(n, to_fill)| Op::GiveBackBatch { n, to_fill }),
        ]
    }

    /// Where the model says each frame is.
    struct Model {
        fill: VecDeque<u64>,
        held: Vec<u64>,
        tx: VecDeque<u64>,
    }

    fn check(l: &Ledger, m: &Model, lo: u32, hi: u32) {
        let c = l.counts();
        assert_eq!(c.total, hi - lo);
        assert_eq!(
            c.free + c.rx_in_kernel + c.rx_held + c.tx_outstanding,
            c.total
        );
        assert_eq!(c.rx_in_kernel as usize, m.fill.len());
        assert_eq!(c.rx_held as usize, m.held.len());
        assert_eq!(c.tx_outstanding as usize, m.tx.len());
        // Every frame in exactly one place: the pool and the model's places are
        // disjoint and cover the range.
        let mut seen = HashSet::new();
        for &f in l
            .pool
            .as_slice()
            .iter()
            .chain(&m.fill)
            .chain(&m.held)
            .chain(&m.tx)
        {
            let f = f & !(FS - 1);
            assert!(
                f >= lo as u64 * FS && f < hi as u64 * FS,
                "foreign frame {f} pooled"
            );
            assert!(seen.insert(f), "frame {f} in two places");
        }
        assert_eq!(seen.len() as u32, c.total);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn every_frame_in_exactly_one_place(
            lo in 0u32..4,
            n in 1u32..40,
            reserve in 0u32..20,
            ops in proptest::collection::vec(op(), 1..300),
        ) {
            let hi = lo + n;
            let mut l = Ledger::new(cfg(hi + 4), (lo, hi), reserve);
            let mut m = Model { fill: VecDeque::new(), held: Vec::new(), tx: VecDeque::new() };
            // An address in a frame right after the socket's range: another socket's.
            let foreign = hi as u64 * FS + 128;
            for op in ops {
                match op {
                    Op::Refill => {
                        for _ in 0..l.fill_room() {
                            m.fill.push_back(l.to_fill());
                        }
                    }
                    Op::Receive { n, off } => {
                        let n = n.min(m.fill.len());
                        let mut taken = 0;
                        for _ in 0..n {
                            let f = m.fill.pop_front().unwrap();
                            let d = XdpDesc { addr: f + off, len: 60, options: 0 };
                            prop_assert!(l.owns(&d));
                            l.hold(&d);
                            m.held.push(d.addr);
                            taken += 1;
                        }
                        // A descriptor the kernel should never return is refused.
                        let bad = XdpDesc { addr: foreign, len: 60, options: 0 };
                        prop_assert!(!l.owns(&bad));
                        let across = XdpDesc { addr: lo as u64 * FS + FS - 10, len: 20, options: 0 };
                        prop_assert!(!l.owns(&across), "crosses a frame boundary");
                        l.received(taken);
                    }
                    Op::GiveBack { i, foreign: f } => {
                        if f || m.held.is_empty() {
                            prop_assert!(!l.give_back(foreign));
                            // A free frame (not held) is refused as well.
                            if let Some(&free) = l.pool.as_slice().last() {
                                prop_assert!(!l.give_back(free));
                            }
                        } else {
                            let addr = m.held.swap_remove(i % m.held.len());
                            prop_assert!(l.give_back(addr));
                            prop_assert!(!l.give_back(addr), "given back twice");
                        }
                    }
                    Op::Send { n } => {
                        for _ in 0..n.min(l.free() as usize) {
                            m.tx.push_back(l.to_tx(true));
                        }
                    }
                    Op::Complete { n, foreign: f } => {
                        if f {
                            prop_assert!(l.completed(foreign).is_none());
                        }
                        for _ in 0..n.min(m.tx.len()) {
                            let addr = m.tx.pop_front().unwrap();
                            prop_assert_eq!(l.completed(addr), Some(true));
                        }
                    }
                    Op::ReceiveRun { n, bad } => {
                        let n = n.min(m.fill.len());
                        let mut descs: Vec<XdpDesc> = m
                            .fill
                            .iter()
                            .take(n)
                            .map(|&f| XdpDesc { addr: f, len: 60, options: 0 })
                            .collect();
                        if bad < descs.len() {
                            descs[bad].addr = foreign;
                        }
                        let (k, bytes) = l.hold_run(&descs);
                        // It holds the leading run of ours and stops at the foreign one.
                        prop_assert_eq!(k, bad.min(descs.len()));
                        prop_assert_eq!(bytes, 60 * k as u64);
                        for d in &descs[..k] {
                            m.fill.pop_front();
                            m.held.push(d.addr);
                        }
                        l.received(k as u32);
                    }
                    Op::GiveBackBatch { n, to_fill } => {
                        let n = n.min(m.held.len());
                        let mut addrs: Vec<u64> = m.held.drain(..n).collect();
                        let mut descs: Vec<XdpDesc> =
                            addrs.iter().map(|&a| XdpDesc { addr: a, len: 60, options: 0 }).collect();
                        descs.push(XdpDesc { addr: foreign, len: 60, options: 0 });
                        if let Some(&first) = addrs.first() {
                            descs.push(XdpDesc { addr: first, len: 60, options: 0 });
                        }
                        if to_fill {
                            let room = (l.fill_cap_room() as usize).min(descs.len());
                            let mut put = Vec::new();
                            let back = l.give_back_to_fill(&descs[..room], |f| put.push(f));
                            prop_assert_eq!(back as usize, put.len());
                            m.fill.extend(put.iter().copied());
                            // What did not fit goes to the pool.
                            let rest = l.give_back_all(&descs[room..]);
                            prop_assert_eq!(back + rest, n as u32, "each held frame once");
                        } else {
                            prop_assert_eq!(l.give_back_all(&descs), n as u32);
                        }
                        addrs.clear();
                    }
                    Op::Forward { n } => {
                        let n = n.min(m.fill.len());
                        for _ in 0..n {
                            let f = m.fill.pop_front().unwrap();
                            let d = XdpDesc { addr: f, len: 60, options: 0 };
                            prop_assert!(l.owns(&d));
                            l.forwarded(&d, true);
                            m.tx.push_back(f);
                        }
                        l.received(n as u32);
                    }
                }
                check(&l, &m, lo, hi);
            }
        }
    }

    #[test]
    fn tx_reserve_is_kept_off_the_fill_ring() {
        let mut l = Ledger::new(cfg(8), (0, 8), 3);
        assert_eq!(l.fill_room(), 5);
        for _ in 0..5 {
            l.to_fill();
        }
        assert_eq!(l.fill_room(), 0);
        assert_eq!(l.free(), 3);
    }

    #[test]
    fn unchecked_hooks_take_only_free_frames() {
        let mut l = Ledger::new(cfg(4), (1, 3), 0);
        assert_eq!(l.take_free(0), Ok(false), "not ours: the kernel rejects it");
        assert_eq!(l.take_free(FS + 5), Ok(true));
        assert_eq!(l.take_free(FS), Err(FS), "already taken");
    }
}
