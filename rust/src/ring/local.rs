//! [`LocalRing`]: a ring in heap memory that this process both produces and consumes,
//! for tests, model checking and benchmarks of the ring logic without a kernel.
#![allow(unsafe_code)]

use std::alloc::Layout;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{assert_ring_size, AtomicU32, Backing, ConsumerRing, ProducerRing, RingLayout};
use super::{RingParts, Slot};
use crate::sys::uapi::XDP_RING_NEED_WAKEUP;

/// A zeroed heap allocation, freed on drop.
pub(crate) struct HeapBlock {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: HeapBlock only owns the allocation (freeing it on drop); access to the memory
// goes through the ring types, whose own Send rules apply.
unsafe impl Send for HeapBlock {}
// SAFETY: as above, HeapBlock gives no access to the memory by itself.
unsafe impl Sync for HeapBlock {}

impl HeapBlock {
    fn zeroed(layout: Layout) -> Self {
        assert!(layout.size() > 0, "a ring has a header");
        // SAFETY: the layout has a non-zero size (checked above).
        let raw = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        HeapBlock { ptr, layout }
    }
}

impl Drop for HeapBlock {
    fn drop(&mut self) {
        // SAFETY: ptr was allocated with this layout by alloc_zeroed.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) };
    }
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
        let block = HeapBlock::zeroed(layout);
        let base = block.ptr;
        let ring_layout = RingLayout {
            producer: 0,
            consumer: line,
            flags: 2 * line,
            entries: header,
            size,
        };
        // SAFETY: the block holds the three index words, each on its own aligned cache
        // line, followed by room for `size` slots of T, aligned for them.
        let parts = unsafe { RingParts::new(Backing::Heap(block), base, ring_layout) };
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
