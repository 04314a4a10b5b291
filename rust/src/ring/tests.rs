//! Unit tests of the rings, on heap-backed [`LocalRing`]s.

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
