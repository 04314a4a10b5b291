//! The cost of finding and finishing partial checksums, per packet: `classify` (reads
//! every byte) and `complete_partial` on a partial packet (reads every byte, writes
//! the field) and on a complete one (reads only the headers: the forwarding fast path).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use afxdp_rs::csum::{classify, complete_partial, L4Checksum};

/// An Ethernet frame of `len` bytes carrying TCP over IPv4 or IPv6, its checksum left
/// partial (the pseudo-header sum), as an offloading sender leaves it.
fn partial(len: usize, ipv6: bool) -> Vec<u8> {
    let mut p = vec![0u8; len];
    p[..12].copy_from_slice(&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]);
    let (l3, l4) = (14, if ipv6 { 54 } else { 34 });
    let seg = (len - l4) as u16;
    if ipv6 {
        p[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
        p[l3] = 0x60;
        p[l3 + 4..l3 + 6].copy_from_slice(&seg.to_be_bytes());
        p[l3 + 6] = 6;
        p[l3 + 8] = 0xfd;
        p[l3 + 39] = 1;
    } else {
        p[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        p[l3] = 0x45;
        p[l3 + 2..l3 + 4].copy_from_slice(&(seg + 20).to_be_bytes());
        p[l3 + 9] = 6;
        p[l3 + 12..l3 + 20].copy_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
    }
    p[l4 + 12] = 0x50;
    for (i, b) in p[l4 + 20..].iter_mut().enumerate() {
        *b = i as u8;
    }
    // The field value classify calls partial is the pseudo-header sum.
    for v in 0..=u16::MAX {
        p[l4 + 16..l4 + 18].copy_from_slice(&v.to_be_bytes());
        if classify(&p) == L4Checksum::Partial {
            return p;
        }
    }
    unreachable!("some value is the pseudo-header sum")
}

fn csum(c: &mut Criterion) {
    let mut group = c.benchmark_group("checksum");
    group.throughput(Throughput::Elements(1));
    for (name, len, ipv6) in [
        ("tcp4_64B", 64, false),
        ("tcp4_1514B", 1514, false),
        ("tcp6_1514B", 1514, true),
    ] {
        let p = partial(len, ipv6);
        let mut complete = p.clone();
        assert!(complete_partial(&mut complete));
        assert_eq!(classify(&complete), L4Checksum::Complete);
        group.bench_function(BenchmarkId::new("classify", name), |b| {
            b.iter(|| classify(std::hint::black_box(&complete)))
        });
        group.bench_function(BenchmarkId::new("complete_partial", name), |b| {
            let mut work = p.clone();
            let field = if ipv6 { 54 + 16 } else { 34 + 16 };
            b.iter(|| {
                // Partial again for every round.
                work[field..field + 2].copy_from_slice(&p[field..field + 2]);
                complete_partial(std::hint::black_box(&mut work))
            })
        });
        group.bench_function(BenchmarkId::new("already_complete", name), |b| {
            let mut work = complete.clone();
            b.iter(|| complete_partial(std::hint::black_box(&mut work)))
        });
    }
    group.finish();
}

criterion_group!(benches, csum);
criterion_main!(benches);
