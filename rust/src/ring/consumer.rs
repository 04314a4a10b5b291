//! The consuming end of a ring (rx and completion), its peeks and their iterator.

use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;

use super::{read_entry, runs, Ring, RingParts, Slot};

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

    /// Entries the producer has published that we have not released yet, read from the
    /// shared indices (peeked but unreleased entries count as waiting).
    pub fn waiting(&self) -> u32 {
        let published = self.ring.producer().load(Ordering::Acquire);
        published.wrapping_sub(self.ring.consumer().load(Ordering::Relaxed))
    }

    /// Whether the kernel asked for a system call (meaningful on rx and fill only).
    #[inline]
    pub fn needs_wakeup(&self) -> bool {
        self.ring.needs_wakeup()
    }
}

/// Entries peeked from a consumer ring. Like [`Reservation`](super::Reservation), it
/// carries the entry array's address, the mask and its first index by value.
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
        // Reservation::write_slice). `out` is ordinary memory of ours, not the ring's.
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
