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
//!
//! Entries are written and read one at a time by position ([`Reservation::write`],
//! [`Peeked::read`]: the position is checked against the guard's length, then masked),
//! or in bulk: [`Reservation::write_slice`] and [`Peeked::read_into`] copy a slice in at
//! most two pieces (two where the batch wraps around the end of the ring),
//! [`Reservation::write_iter`] and [`Peeked::iter`] walk the batch in at most two runs
//! without a mask per entry. The guards carry the entry array's address, the mask and
//! the first index by value, so that a loop over a batch keeps them in registers.
#![allow(unsafe_code)]

use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;
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

use crate::sys::uapi::XDP_RING_NEED_WAKEUP;
use crate::sys::Mapping;

mod local;
#[cfg(test)]
mod tests;

pub use local::LocalRing;

/// Memory that backs a ring: a kernel mapping, or a heap block for rings that live only
/// in this process (unit tests and benchmarks). Each frees itself on drop.
pub(crate) enum Backing {
    // Never read: it only keeps the mapping alive.
    #[allow(dead_code)]
    Mapping(Mapping),
    #[allow(dead_code)]
    Heap(local::HeapBlock),
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

/// The offsets of a ring's parts inside its memory, in bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RingLayout {
    pub producer: usize,
    pub consumer: usize,
    pub flags: usize,
    pub entries: usize,
    pub size: u32,
}

impl RingParts {
    /// A ring inside `backing` laid out as `layout` says.
    ///
    /// # Safety
    /// `base` must point at the start of `backing`'s memory, the producer, consumer and
    /// flags words must be 4-byte aligned and inside it, and `size` entries of the
    /// ring's entry type must fit at `entries` (for a kernel ring: the offsets and size
    /// `XDP_MMAP_OFFSETS` and the ring size setsockopt gave for this very mapping).
    pub(crate) unsafe fn new(backing: Backing, base: NonNull<u8>, layout: RingLayout) -> Self {
        // SAFETY: the caller guarantees every offset is inside the memory.
        let at = |off: usize| unsafe { NonNull::new_unchecked(base.as_ptr().add(off)) };
        RingParts {
            producer: at(layout.producer).cast(),
            consumer: at(layout.consumer).cast(),
            flags: at(layout.flags).cast(),
            entries: at(layout.entries),
            size: layout.size,
            backing: Arc::new(backing),
        }
    }

    /// Takes ownership of a kernel ring mapping.
    ///
    /// # Safety
    /// As for [`RingParts::new`]: `layout` comes from `XDP_MMAP_OFFSETS` for the ring
    /// `mapping` maps.
    pub(crate) unsafe fn from_mapping(mapping: Mapping, layout: RingLayout) -> Self {
        let base = mapping.ptr();
        // SAFETY: forwarded from the caller.
        unsafe { Self::new(Backing::Mapping(mapping), base, layout) }
    }
}

fn assert_ring_size(size: u32) {
    assert!(
        size.is_power_of_two(),
        "ring size {size} is not a power of two"
    );
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

    /// The entry array.
    #[inline(always)]
    fn entries(&self) -> NonNull<Slot<T>> {
        self.parts.entries.cast()
    }
}

/// Writes entry `pos` (an index already reduced by the mask) of the array at `entries`.
///
/// # Safety
/// `entries` is a live ring's entry array, `pos` is smaller than its size, and the
/// caller owns the slot (reserved, not yet published).
#[inline(always)]
unsafe fn write_entry<T>(entries: NonNull<Slot<T>>, pos: usize, value: T) {
    // SAFETY: pos is inside the array and the caller owns the slot.
    #[cfg(not(loom))]
    unsafe {
        entries.as_ptr().add(pos).write(value)
    };
    // SAFETY: as above.
    #[cfg(loom)]
    unsafe {
        (*entries.as_ptr().add(pos)).with_mut(|p| p.write(value))
    };
}

/// Reads entry `pos` (an index already reduced by the mask) of the array at `entries`.
///
/// # Safety
/// `entries` is a live ring's entry array, `pos` is smaller than its size, and the
/// entry was published to the caller and not handed back yet.
#[inline(always)]
unsafe fn read_entry<T: Copy>(entries: NonNull<Slot<T>>, pos: usize) -> T {
    // SAFETY: pos is inside the array and the entry is the caller's to read.
    #[cfg(not(loom))]
    return unsafe { entries.as_ptr().add(pos).read() };
    // SAFETY: as above.
    #[cfg(loom)]
    return unsafe { (*entries.as_ptr().add(pos)).with(|p| p.read()) };
}

/// Where `n` consecutive entries from ring index `index` are in the array: the position
/// of the first, and how many lie before the end of the array (the rest continue at
/// position 0).
#[inline(always)]
fn runs(index: u32, mask: u32, n: usize) -> (usize, usize) {
    let pos = (index & mask) as usize;
    let to_end = mask as usize + 1 - pos;
    (pos, n.min(to_end))
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
    /// [`Reservation::write`] (or the bulk [`write_slice`](Reservation::write_slice)
    /// and [`write_iter`](Reservation::write_iter)), then [`Reservation::submit`].
    #[inline]
    pub fn reserve(&mut self, n: u32) -> Reservation<'_, T> {
        let len = self.free(n).min(n);
        let start = self.cached_prod;
        self.cached_prod = start.wrapping_add(len);
        Reservation {
            entries: self.ring.entries(),
            mask: self.ring.mask,
            start,
            len,
            ring: self,
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
///
/// It carries the entry array's address, the mask and its first index by value, so
/// that a loop of writes keeps them in registers: a write into the ring could, for all
/// the compiler knows, change the fields of the ring end it was reached through.
#[must_use = "reserved slots are cancelled unless submitted"]
pub struct Reservation<'a, T: Copy> {
    ring: &'a mut ProducerRing<T>,
    entries: NonNull<Slot<T>>,
    mask: u32,
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
        let pos = (self.start.wrapping_add(i) & self.mask) as usize;
        // SAFETY: pos is masked into the array; slot start+i was reserved (i < len): the
        // consumer has handed it back (checked against the acquired consumer index) and
        // only we write it until submit.
        unsafe { write_entry(self.entries, pos, value) };
    }

    /// Writes `values` into the reserved slots `i..i + values.len()`: one copy, or two
    /// where the slots wrap around the end of the ring.
    #[inline]
    pub fn write_slice(&mut self, i: u32, values: &[T]) {
        assert!(
            i <= self.len && values.len() <= (self.len - i) as usize,
            "slots {i}..{i}+{} outside a reservation of {}",
            values.len(),
            self.len
        );
        let (pos, first) = runs(self.start.wrapping_add(i), self.mask, values.len());
        #[cfg(not(loom))]
        // SAFETY: the slots are reserved (checked above) and in the array: `first` from
        // pos end by the array's end, the rest start at 0 and stay below the ring size
        // (values.len() <= len <= size); `values` is our memory, not the ring's.
        unsafe {
            let (base, src, n) = (self.entries.as_ptr(), values.as_ptr(), values.len());
            std::ptr::copy_nonoverlapping(src, base.add(pos), first);
            std::ptr::copy_nonoverlapping(src.add(first), base, n - first);
        }
        #[cfg(loom)]
        for (k, &v) in values.iter().enumerate() {
            let pos = if k < first { pos + k } else { k - first };
            // SAFETY: as above, one entry at a time.
            unsafe { write_entry(self.entries, pos, v) };
        }
    }

    /// Writes the values `values` yields into the reserved slots from the first on, until
    /// it ends or every slot is written; returns how many were written. The slots are
    /// walked in at most two runs, without a mask per entry.
    #[inline]
    pub fn write_iter<I: IntoIterator<Item = T>>(&mut self, values: I) -> u32 {
        let mut values = values.into_iter();
        let len = self.len as usize;
        // The `len` reserved slots from `start`: `first` of them from pos, the rest from
        // position 0 (see write_slice).
        let (pos, first) = runs(self.start, self.mask, len);
        let entries = self.entries;
        let mut written = 0;
        values.by_ref().take(first).for_each(|v| {
            // SAFETY: pos + written < pos + first: one of the reserved slots, inside
            // the array.
            unsafe { write_entry(entries, pos + written, v) };
            written += 1;
        });
        if written == first {
            let mut wrapped = 0;
            values.take(len - first).for_each(|v| {
                // SAFETY: wrapped < len - first: as above.
                unsafe { write_entry(entries, wrapped, v) };
                wrapped += 1;
            });
            written += wrapped;
        }
        written as u32
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
            entries: self.ring.entries(),
            mask: self.ring.mask,
            start,
            len,
            ring: self,
        }
    }

    /// Whether the kernel asked for a system call (meaningful on rx and fill only).
    #[inline]
    pub fn needs_wakeup(&self) -> bool {
        self.ring.needs_wakeup()
    }
}

/// Entries peeked from a consumer ring. Like [`Reservation`], it carries the entry
/// array's address, the mask and its first index by value.
#[must_use = "peeked entries stay in the ring unless released"]
pub struct Peeked<'a, T: Copy> {
    ring: &'a mut ConsumerRing<T>,
    entries: NonNull<Slot<T>>,
    mask: u32,
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
        let pos = (self.start.wrapping_add(i) & self.mask) as usize;
        // SAFETY: pos is masked into the array; entry start+i (i < len) was published by
        // the producer (seen through the acquire load of its index) and is not handed
        // back until we release it.
        unsafe { read_entry(self.entries, pos) }
    }

    /// Reads the peeked entries `i..i + out.len()` into `out`: one copy, or two where
    /// the entries wrap around the end of the ring.
    #[inline]
    pub fn read_into(&self, i: u32, out: &mut [T]) {
        assert!(
            i <= self.len && out.len() <= (self.len - i) as usize,
            "entries {i}..{i}+{} outside a peek of {}",
            out.len(),
            self.len
        );
        let (pos, first) = runs(self.start.wrapping_add(i), self.mask, out.len());
        #[cfg(not(loom))]
        // SAFETY: the entries are peeked (checked above): published to us and not handed
        // back while this borrow of the peek lives; both runs are inside the array (see
        // write_slice). `out` is ordinary memory of ours, not the ring's.
        unsafe {
            let (base, dst, n) = (self.entries.as_ptr(), out.as_mut_ptr(), out.len());
            std::ptr::copy_nonoverlapping(base.add(pos), dst, first);
            std::ptr::copy_nonoverlapping(base, dst.add(first), n - first);
        }
        #[cfg(loom)]
        for (k, o) in out.iter_mut().enumerate() {
            let pos = if k < first { pos + k } else { k - first };
            // SAFETY: as above, one entry at a time.
            *o = unsafe { read_entry(self.entries, pos) };
        }
    }

    /// The peeked entries in order, by value (at most two runs: no mask per entry).
    #[inline]
    pub fn iter(&self) -> PeekedIter<'_, T> {
        let (pos, first) = runs(self.start, self.mask, self.len as usize);
        PeekedIter {
            entries: self.entries,
            at: pos,
            end: pos + first,
            then: self.len as usize - first,
            _peek: PhantomData,
        }
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

/// The entries of a [`Peeked`], by value: see [`Peeked::iter`].
pub struct PeekedIter<'a, T: Copy> {
    entries: NonNull<Slot<T>>,
    /// The next entry's position, and the end of the run it is in.
    at: usize,
    end: usize,
    /// How many entries follow from position 0 once this run ends (the wrap).
    then: usize,
    /// Borrows the peek: the entries cannot be released while iterating.
    _peek: PhantomData<&'a T>,
}

impl<T: Copy> Iterator for PeekedIter<'_, T> {
    type Item = T;

    #[inline]
    fn next(&mut self) -> Option<T> {
        if self.at == self.end {
            if self.then == 0 {
                return None;
            }
            (self.at, self.end, self.then) = (0, self.then, 0);
        }
        // SAFETY: `at` is inside the run of peeked entries it walks (see Peeked::iter),
        // which the borrowed peek holds published and unreleased.
        let v = unsafe { read_entry(self.entries, self.at) };
        self.at += 1;
        Some(v)
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end - self.at + self.then;
        (n, Some(n))
    }

    #[inline]
    fn fold<B, F: FnMut(B, T) -> B>(self, init: B, mut f: F) -> B {
        let mut acc = init;
        for pos in self.at..self.end {
            // SAFETY: as in next: every position of both runs is a peeked entry.
            acc = f(acc, unsafe { read_entry(self.entries, pos) });
        }
        for pos in 0..self.then {
            // SAFETY: as above.
            acc = f(acc, unsafe { read_entry(self.entries, pos) });
        }
        acc
    }
}

impl<T: Copy> ExactSizeIterator for PeekedIter<'_, T> {}
impl<T: Copy> std::iter::FusedIterator for PeekedIter<'_, T> {}
