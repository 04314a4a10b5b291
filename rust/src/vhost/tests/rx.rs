//! RX: port frames into guest buffers.

use super::*;

fn rx_case(buf_size: u32, frame_len: usize, expect_bufs: usize) {
    let mem = new_mem();
    let mut d = Driver::new(&mem, 0, BUF_BASE);
    let mut q = d.queue();
    let mut qp = pair(plain_port());
    let bufs = d.rx_buffers(16, buf_size);
    let f = frame(frame_len, 3);
    qp.port.inject(&f).unwrap();
    let out = qp.process_rx(&mem, &mut q, 64).unwrap();
    assert_eq!((out.consumed, out.delivered, out.no_buffers), (1, 1, false));
    assert!(out.notify);
    let used = d.new_used();
    assert_eq!(used.len(), expect_bufs);
    // buffers are consumed in ring order, all but the last filled completely
    for (i, &(id, len)) in used.iter().enumerate() {
        assert_eq!(id, u32::from(bufs[i].0));
        if i + 1 < used.len() {
            assert_eq!(len, buf_size);
        }
    }
    let (nb, got) = collect_rx(&d, &used, &bufs);
    assert_eq!(usize::from(nb), expect_bufs);
    assert_eq!(got, f);
    assert_eq!(qp.port.pending(), 0);
    let s = qp.stats.snapshot();
    assert_eq!((s.rx_packets, s.rx_bytes), (1, frame_len as u64));
}

#[test]
fn rx_60_bytes_into_1514_byte_buffers() {
    rx_case(1514, 60, 1);
}

#[test]
fn rx_9000_bytes_into_1514_byte_mergeable_buffers() {
    // 12 + 9000 = 9012 bytes -> 6 buffers (5 * 1514 + 1442)
    rx_case(1514, 9000, 6);
}

#[test]
fn rx_9000_bytes_into_4096_byte_mergeable_buffers() {
    rx_case(4096, 9000, 3);
}

#[test]
fn rx_exact_fit_and_many_packets() {
    let mem = new_mem();
    let mut d = Driver::new(&mem, 0, BUF_BASE);
    let mut q = d.queue();
    let mut qp = pair(plain_port());
    let bufs = d.rx_buffers(8, 1526);
    let frames: Vec<_> = (0..5)
        .map(|i| frame(if i == 0 { 1514 } else { 60 + i }, i as u8))
        .collect();
    for f in &frames {
        qp.port.inject(f).unwrap();
    }
    let out = qp.process_rx(&mem, &mut q, 64).unwrap();
    assert_eq!(out.delivered, 5);
    let used = d.new_used();
    assert_eq!(used.len(), 5);
    assert_eq!(
        used[0].1, 1526,
        "12 + 1514 fills a 1526-byte buffer exactly"
    );
    for (i, u) in used.iter().enumerate() {
        let (nb, got) = collect_rx(&d, &[*u], &bufs);
        assert_eq!(nb, 1);
        assert_eq!(got, frames[i]);
    }
}

#[test]
fn rx_no_buffers_leaves_packet_in_port() {
    let mem = new_mem();
    let mut d = Driver::new(&mem, 0, BUF_BASE);
    let mut q = d.queue();
    let mut qp = pair(plain_port());
    let f = frame(60, 1);
    qp.port.inject(&f).unwrap();
    let out = qp.process_rx(&mem, &mut q, 64).unwrap();
    assert!(out.no_buffers);
    assert_eq!((out.consumed, out.notify), (0, false));
    assert_eq!(qp.port.pending(), 1);
    assert_eq!(d.used_idx(), 0);
    assert_eq!(qp.stats.snapshot().rx_no_buffers, 1);
    // guest adds buffers -> packet delivered
    let bufs = d.rx_buffers(2, 2048);
    let out = qp.process_rx(&mem, &mut q, 64).unwrap();
    assert_eq!(out.delivered, 1);
    assert_eq!(qp.port.pending(), 0);
    let used = d.new_used();
    assert_eq!(collect_rx(&d, &used, &bufs).1, f);
    assert_eq!(qp.stats.snapshot().rx_packets, 1);
}

#[test]
fn rx_not_enough_mergeable_buffers_rolls_back() {
    let mem = new_mem();
    let mut d = Driver::new(&mem, 0, BUF_BASE);
    let mut q = d.queue();
    let mut qp = pair(plain_port());
    let mut bufs = d.rx_buffers(2, 1514);
    let f = frame(9000, 7);
    qp.port.inject(&f).unwrap();
    let out = qp.process_rx(&mem, &mut q, 64).unwrap();
    assert!(out.no_buffers);
    assert_eq!(qp.port.pending(), 1);
    assert_eq!(d.used_idx(), 0, "nothing published for a partial packet");
    assert_eq!(q.next_avail(), 0, "popped chains were put back");
    bufs.extend(d.rx_buffers(4, 1514));
    let out = qp.process_rx(&mem, &mut q, 64).unwrap();
    assert_eq!(out.delivered, 1);
    let used = d.new_used();
    assert_eq!(used.len(), 6);
    assert_eq!(
        used[0].0,
        u32::from(bufs[0].0),
        "starts with the first buffer again"
    );
    let (nb, got) = collect_rx(&d, &used, &bufs);
    assert_eq!((nb, got), (6, f));
}

#[test]
fn rx_without_mergeable_buffers() {
    let mem = new_mem();
    let mut d = Driver::new(&mem, 0, BUF_BASE);
    let mut q = d.queue();
    let mut qp = pair(plain_port());
    qp.features = NetFeatures {
        hdr_len: VNET_HDR_LEN,
        mrg_rxbuf: false,
    };
    let bufs = d.rx_buffers(2, 1526);
    let big = frame(9000, 1);
    let small = frame(60, 2);
    qp.port.inject(&big).unwrap();
    qp.port.inject(&small).unwrap();
    let out = qp.process_rx(&mem, &mut q, 64).unwrap();
    assert_eq!((out.consumed, out.delivered), (2, 1));
    let used = d.new_used();
    assert_eq!(
        used,
        vec![(bufs[0].0.into(), 72)],
        "the too-small chain was reused"
    );
    assert_eq!(collect_rx(&d, &used, &bufs), (1, small));
    assert_eq!(qp.stats.snapshot().rx_drop_too_large, 1);
}

#[test]
fn rx_legacy_header_without_num_buffers() {
    let mem = new_mem();
    let mut d = Driver::new(&mem, 0, BUF_BASE);
    let mut q = d.queue();
    let mut qp = pair(plain_port());
    qp.features = NetFeatures::from_acked(0);
    assert_eq!(qp.features.hdr_len, 10);
    let bufs = d.rx_buffers(1, 1524);
    let f = frame(100, 4);
    qp.port.inject(&f).unwrap();
    qp.process_rx(&mem, &mut q, 8).unwrap();
    let used = d.new_used();
    assert_eq!(used, vec![(bufs[0].0.into(), 110)]);
    assert_eq!(d.read(bufs[0].1 + 10, 100), f);
}

#[test]
fn rx_bad_chains_counted_and_skipped() {
    let mem = new_mem();
    let mut d = Driver::new(&mem, 0, BUF_BASE);
    let mut q = d.queue();
    let mut qp = pair(plain_port());
    let raw = |addr: u64, len: u32, flags: u32, next: u16| {
        RawDescriptor::from(SplitDescriptor::new(addr, len, flags as u16, next))
    };
    // leading bad chains: read-only RX buffer, out of memory, smaller than the header
    let a = d.alloc(1514);
    let b1 = d.add_chain(&[(a, 1514, false)]);
    let b2 = d.add_raw(&[raw(MEM_SIZE as u64 - 100, 1514, VRING_DESC_F_WRITE, 0)]);
    let a = d.alloc(8);
    let b3 = d.add_chain(&[(a, 8, true)]);
    // good, bad (read-only) in the middle, good
    let mut bufs = d.rx_buffers(1, 1514);
    let a = d.alloc(1514);
    let b4 = d.add_chain(&[(a, 1514, false)]);
    bufs.extend(d.rx_buffers(1, 1514));
    let f = frame(2000, 5);
    qp.port.inject(&f).unwrap();
    let out = qp.process_rx(&mem, &mut q, 8).unwrap();
    assert_eq!(out.delivered, 1);
    let used = d.new_used();
    // leading bad ones retired first, then the packet's two buffers back to back, then the
    // deferred bad one.
    assert_eq!(
        used,
        vec![
            (b1.into(), 0),
            (b2.into(), 0),
            (b3.into(), 0),
            (bufs[0].0.into(), 1514),
            (bufs[1].0.into(), 2012 - 1514),
            (b4.into(), 0),
        ]
    );
    assert_eq!(collect_rx(&d, &used[3..5], &bufs), (2, f));
    assert_eq!(qp.stats.snapshot().rx_bad_chain, 4);
}

#[test]
fn rx_event_idx_notification() {
    let mem = new_mem();
    let mut d = Driver::new(&mem, 0, BUF_BASE);
    let mut q = d.queue();
    q.set_event_idx(true);
    let mut qp = pair(plain_port());
    d.rx_buffers(8, 2048);
    d.set_used_event(2); // interrupt when used idx moves past 2
    qp.port.inject(&frame(60, 1)).unwrap();
    assert!(!qp.process_rx(&mem, &mut q, 8).unwrap().notify); // 0 -> 1
    qp.port.inject(&frame(60, 1)).unwrap();
    qp.port.inject(&frame(9000, 1)).unwrap();
    assert!(qp.process_rx(&mem, &mut q, 8).unwrap().notify); // 1 -> 3 crosses 2
}

#[test]
fn rx_budget_is_respected() {
    let mem = new_mem();
    let mut d = Driver::new(&mem, 0, BUF_BASE);
    let mut q = d.queue();
    let mut qp = pair(plain_port());
    d.rx_buffers(16, 2048);
    for i in 0..10 {
        qp.port.inject(&frame(60, i)).unwrap();
    }
    assert_eq!(qp.process_rx(&mem, &mut q, 4).unwrap().delivered, 4);
    assert_eq!(qp.port.pending(), 6);
}
