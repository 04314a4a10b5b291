//! Property test: the ring against a simple model (a FIFO queue), for random sequences
//! of reserve/write/submit and peek/cancel/release, starting near the 32-bit index
//! wrap-around. Also the frame pool: a frame is never handed out twice.

use std::collections::VecDeque;

use proptest::prelude::*;

use afxdp_rs::ring::LocalRing;
use afxdp_rs::{FramePool, UmemConfig};

#[derive(Debug, Clone)]
enum Op {
    /// Reserve up to n slots, write them, submit the first k (k <= reserved).
    Produce { n: u32, k: u32 },
    /// Peek up to n entries, cancel the last c of them, release the first r of the rest.
    Consume { n: u32, c: u32, r: u32 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u32..40, 0u32..40).prop_map(|(n, k)| Op::Produce { n, k }),
        (0u32..40, 0u32..40, 0u32..40).prop_map(|(n, c, r)| Op::Consume { n, c, r }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn ring_behaves_like_a_fifo(
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
                Op::Produce { n, k } => {
                    let mut r = prod.reserve(n);
                    let free = size - model.len() as u32;
                    prop_assert_eq!(r.len(), n.min(free), "reserve gives what fits");
                    let k = k.min(r.len());
                    for i in 0..r.len() {
                        r.write(i, next + i as u64);
                    }
                    r.submit(k);
                    for i in 0..k {
                        model.push_back(next + i as u64);
                    }
                    next += k as u64;
                }
                Op::Consume { n, c, r } => {
                    let mut peek = cons.peek(n);
                    prop_assert_eq!(peek.len(), n.min(model.len() as u32));
                    for i in 0..peek.len() {
                        prop_assert_eq!(peek.read(i), model[i as usize]);
                    }
                    let c = c.min(peek.len());
                    peek.cancel(c);
                    let r = r.min(peek.len());
                    peek.release(r);
                    for _ in 0..r {
                        model.pop_front();
                    }
                }
            }
            let (p, q) = ring.shared_indices();
            prop_assert_eq!(p.wrapping_sub(q), model.len() as u32, "published entries");
        }
    }

    #[test]
    fn pool_never_hands_out_a_frame_twice(
        count in 1u32..64,
        ops in proptest::collection::vec(any::<bool>(), 1..300),
    ) {
        let cfg = UmemConfig { frame_size: 2048, frame_count: count, headroom: 0 };
        let mut pool = FramePool::full(&cfg);
        let mut out: Vec<u64> = Vec::new();
        for take in ops {
            if take {
                if let Some(f) = pool.pop() {
                    prop_assert!(!out.contains(&f), "frame {} handed out twice", f);
                    prop_assert_eq!(f % 2048, 0);
                    prop_assert!(f < count as u64 * 2048);
                    out.push(f);
                } else {
                    prop_assert_eq!(out.len() as u32, count);
                }
            } else if let Some(f) = out.pop() {
                pool.push(f);
            }
            prop_assert_eq!(pool.len() + out.len(), count as usize);
        }
    }
}
