//! The ring's memory ordering under the loom model checker: every interleaving of a
//! producer thread and a consumer thread (within loom's preemption bound) is run, and
//! loom reports any entry read while it is being written, which is what a missing
//! acquire/release pair between the indices and the entries would allow.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test --release --no-default-features --test
//! loom_ring` (CI does, with its own target directory).
#![cfg(loom)]

use afxdp_rs::ring::LocalRing;
use loom::thread;

/// Produces `values` one small batch at a time, yielding while the ring is full.
fn produce(mut p: afxdp_rs::ring::ProducerRing<u64>, values: Vec<u64>, batch: u32) {
    let mut next = 0;
    while next < values.len() {
        let mut r = p.reserve(batch.min((values.len() - next) as u32));
        let n = r.len();
        for i in 0..n {
            r.write(i, values[next + i as usize]);
        }
        r.submit_all();
        next += n as usize;
        if n == 0 {
            thread::yield_now();
        }
    }
}

#[test]
fn entries_arrive_whole_and_in_order_across_the_wrap() {
    loom::model(|| {
        // Two slots, indices starting right below 2^32: the run wraps around.
        let ring = LocalRing::<u64>::new(2, u32::MAX - 1);
        let (p, mut c) = (ring.producer(), ring.consumer());
        let producer = thread::spawn(move || produce(p, vec![10, 11, 12], 2));
        let mut got = Vec::new();
        while got.len() < 3 {
            let peek = c.peek(2);
            for i in 0..peek.len() {
                got.push(peek.read(i));
            }
            let n = peek.len();
            peek.release_all();
            if n == 0 {
                thread::yield_now();
            }
        }
        producer.join().unwrap();
        assert_eq!(got, [10, 11, 12]);
    });
}

#[test]
fn cancelled_entries_come_back_and_slots_are_not_reused_early() {
    loom::model(|| {
        let ring = LocalRing::<u64>::new(2, u32::MAX);
        let (p, mut c) = (ring.producer(), ring.consumer());
        let producer = thread::spawn(move || produce(p, vec![1, 2, 3, 4], 1));
        let mut got = Vec::new();
        while got.len() < 4 {
            let mut peek = c.peek(2);
            if peek.len() == 2 {
                // Take the first, hand the second back: the next peek returns it again,
                // and the producer may not overwrite it meanwhile.
                got.push(peek.read(0));
                let again = peek.read(1);
                peek.cancel(1);
                peek.release_all();
                let retry = c.peek(1);
                assert_eq!(retry.read(0), again);
                retry.release(0); // still not consumed
            } else if peek.len() == 1 {
                got.push(peek.read(0));
                peek.release_all();
            } else {
                drop(peek);
                thread::yield_now();
            }
        }
        producer.join().unwrap();
        assert_eq!(got, [1, 2, 3, 4]);
    });
}
