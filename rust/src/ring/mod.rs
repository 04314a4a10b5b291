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

mod consumer;
mod local;
mod producer;
#[cfg(test)]
mod tests;

pub use consumer::{ConsumerRing, Peeked, PeekedIter};
pub use local::LocalRing;
pub use producer::{ProducerRing, Reservation};

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
