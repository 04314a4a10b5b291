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

#[test]
fn bulk_writes_and_reads_across_the_wrap() {
    // Eight slots, the batch starting three before the end of the array.
    let (ring, mut p, mut c) = pair(8, 5);
    let mut r = p.reserve(7);
    assert_eq!(r.len(), 7);
    r.write(0, 10);
    r.write_slice(1, &[11, 12, 13, 14]);
    r.write_slice(5, &[15, 16]);
    r.write_slice(7, &[]);
    r.submit_all();
    let peek = c.peek(8);
    assert_eq!(peek.len(), 7);
    let mut out = [0u64; 5];
    peek.read_into(2, &mut out);
    assert_eq!(out, [12, 13, 14, 15, 16]);
    let mut none: [u64; 0] = [];
    peek.read_into(7, &mut none);
    let it = peek.iter();
    assert_eq!(it.len(), 7);
    assert_eq!(it.collect::<Vec<_>>(), (10..17).collect::<Vec<_>>());
    let folded = peek.iter().fold(Vec::new(), |mut all, v| {
        all.push(v);
        all
    });
    assert_eq!(folded, (10..17).collect::<Vec<_>>());
    let mut it = peek.iter();
    it.nth(5);
    assert_eq!(it.size_hint(), (1, Some(1)));
    assert_eq!(it.next(), Some(16));
    assert_eq!((it.next(), it.next()), (None, None));
    peek.release_all();
    assert_eq!(ring.shared_indices(), (12, 12));
}

#[test]
fn write_iter_stops_at_the_shorter_end() {
    let (_r, mut p, mut c) = pair(8, u32::MAX - 2);
    // More values than slots: the reservation fills up.
    let mut r = p.reserve(5);
    assert_eq!(r.write_iter(100..), 5);
    r.submit_all();
    // Fewer values than slots: submit what was written.
    let mut r = p.reserve(3);
    let n = r.write_iter([7, 8]);
    assert_eq!(n, 2);
    r.submit(n);
    assert_eq!(consume(&mut c, 8), vec![100, 101, 102, 103, 104, 7, 8]);
    // Slots 4..8 then 0..2: the values run past the end of the array, and stop before
    // the reservation's end.
    let mut r = p.reserve(6);
    assert_eq!(r.write_iter(0..5), 5);
    r.submit(5);
    // The values end inside the first run (slots 1..4).
    let mut r = p.reserve(3);
    assert_eq!(r.write_iter([9]), 1);
    r.submit(1);
    assert_eq!(consume(&mut c, 8), vec![0, 1, 2, 3, 4, 9]);
    // The values end exactly at the end of the array (slots 2..8, then 0).
    let mut r = p.reserve(7);
    assert_eq!(r.write_iter(20..26), 6);
    r.submit(6);
    assert_eq!(consume(&mut c, 8), (20..26).collect::<Vec<_>>());
}

#[test]
fn iter_after_cancel_sees_what_is_kept() {
    let (_r, mut p, mut c) = pair(4, 2);
    produce(&mut p, &[1, 2, 3, 4]);
    let mut peek = c.peek(4);
    peek.cancel(1);
    assert_eq!(peek.iter().collect::<Vec<_>>(), vec![1, 2, 3]);
    peek.release(2);
    assert_eq!(consume(&mut c, 4), vec![3, 4]);
}

#[test]
#[should_panic(expected = "outside a reservation")]
fn write_past_the_reservation_panics() {
    let (_r, mut p, _c) = pair(8, 0);
    let mut r = p.reserve(2);
    r.write(2, 0);
}

#[test]
#[should_panic(expected = "outside a reservation")]
fn write_slice_past_the_reservation_panics() {
    let (_r, mut p, _c) = pair(8, 0);
    let mut r = p.reserve(4);
    r.write_slice(2, &[1, 2, 3]);
}

#[test]
#[should_panic(expected = "outside a reservation")]
fn write_slice_from_past_the_end_panics() {
    let (_r, mut p, _c) = pair(8, 0);
    let mut r = p.reserve(4);
    r.write_slice(5, &[]);
}

#[test]
#[should_panic(expected = "outside a peek")]
fn read_into_past_the_peek_panics() {
    let (_r, mut p, mut c) = pair(8, 0);
    produce(&mut p, &[1, 2, 3]);
    let peek = c.peek(8);
    let mut out = [0u64; 3];
    peek.read_into(1, &mut out);
}

#[test]
#[should_panic(expected = "outside a peek")]
fn read_past_a_cancelled_peek_panics() {
    let (_r, mut p, mut c) = pair(8, 0);
    produce(&mut p, &[1, 2, 3]);
    let mut peek = c.peek(8);
    peek.cancel(2);
    peek.read(1);
}

mod bulk_model {
    //! The bulk methods against a FIFO model: every batch written and read with a random
    //! mix of per-position, slice and iterator calls, starting near the 32-bit wrap.
    use std::collections::VecDeque;

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        /// Reserve up to n slots, fill them with `how` (the split point for slices),
        /// submit the first k.
        Produce { n: u32, k: u32, how: u8, split: u32 },
        /// Peek up to n, read them all with `how`, cancel the last c, release r.
        Consume {
            n: u32,
            c: u32,
            r: u32,
            how: u8,
            split: u32,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u32..40, 0u32..40, 0u8..3, 0u32..40).prop_map(|(n, k, how, split)| Op::Produce {
                n,
                k,
                how,
                split
            }),
            (0u32..40, 0u32..40, 0u32..40, 0u8..3, 0u32..40).prop_map(|(n, c, r, how, split)| {
                Op::Consume {
                    n,
                    c,
                    r,
                    how,
                    split,
                }
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn bulk_methods_behave_like_a_fifo(
            size_log in 0u32..6,
            start_back in 0u32..200,
            ops in proptest::collection::vec(op(), 1..200),
        ) {
            let size = 1u32 << size_log;
            let ring = LocalRing::<u64>::new(size, 0u32.wrapping_sub(start_back));
            let mut prod = ring.producer();
            let mut cons = ring.consumer();
            let mut model: VecDeque<u64> = VecDeque::new();
            let mut next = 0u64;
            for op in ops {
                match op {
                    Op::Produce { n, k, how, split } => {
                        let mut r = prod.reserve(n);
                        let len = r.len();
                        prop_assert_eq!(len, n.min(size - model.len() as u32));
                        let values: Vec<u64> = (next..next + len as u64).collect();
                        match how {
                            0 => {
                                for (i, &v) in values.iter().enumerate() {
                                    r.write(i as u32, v);
                                }
                            }
                            1 => {
                                let split = split.min(len) as usize;
                                r.write_slice(split as u32, &values[split..]);
                                r.write_slice(0, &values[..split]);
                            }
                            _ => prop_assert_eq!(r.write_iter(values.iter().copied()), len),
                        }
                        let k = k.min(len);
                        r.submit(k);
                        model.extend(&values[..k as usize]);
                        next += k as u64;
                    }
                    Op::Consume { n, c, r, how, split } => {
                        let mut peek = cons.peek(n);
                        let len = peek.len();
                        prop_assert_eq!(len, n.min(model.len() as u32));
                        let got: Vec<u64> = match how {
                            0 => (0..len).map(|i| peek.read(i)).collect(),
                            1 => {
                                let mut out = vec![0; len as usize];
                                let split = split.min(len);
                                peek.read_into(split, &mut out[split as usize..]);
                                peek.read_into(0, &mut out[..split as usize]);
                                out
                            }
                            _ => {
                                let it = peek.iter();
                                prop_assert_eq!(it.len(), len as usize);
                                it.collect()
                            }
                        };
                        let want: Vec<u64> = model.iter().take(len as usize).copied().collect();
                        prop_assert_eq!(got, want);
                        let c = c.min(len);
                        peek.cancel(c);
                        prop_assert_eq!(peek.iter().count() as u32, len - c);
                        let r = r.min(peek.len());
                        peek.release(r);
                        model.drain(..r as usize);
                    }
                }
                let (p, q) = ring.shared_indices();
                prop_assert_eq!(p.wrapping_sub(q), model.len() as u32, "published entries");
            }
        }
    }
}
