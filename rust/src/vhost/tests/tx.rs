//! TX: guest chains into the port.

use super::*;

#[test]
fn tx_single_descriptor_reaches_port_byte_exact() {
    let mem = new_mem();
    let mut d = Driver::new(&mem, 0, BUF_BASE);
    let mut q = d.queue();
    let mut qp = pair(plain_port());
    let f = frame(60, 1);
    let head = d.tx_packet(&f, &[usize::MAX]);
    let out = qp.process_tx(&mem, &mut q).unwrap();
    assert_eq!(out.completed, 1);
    assert!(out.notify && !out.port_full);
    assert_eq!(qp.port.drain(), vec![f]);
    assert_eq!(d.new_used(), vec![(u32::from(head), 0)]);
    let s = qp.stats.snapshot();
    assert_eq!((s.tx_packets, s.tx_bytes), (1, 60));
}

#[test]
fn tx_multi_descriptor_chains_byte_exact() {
    let mem = new_mem();
    let mut d = Driver::new(&mem, 0, BUF_BASE);
    let mut q = d.queue();
    let mut qp = pair(plain_port());
    let f1 = frame(1514, 2);
    let f2 = frame(9000, 3);
    let f3 = frame(64, 4);
    // header alone | 3 odd pieces;  header split across descriptors; one tiny segment each.
    let h1 = d.tx_packet(&f1, &[12, 10, 500, 0]);
    let h2 = d.tx_packet(&f2, &[5, 7 + 100, 4000, 0]);
    let h3 = d.tx_packet(&f3, &[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]);
    let out = qp.process_tx(&mem, &mut q).unwrap();
    assert_eq!(out.completed, 3);
    assert_eq!(qp.port.drain(), vec![f1, f2, f3]);
    assert_eq!(
        d.new_used(),
        vec![(h1.into(), 0), (h2.into(), 0), (h3.into(), 0)]
    );
    assert_eq!(qp.stats.snapshot().tx_bytes, 1514 + 9000 + 64);
}

#[test]
fn tx_indirect_chain() {
    let mem = new_mem();
    let mut d = Driver::new(&mem, 0, BUF_BASE);
    let mut q = d.queue();
    let mut qp = pair(plain_port());
    let f = frame(200, 5);
    let mut bytes = vec![0u8; VNET_HDR_LEN];
    bytes.extend_from_slice(&f);
    let a = d.alloc(bytes.len() as u32);
    mem.write_slice(&bytes, GuestAddress(a)).unwrap();
    // Indirect table with two descriptors: [hdr+50 bytes] -> [rest].
    let table = d.alloc(32);
    let t0 = SplitDescriptor::new(a, 62, VRING_DESC_F_NEXT as u16, 1);
    let t1 = SplitDescriptor::new(a + 62, bytes.len() as u32 - 62, 0, 0);
    mem.write_obj(RawDescriptor::from(t0), GuestAddress(table))
        .unwrap();
    mem.write_obj(RawDescriptor::from(t1), GuestAddress(table + 16))
        .unwrap();
    let head = d.add_raw(&[RawDescriptor::from(SplitDescriptor::new(
        table,
        32,
        VRING_DESC_F_INDIRECT as u16,
        0,
    ))]);
    qp.process_tx(&mem, &mut q).unwrap();
    assert_eq!(qp.port.drain(), vec![f]);
    assert_eq!(d.new_used(), vec![(head.into(), 0)]);
}

#[test]
fn tx_bad_chains_are_counted_and_returned() {
    let mem = new_mem();
    let mut d = Driver::new(&mem, 0, BUF_BASE);
    let mut q = d.queue();
    let mut qp = pair(plain_port());
    let raw = |addr: u64, len: u32, flags: u32, next: u16| {
        RawDescriptor::from(SplitDescriptor::new(addr, len, flags as u16, next))
    };
    let mut bad = Vec::new();
    // 1. buffer outside guest memory
    bad.push(d.add_raw(&[raw(MEM_SIZE as u64 - 16, 100, 0, 0)]));
    // 2. shorter than virtio header + Ethernet header
    let a = d.alloc(20);
    bad.push(d.add_chain(&[(a, 20, false)]));
    // 3. write-only descriptor in a TX chain
    let a = d.alloc(100);
    bad.push(d.add_chain(&[(a, 50, false), (a + 50, 50, true)]));
    // 4. descriptor loop: n -> n+1 -> n
    let n = d.next_desc;
    let a = d.alloc(200);
    bad.push(d.add_raw(&[
        raw(a, 100, VRING_DESC_F_NEXT, n + 1),
        raw(a + 100, 100, VRING_DESC_F_NEXT, n),
    ]));
    // 5. next index outside the descriptor table
    let a = d.alloc(100);
    bad.push(d.add_raw(&[raw(a, 100, VRING_DESC_F_NEXT, QSIZE + 5)]));
    // 6. indirect table outside guest memory
    bad.push(d.add_raw(&[raw(MEM_SIZE as u64 + 0x1000, 32, VRING_DESC_F_INDIRECT, 0)]));
    // 7. length overflowing u32 across the chain
    let a = d.alloc(64);
    bad.push(d.add_chain(&[(a, u32::MAX - 10, false), (a, 64, false)]));
    // ... and a good one at the end still goes through.
    let f = frame(100, 9);
    let good = d.tx_packet(&f, &[usize::MAX]);

    let out = qp.process_tx(&mem, &mut q).unwrap();
    assert_eq!(out.completed, bad.len() + 1);
    assert_eq!(qp.port.drain(), vec![f]);
    let mut expect: Vec<(u32, u32)> = bad.iter().map(|&h| (h.into(), 0)).collect();
    expect.push((good.into(), 0));
    assert_eq!(d.new_used(), expect);
    let s = qp.stats.snapshot();
    assert_eq!(s.tx_drop_bad_chain, bad.len() as u64);
    assert_eq!(s.tx_packets, 1);
}

#[test]
fn tx_backpressure_keeps_chain_until_port_has_room() {
    let mem = new_mem();
    let mut d = Driver::new(&mem, 0, BUF_BASE);
    let mut q = d.queue();
    let mut qp = pair(LoopbackPort::new(1, 65535, false).unwrap());
    let (f1, f2) = (frame(60, 1), frame(70, 2));
    let h1 = d.tx_packet(&f1, &[usize::MAX]);
    let h2 = d.tx_packet(&f2, &[usize::MAX]);
    let out = qp.process_tx(&mem, &mut q).unwrap();
    assert!(out.port_full);
    assert_eq!(out.completed, 1);
    assert_eq!(d.new_used(), vec![(h1.into(), 0)]);
    assert_eq!(qp.port.drain(), vec![f1]);
    let out = qp.process_tx(&mem, &mut q).unwrap();
    assert!(!out.port_full);
    assert_eq!(d.new_used(), vec![(h2.into(), 0)]);
    assert_eq!(qp.port.drain(), vec![f2]);
    assert_eq!(qp.stats.snapshot().tx_port_full, 1);
}

#[test]
fn tx_port_refused_and_too_large() {
    let mem = new_mem();
    let mut d = Driver::new(&mem, 0, BUF_BASE);
    let mut q = d.queue();
    let mut qp = pair(LoopbackPort::new(8, 1514, false).unwrap());
    d.tx_packet(&frame(1600, 1), &[usize::MAX]);
    qp.port.refuse_tx = true;
    d.tx_packet(&frame(60, 2), &[usize::MAX]);
    qp.process_tx(&mem, &mut q).unwrap();
    assert_eq!(d.new_used().len(), 2);
    assert_eq!(qp.port.pending(), 0);
    let s = qp.stats.snapshot();
    assert_eq!(
        (s.tx_drop_too_large, s.tx_drop_port_refused, s.tx_packets),
        (1, 1, 0)
    );
}

#[test]
fn tx_event_idx_suppresses_notification() {
    let mem = new_mem();
    let mut d = Driver::new(&mem, 0, BUF_BASE);
    let mut q = d.queue();
    q.set_event_idx(true);
    let mut qp = pair(plain_port());
    d.set_used_event(5); // driver wants an interrupt only once used idx passes 5
    d.tx_packet(&frame(60, 1), &[usize::MAX]);
    assert!(!qp.process_tx(&mem, &mut q).unwrap().notify);
    d.set_used_event(1);
    d.tx_packet(&frame(60, 1), &[usize::MAX]);
    assert!(qp.process_tx(&mem, &mut q).unwrap().notify);
}
