//! Single-producer/single-consumer rings shared with the kernel.
//!
//! # How an AF_XDP ring works
//!
//! Each of the four rings of an AF_XDP socket (fill, completion, rx, tx) is a region of
//! memory mapped into both the kernel and the process. It holds:
//!
//! * a `producer` index, written only by the producing side,
//! * a `consumer` index, written only by the consuming side,
//! * a `flags` word the kernel uses to ask for a wakeup (`XDP_RING_NEED_WAKEUP`),
//! * an array of `size` entries (`size` a power of two): frame addresses (`u64`) on the
//!   fill and completion rings, descriptors ([`XdpDesc`](crate::sys::XdpDesc)) on rx
//!   and tx.
//!
//! The indices are free-running 32-bit counters: they are never reduced modulo `size`
//! when stored, only when used to address an entry (`index & mask`), and they wrap
//! around at 2^32. The number of entries in the ring is always `producer - consumer`
//! in wrapping arithmetic, which stays correct across the wrap.
//!
//! The user is the producer of the fill and tx rings and the consumer of the rx and
//! completion rings. Each side keeps a *cached* copy of the other side's index, so that
//! most operations touch no shared cache line at all: only when the cache cannot satisfy
//! a request is the shared index re-read.
//!
//! # Memory ordering
//!
//! * A producer writes entries, then publishes them with a **release** store of
//!   `producer`. A consumer reads `producer` with an **acquire** load before it reads
//!   the entries: the entries it then reads are the ones the producer wrote.
//! * A consumer reads entries, then hands the slots back with a **release** store of
//!   `consumer`. The producer reads `consumer` with an **acquire** load before it
//!   overwrites the slots: the consumer is done reading them.
//!
//! The kernel uses `smp_load_acquire`/`smp_store_release` on its side of the same
//! indices, so the pairs match.
//!
//! # Batches
//!
//! Producers [`reserve`](ProducerRing::reserve) up to `n` slots, write them, then
//! [`submit`](Reservation::submit). Consumers [`peek`](ConsumerRing::peek) up to `n`
//! entries, read them, then [`release`](Peeked::release) them — or
//! [`cancel`](Peeked::cancel) the ones they did not consume, which leaves them in the
//! ring for the next peek. Both guards are `#[must_use]`; dropping a reservation cancels
//! it and dropping a peek releases nothing, so a forgotten batch never publishes
//! garbage.
#![allow(unsafe_code)]

use std::alloc::Layout;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

// Under `--cfg loom` (rust/tests/loom_ring.rs) the shared indices and the entries are
// loom's instrumented types, so that the model checker sees every access; the layout of
// kernel rings only matters in normal builds.
#[cfg(loom)]
use loom::sync::atomic::AtomicU32;
#[cfg(not(loom))]
use std::sync::atomic::AtomicU32;

/// One ring entry as stored: the entry itself, or loom's cell that tracks reads and
/// writes (a write racing with a read is reported).
#[cfg(not(loom))]
type Slot<T> = T;
#[cfg(loom)]
type Slot<T> = loom::cell::UnsafeCell<T>;

use crate::sys::XDP_RING_NEED_WAKEUP;

/// Memory that backs a ring: a kernel mmap, or a heap block for rings that live only
/// in this process (unit tests and benchmarks).
pub(crate) enum Backing {
    Mmap { ptr: NonNull<u8>, len: usize },
    Heap { ptr: NonNull<u8>, layout: Layout },
}

// SAFETY: Backing only owns the memory (unmapping or freeing it on drop); all access to
// the memory goes through the ring types, whose own Send rules apply.
unsafe impl Send for Backing {}
// SAFETY: as above, Backing exposes no access to the memory by itself.
unsafe impl Sync for Backing {}

impl Drop for Backing {
    fn drop(&mut self) {
        match *self {
            Backing::Mmap { ptr, len } => {
                // SAFETY: ptr/len are exactly what mmap returned, and no ring that
                // points into the mapping is alive any more (each holds an Arc to us).
                unsafe { libc::munmap(ptr.as_ptr().cast(), len) };
            }
            Backing::Heap { ptr, layout } => {
                // SAFETY: ptr was allocated with this layout by alloc_zeroed.
                unsafe { std::alloc::dealloc(ptr.as_ptr(), layout) };
            }
        }
    }
}

/// Where in the backing memory the parts of a ring are.
#[derive(Clone)]
pub(crate) struct RingParts {
    /// Keeps the memory the pointers below point into alive.
    #[allow(dead_code)]
    backing: Arc<Backing>,
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    entries: NonNull<u8>,
    size: u32,
}

impl RingParts {
    /// Takes ownership of a kernel ring mapping.
    ///
    /// # Safety
    /// `ptr` must be a mapping of `len` bytes returned by mmap for this ring, and the
    /// offsets must be those `XDP_MMAP_OFFSETS` gave for it: the producer, consumer and
    /// flags words are 4-byte aligned and `size` entries of `T` fit at `entries`.
    pub(crate) unsafe fn from_mmap(
        ptr: NonNull<u8>,
        len: usize,
        producer: usize,
        consumer: usize,
        flags: usize,
        entries: usize,
        size: u32,
    ) -> Self {
        let at = |off: usize| NonNull::new_unchecked(ptr.as_ptr().add(off));
        RingParts {
            producer: at(producer).cast(),
            consumer: at(consumer).cast(),
            flags: at(flags).cast(),
            entries: at(entries),
            size,
            backing: Arc::new(Backing::Mmap { ptr, len }),
        }
    }
}

fn assert_ring_size(size: u32) {
    assert!(
        size.is_power_of_two(),
        "ring size {size} is not a power of two"
    );
}

/// A ring this process both produces and consumes (for tests and benchmarks of the
/// ring logic without a kernel). `producer()` and `consumer()` give the two ends.
pub struct LocalRing<T> {
    parts: RingParts,
    /// Whether the producer and the consumer end were handed out (once each).
    taken: [AtomicBool; 2],
    _entry: PhantomData<T>,
}

impl<T: Copy> LocalRing<T> {
    /// A ring of `size` entries (a power of two), its indices starting at `start` so
    /// that tests can begin right below the 32-bit wrap-around.
    pub fn new(size: u32, start: u32) -> Self {
        assert_ring_size(size);
        // Producer, consumer and flags each on their own cache line, as the kernel lays
        // them out.
        let line = std::mem::size_of::<AtomicU32>().next_multiple_of(64);
        let header = 3 * line;
        let layout = Layout::from_size_align(
            header + size as usize * std::mem::size_of::<Slot<T>>(),
            64.max(std::mem::align_of::<Slot<T>>()),
        )
        .expect("ring layout");
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).expect("out of memory allocating a ring");
        // SAFETY: all offsets are inside the allocation and suitably aligned.
        let parts = unsafe {
            RingParts {
                producer: NonNull::new_unchecked(raw).cast(),
                consumer: NonNull::new_unchecked(raw.add(line)).cast(),
                flags: NonNull::new_unchecked(raw.add(2 * line)).cast(),
                entries: NonNull::new_unchecked(raw.add(header)),
                size,
                backing: Arc::new(Backing::Heap { ptr, layout }),
            }
        };
        #[cfg(loom)]
        // SAFETY: loom's types must be constructed, not zeroed: write each one in place
        // (the memory is ours, properly aligned, and holds nothing yet). Every entry
        // type of a ring is plain old data, for which zero is a valid value.
        unsafe {
            for (at, value) in [
                (parts.producer, start),
                (parts.consumer, start),
                (parts.flags, 0),
            ] {
                at.as_ptr().write(AtomicU32::new(value));
            }
            let entries = parts.entries.as_ptr().cast::<Slot<T>>();
            for i in 0..size as usize {
                entries
                    .add(i)
                    .write(loom::cell::UnsafeCell::new(std::mem::zeroed()));
            }
        }
        let ring = LocalRing {
            parts,
            taken: [AtomicBool::new(false), AtomicBool::new(false)],
            _entry: PhantomData,
        };
        ring.producer_index().store(start, Ordering::Relaxed);
        ring.consumer_index().store(start, Ordering::Relaxed);
        ring
    }

    fn producer_index(&self) -> &AtomicU32 {
        // SAFETY: the index lives in memory owned by self.parts.backing.
        unsafe { self.parts.producer.as_ref() }
    }

    fn consumer_index(&self) -> &AtomicU32 {
        // SAFETY: the index lives in memory owned by self.parts.backing.
        unsafe { self.parts.consumer.as_ref() }
    }

    /// The producing end. A ring has a single producer: a second call panics.
    pub fn producer(&self) -> ProducerRing<T> {
        assert!(
            !self.taken[0].swap(true, Ordering::AcqRel),
            "LocalRing::producer() called twice: a ring has one producer"
        );
        // SAFETY: the parts describe a valid ring of T, and the flag above makes this
        // the only producer.
        unsafe { ProducerRing::new(self.parts.clone()) }
    }

    /// The consuming end. A ring has a single consumer: a second call panics.
    pub fn consumer(&self) -> ConsumerRing<T> {
        assert!(
            !self.taken[1].swap(true, Ordering::AcqRel),
            "LocalRing::consumer() called twice: a ring has one consumer"
        );
        // SAFETY: the parts describe a valid ring of T, and the flag above makes this
        // the only consumer.
        unsafe { ConsumerRing::new(self.parts.clone()) }
    }

    /// Sets or clears the need-wakeup flag, as the kernel would.
    pub fn set_need_wakeup(&self, on: bool) {
        // SAFETY: the flags word lives in memory owned by self.parts.backing.
        let flags = unsafe { self.parts.flags.as_ref() };
        flags.store(if on { XDP_RING_NEED_WAKEUP } else { 0 }, Ordering::Release);
    }

    /// The shared (published) producer and consumer indices.
    pub fn shared_indices(&self) -> (u32, u32) {
        (
            self.producer_index().load(Ordering::Acquire),
            self.consumer_index().load(Ordering::Acquire),
        )
    }
}

/// Shared state of both ends: pointers into the ring memory.
struct Ring<T> {
    parts: RingParts,
    mask: u32,
    _entry: PhantomData<T>,
}

impl<T: Copy> Ring<T> {
    fn new(parts: RingParts) -> Self {
        assert_ring_size(parts.size);
        Ring {
            mask: parts.size - 1,
            parts,
            _entry: PhantomData,
        }
    }

    #[inline(always)]
    fn producer(&self) -> &AtomicU32 {
        // SAFETY: the index lives in the ring memory, kept alive by parts.backing.
        unsafe { self.parts.producer.as_ref() }
    }

    #[inline(always)]
    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: the index lives in the ring memory, kept alive by parts.backing.
        unsafe { self.parts.consumer.as_ref() }
    }

    #[inline(always)]
    fn needs_wakeup(&self) -> bool {
        // SAFETY: the flags word lives in the ring memory, kept alive by parts.backing.
        let flags = unsafe { self.parts.flags.as_ref() };
        flags.load(Ordering::Acquire) & XDP_RING_NEED_WAKEUP != 0
    }

    #[inline(always)]
    fn slot(&self, index: u32) -> *mut Slot<T> {
        // SAFETY: index & mask < size, and the entries array holds size entries.
        unsafe {
            self.parts
                .entries
                .as_ptr()
                .cast::<Slot<T>>()
                .add((index & self.mask) as usize)
        }
    }

    /// # Safety
    /// The caller owns slot `index` (reserved, not yet published).
    #[inline(always)]
    unsafe fn write_slot(&self, index: u32, value: T) {
        // SAFETY: the slot is inside the ring (see slot) and the caller owns it.
        #[cfg(not(loom))]
        self.slot(index).write(value);
        #[cfg(loom)]
        (*self.slot(index)).with_mut(|p| p.write(value));
    }

    /// # Safety
    /// Slot `index` was published to the caller and not handed back yet.
    #[inline(always)]
    unsafe fn read_slot(&self, index: u32) -> T {
        // SAFETY: the slot is inside the ring (see slot) and published to the caller.
        #[cfg(not(loom))]
        return self.slot(index).read();
        #[cfg(loom)]
        return (*self.slot(index)).with(|p| p.read());
    }
}

/// The producing end of a ring (the user's side of fill and tx).
pub struct ProducerRing<T> {
    ring: Ring<T>,
    /// Our producer index, ahead of the shared one by what is reserved but unsubmitted.
    cached_prod: u32,
    /// The consumer's index plus the ring size: the producer may write up to here.
    cached_cons: u32,
}

// SAFETY: a ProducerRing is the only writer of its producer index and slots; moving it
// to another thread moves that role with it. It is not Sync: &mut is needed to produce.
unsafe impl<T: Send> Send for ProducerRing<T> {}

impl<T: Copy> ProducerRing<T> {
    /// # Safety
    /// `parts` must describe a valid ring of `T`, and no other producer may exist.
    pub(crate) unsafe fn new(parts: RingParts) -> Self {
        let ring = Ring::new(parts);
        let cached_prod = ring.producer().load(Ordering::Relaxed);
        let cached_cons = ring
            .consumer()
            .load(Ordering::Acquire)
            .wrapping_add(ring.parts.size);
        ProducerRing {
            ring,
            cached_prod,
            cached_cons,
        }
    }

    /// Number of entries in the ring.
    pub fn size(&self) -> u32 {
        self.ring.parts.size
    }

    /// How many slots can be written, refreshing the consumer index from shared memory
    /// only when the cached value cannot satisfy `want`.
    #[inline]
    pub fn free(&mut self, want: u32) -> u32 {
        let free = self.cached_cons.wrapping_sub(self.cached_prod);
        if free >= want {
            return free;
        }
        // Acquire: pairs with the consumer's release store; slots it handed back are
        // done being read before we overwrite them.
        self.cached_cons = self
            .ring
            .consumer()
            .load(Ordering::Acquire)
            .wrapping_add(self.ring.parts.size);
        self.cached_cons.wrapping_sub(self.cached_prod)
    }

    /// Reserves up to `n` slots (fewer when the ring is fuller). Write them with
    /// [`Reservation::write`], then [`Reservation::submit`].
    #[inline]
    pub fn reserve(&mut self, n: u32) -> Reservation<'_, T> {
        let len = self.free(n).min(n);
        let start = self.cached_prod;
        self.cached_prod = start.wrapping_add(len);
        Reservation {
            ring: self,
            start,
            len,
        }
    }

    /// Whether the kernel asked for a system call to process this ring.
    #[inline]
    pub fn needs_wakeup(&self) -> bool {
        self.ring.needs_wakeup()
    }

    /// Entries submitted but not yet taken by the consumer (reads the shared index).
    pub fn pending(&self) -> u32 {
        let published = self.ring.producer().load(Ordering::Relaxed);
        published.wrapping_sub(self.ring.consumer().load(Ordering::Acquire))
    }
}

/// Slots reserved on a producer ring. Submit them, or they are cancelled on drop.
#[must_use = "reserved slots are cancelled unless submitted"]
pub struct Reservation<'a, T: Copy> {
    ring: &'a mut ProducerRing<T>,
    start: u32,
    len: u32,
}

impl<T: Copy> Reservation<'_, T> {
    /// How many slots were reserved (may be fewer than asked for).
    #[inline]
    pub fn len(&self) -> u32 {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes the `i`-th reserved slot.
    #[inline]
    pub fn write(&mut self, i: u32, value: T) {
        assert!(
            i < self.len,
            "slot {i} outside a reservation of {}",
            self.len
        );
        // SAFETY: slot start+i was reserved: the consumer has handed it back (checked
        // against the acquired consumer index) and only we write it until submit.
        unsafe { self.ring.ring.write_slot(self.start.wrapping_add(i), value) };
    }

    /// Publishes the first `n` reserved slots to the consumer and cancels the rest.
    #[inline]
    pub fn submit(self, n: u32) {
        assert!(
            n <= self.len,
            "submitting {n} of {} reserved slots",
            self.len
        );
        let ring = &mut *self.ring;
        ring.cached_prod = self.start.wrapping_add(n);
        // Release: the slot writes above become visible before the new index does.
        ring.ring
            .producer()
            .store(ring.cached_prod, Ordering::Release);
        std::mem::forget(self);
    }

    /// Publishes all reserved slots.
    #[inline]
    pub fn submit_all(self) {
        let n = self.len;
        self.submit(n)
    }
}

impl<T: Copy> Drop for Reservation<'_, T> {
    fn drop(&mut self) {
        // Not submitted: hand the slots back without publishing anything.
        self.ring.cached_prod = self.start;
    }
}

/// The consuming end of a ring (the user's side of rx and completion).
pub struct ConsumerRing<T> {
    ring: Ring<T>,
    /// The producer's index as last read from shared memory.
    cached_prod: u32,
    /// Our consumer index, ahead of the shared one by what is peeked but unreleased.
    cached_cons: u32,
}

// SAFETY: a ConsumerRing is the only writer of its consumer index; moving it to another
// thread moves that role with it. It is not Sync: &mut is needed to consume.
unsafe impl<T: Send> Send for ConsumerRing<T> {}

impl<T: Copy> ConsumerRing<T> {
    /// # Safety
    /// `parts` must describe a valid ring of `T`, and no other consumer may exist.
    pub(crate) unsafe fn new(parts: RingParts) -> Self {
        let ring = Ring::new(parts);
        let cached_cons = ring.consumer().load(Ordering::Relaxed);
        let cached_prod = ring.producer().load(Ordering::Acquire);
        ConsumerRing {
            ring,
            cached_prod,
            cached_cons,
        }
    }

    /// Number of entries in the ring.
    pub fn size(&self) -> u32 {
        self.ring.parts.size
    }

    /// How many entries can be read, refreshing the producer index from shared memory
    /// only when the cached value cannot satisfy `want`.
    #[inline]
    pub fn available(&mut self, want: u32) -> u32 {
        let entries = self.cached_prod.wrapping_sub(self.cached_cons);
        if entries >= want {
            return entries;
        }
        // Acquire: pairs with the producer's release store; the entries it published
        // are visible to the reads that follow.
        self.cached_prod = self.ring.producer().load(Ordering::Acquire);
        self.cached_prod.wrapping_sub(self.cached_cons)
    }

    /// Takes up to `n` entries to read. Release them when done, or cancel the ones not
    /// consumed; dropping the guard releases nothing (the entries stay in the ring).
    #[inline]
    pub fn peek(&mut self, n: u32) -> Peeked<'_, T> {
        let len = self.available(n).min(n);
        let start = self.cached_cons;
        self.cached_cons = start.wrapping_add(len);
        Peeked {
            ring: self,
            start,
            len,
        }
    }

    /// Whether the kernel asked for a system call (meaningful on rx and fill only).
    #[inline]
    pub fn needs_wakeup(&self) -> bool {
        self.ring.needs_wakeup()
    }
}

/// Entries peeked from a consumer ring.
#[must_use = "peeked entries stay in the ring unless released"]
pub struct Peeked<'a, T: Copy> {
    ring: &'a mut ConsumerRing<T>,
    start: u32,
    len: u32,
}

impl<T: Copy> Peeked<'_, T> {
    /// How many entries were peeked (may be fewer than asked for).
    #[inline]
    pub fn len(&self) -> u32 {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads the `i`-th peeked entry.
    #[inline]
    pub fn read(&self, i: u32) -> T {
        assert!(i < self.len, "entry {i} outside a peek of {}", self.len);
        // SAFETY: entry start+i was published by the producer (seen through the acquire
        // load of its index) and is not handed back until we release it.
        unsafe { self.ring.ring.read_slot(self.start.wrapping_add(i)) }
    }

    /// Consumes the first `n` entries (hands their slots back to the producer) and
    /// cancels the other `len - n`, which the next peek returns again.
    #[inline]
    pub fn release(self, n: u32) {
        assert!(
            n <= self.len,
            "releasing {n} of {} peeked entries",
            self.len
        );
        let ring = &mut *self.ring;
        ring.cached_cons = self.start.wrapping_add(n);
        // Release: our reads of the entries happen before the producer may reuse them.
        ring.ring
            .consumer()
            .store(ring.cached_cons, Ordering::Release);
        std::mem::forget(self);
    }

    /// Consumes every peeked entry.
    #[inline]
    pub fn release_all(self) {
        let n = self.len;
        self.release(n)
    }

    /// Keeps the first `len - k` entries peeked (still to be released) and hands the
    /// last `k` back unconsumed: the next peek returns them again.
    #[inline]
    pub fn cancel(&mut self, k: u32) {
        assert!(
            k <= self.len,
            "cancelling {k} of {} peeked entries",
            self.len
        );
        self.len -= k;
        self.ring.cached_cons = self.start.wrapping_add(self.len);
    }
}

impl<T: Copy> Drop for Peeked<'_, T> {
    fn drop(&mut self) {
        // Neither released nor consumed: the entries stay for the next peek.
        self.ring.cached_cons = self.start;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(size: u32, start: u32) -> (LocalRing<u64>, ProducerRing<u64>, ConsumerRing<u64>) {
        let ring = LocalRing::new(size, start);
        let p = ring.producer();
        let c = ring.consumer();
        (ring, p, c)
    }

    fn produce(p: &mut ProducerRing<u64>, values: &[u64]) -> u32 {
        let mut r = p.reserve(values.len() as u32);
        let n = r.len();
        for i in 0..n {
            r.write(i, values[i as usize]);
        }
        r.submit_all();
        n
    }

    fn consume(c: &mut ConsumerRing<u64>, n: u32) -> Vec<u64> {
        let peek = c.peek(n);
        let out: Vec<u64> = (0..peek.len()).map(|i| peek.read(i)).collect();
        peek.release_all();
        out
    }

    #[test]
    fn fifo_round_trip() {
        let (_r, mut p, mut c) = pair(8, 0);
        assert_eq!(produce(&mut p, &[1, 2, 3]), 3);
        assert_eq!(consume(&mut c, 8), vec![1, 2, 3]);
        assert_eq!(consume(&mut c, 8), Vec::<u64>::new());
    }

    #[test]
    fn full_ring_refuses_more() {
        let (_r, mut p, mut c) = pair(4, 0);
        assert_eq!(produce(&mut p, &[1, 2, 3, 4, 5, 6]), 4);
        assert_eq!(p.free(1), 0);
        assert!(p.reserve(1).is_empty());
        assert_eq!(consume(&mut c, 1), vec![1]);
        // The producer's cache still says full; asking refreshes it.
        assert_eq!(p.free(1), 1);
        assert_eq!(produce(&mut p, &[5]), 1);
        assert_eq!(consume(&mut c, 10), vec![2, 3, 4, 5]);
    }

    #[test]
    fn empty_ring_gives_nothing() {
        let (_r, _p, mut c) = pair(4, 0);
        let peek = c.peek(4);
        assert!(peek.is_empty());
        peek.release_all();
        assert_eq!(c.available(1), 0);
    }

    #[test]
    fn indices_wrap_around_u32() {
        // Start four entries below the wrap so every batch crosses it.
        let start = u32::MAX - 3;
        let (ring, mut p, mut c) = pair(8, start);
        let mut next = 0u64;
        let mut expect = 0u64;
        for _ in 0..100 {
            let vals: Vec<u64> = (next..next + 5).collect();
            next += produce(&mut p, &vals) as u64;
            for v in consume(&mut c, 3) {
                assert_eq!(v, expect);
                expect += 1;
            }
        }
        for v in consume(&mut c, 8) {
            assert_eq!(v, expect);
            expect += 1;
        }
        assert_eq!(expect, next);
        let (prod, cons) = ring.shared_indices();
        assert_eq!(prod, cons);
        assert_eq!(prod, start.wrapping_add(next as u32));
        assert!(prod < start, "the indices wrapped");
    }

    #[test]
    fn cancel_returns_unconsumed_entries() {
        let (_r, mut p, mut c) = pair(8, u32::MAX - 1);
        produce(&mut p, &[10, 11, 12, 13, 14]);
        let mut peek = c.peek(5);
        assert_eq!(peek.len(), 5);
        // Consumer accepted 10 and 11, then stopped: cancel the last 3.
        peek.cancel(3);
        assert_eq!(peek.len(), 2);
        assert_eq!(peek.read(1), 11);
        peek.release_all();
        assert_eq!(consume(&mut c, 8), vec![12, 13, 14]);
    }

    #[test]
    fn partial_release_and_dropped_peek_keep_entries() {
        let (_r, mut p, mut c) = pair(8, 0);
        produce(&mut p, &[1, 2, 3, 4]);
        let peek = c.peek(4);
        peek.release(1);
        {
            let peek = c.peek(4);
            assert_eq!(peek.read(0), 2);
            // dropped without release
        }
        assert_eq!(consume(&mut c, 8), vec![2, 3, 4]);
    }

    #[test]
    fn unsubmitted_reservation_is_cancelled() {
        let (ring, mut p, mut c) = pair(8, 0);
        {
            let mut r = p.reserve(4);
            r.write(0, 99);
        }
        assert_eq!(ring.shared_indices(), (0, 0));
        let mut r = p.reserve(2);
        r.write(0, 7);
        r.write(1, 8);
        r.submit(1);
        assert_eq!(consume(&mut c, 8), vec![7]);
        assert_eq!(produce(&mut p, &[9]), 1);
        assert_eq!(consume(&mut c, 8), vec![9]);
    }

    #[test]
    fn cached_indices_refresh_only_when_needed() {
        let (ring, mut p, mut c) = pair(8, 0);
        assert_eq!(produce(&mut p, &[1, 2, 3, 4, 5, 6, 7, 8]), 8);
        // The consumer caches producer=8.
        assert_eq!(c.available(1), 8);
        let peek = c.peek(2);
        peek.release_all();
        // The producer cached consumer=0 (ring full); a request it cannot meet refreshes.
        assert_eq!(p.free(0), 0, "no refresh for a request the cache meets");
        assert_eq!(p.free(2), 2);
        assert_eq!(produce(&mut p, &[9, 10]), 2);
        // The consumer's cache still holds 6 entries: a small peek does not see 9, 10.
        assert_eq!(c.available(6), 6);
        assert_eq!(c.available(7), 8, "a larger request re-reads the producer");
        assert_eq!(ring.shared_indices(), (10, 2));
    }

    #[test]
    fn need_wakeup_flag() {
        let (ring, p, c) = pair(4, 0);
        assert!(!p.needs_wakeup());
        ring.set_need_wakeup(true);
        assert!(p.needs_wakeup() && c.needs_wakeup());
        ring.set_need_wakeup(false);
        assert!(!p.needs_wakeup());
    }

    #[test]
    fn descriptor_entries() {
        use crate::sys::XdpDesc;
        let ring = LocalRing::<XdpDesc>::new(4, 0);
        let mut p = ring.producer();
        let mut c = ring.consumer();
        let mut r = p.reserve(2);
        r.write(
            0,
            XdpDesc {
                addr: 4096,
                len: 60,
                options: 0,
            },
        );
        r.write(
            1,
            XdpDesc {
                addr: 8192,
                len: 1514,
                options: 0,
            },
        );
        r.submit_all();
        let peek = c.peek(4);
        assert_eq!(peek.len(), 2);
        assert_eq!(peek.read(1).len, 1514);
        assert_eq!(peek.read(0).addr, 4096);
        peek.release_all();
    }

    #[test]
    fn threads_agree() {
        let ring = LocalRing::<u64>::new(64, u32::MAX - 1000);
        let mut p = ring.producer();
        let mut c = ring.consumer();
        const N: u64 = 200_000;
        let producer = std::thread::spawn(move || {
            let mut next = 0;
            while next < N {
                let mut r = p.reserve(16.min((N - next) as u32));
                for i in 0..r.len() {
                    r.write(i, next + i as u64);
                }
                next += r.len() as u64;
                r.submit_all();
            }
        });
        let mut expect = 0;
        while expect < N {
            let peek = c.peek(32);
            for i in 0..peek.len() {
                assert_eq!(peek.read(i), expect);
                expect += 1;
            }
            peek.release_all();
        }
        producer.join().unwrap();
    }

    #[test]
    #[should_panic(expected = "one producer")]
    fn one_producer_only() {
        let ring = LocalRing::<u64>::new(8, 0);
        let _a = ring.producer();
        let _b = ring.producer();
    }

    #[test]
    #[should_panic(expected = "not a power of two")]
    fn size_must_be_power_of_two() {
        let _ = LocalRing::<u64>::new(6, 0);
    }
}
