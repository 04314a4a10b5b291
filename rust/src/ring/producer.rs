//! The producing end of a ring (fill and tx) and its reservations.

use std::ptr::NonNull;
use std::sync::atomic::Ordering;

use super::{runs, write_entry, Ring, RingParts, Slot};

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

    /// Entries submitted but not yet taken by the consumer, read from the shared
    /// indices: what the other side can see waiting on the ring right now.
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
