//! Ring microbenchmarks without the kernel: one producer and one consumer end of a
//! ring in this process, reserve/write/submit then peek/read/release, per batch size.
//! Throughput is in descriptors (elements) per second.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use afxdp_rs::ring::LocalRing;
use afxdp_rs::XdpDesc;

const RING: u32 = 2048;

fn produce_consume(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring_produce_consume");
    for batch in [1u32, 16, 64, 256] {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, &batch| {
            let ring = LocalRing::<XdpDesc>::new(RING, u32::MAX - 4096);
            let mut prod = ring.producer();
            let mut cons = ring.consumer();
            let mut addr = 0u64;
            b.iter(|| {
                let mut r = prod.reserve(batch);
                for i in 0..r.len() {
                    r.write(
                        i,
                        XdpDesc {
                            addr,
                            len: 64,
                            options: 0,
                        },
                    );
                    addr = addr.wrapping_add(2048);
                }
                r.submit_all();
                let peek = cons.peek(batch);
                let mut sum = 0u64;
                for i in 0..peek.len() {
                    sum = sum.wrapping_add(peek.read(i).addr);
                }
                peek.release_all();
                black_box(sum)
            });
        });
    }
    group.finish();
}

criterion_group!(benches, produce_consume);
criterion_main!(benches);
