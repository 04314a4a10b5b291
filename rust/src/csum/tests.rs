//! Checksums against a plain 16-bit-word reference, on packets built here: complete,
//! partial (as an offloading sender leaves them) and corrupted, over IPv4 and IPv6
//! (with an extension header), TCP and UDP, with and without VLAN tags.

use super::*;
use proptest::prelude::*;

/// RFC 1071, one 16-bit word at a time.
fn reference_sum(chunks: &[&[u8]]) -> u16 {
    let bytes: Vec<u8> = chunks.concat();
    let mut sum: u32 = 0;
    for w in bytes.chunks(2) {
        let word = if w.len() == 2 {
            u16::from_be_bytes([w[0], w[1]])
        } else {
            u16::from_be_bytes([w[0], 0])
        };
        sum += word as u32;
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

#[derive(Debug, Clone)]
struct Spec {
    ipv6: bool,
    udp: bool,
    vlans: usize,
    /// IPv6 only: a hop-by-hop options header before the transport header.
    hop_by_hop: bool,
    payload: Vec<u8>,
    src: [u8; 16],
    dst: [u8; 16],
    ports: (u16, u16),
}

struct Built {
    pkt: Vec<u8>,
    field: usize,
    /// The pseudo-header sum (what a partial checksum holds).
    pseudo: u16,
}

/// Builds the frame with a correct checksum.
fn build(s: &Spec) -> Built {
    let mut p = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    for _ in 0..s.vlans {
        p.extend_from_slice(&[0x81, 0x00, 0x00, 0x2a]);
    }
    let mut l4 = Vec::new();
    l4.extend_from_slice(&s.ports.0.to_be_bytes());
    l4.extend_from_slice(&s.ports.1.to_be_bytes());
    let field_in_l4 = if s.udp {
        l4.extend_from_slice(&((8 + s.payload.len()) as u16).to_be_bytes());
        l4.extend_from_slice(&[0, 0]);
        6
    } else {
        l4.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
        16
    };
    l4.extend_from_slice(&s.payload);
    let proto = if s.udp { 17u8 } else { 6u8 };
    let len = l4.len();
    let pseudo;
    if s.ipv6 {
        p.extend_from_slice(&0x86ddu16.to_be_bytes());
        let ext = if s.hop_by_hop { 8 } else { 0 };
        let mut h = vec![0x60, 0, 0, 0];
        h.extend_from_slice(&((len + ext) as u16).to_be_bytes());
        h.push(if s.hop_by_hop { 0 } else { proto });
        h.push(64);
        h.extend_from_slice(&s.src);
        h.extend_from_slice(&s.dst);
        if s.hop_by_hop {
            h.extend_from_slice(&[proto, 0, 1, 4, 0, 0, 0, 0]); // PadN
        }
        let mut ph = Vec::new();
        ph.extend_from_slice(&s.src);
        ph.extend_from_slice(&s.dst);
        ph.extend_from_slice(&(len as u32).to_be_bytes());
        ph.extend_from_slice(&[0, 0, 0, proto]);
        pseudo = reference_sum(&[&ph]);
        p.extend_from_slice(&h);
    } else {
        p.extend_from_slice(&0x0800u16.to_be_bytes());
        let mut h = vec![0x45, 0];
        h.extend_from_slice(&((20 + len) as u16).to_be_bytes());
        h.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0]);
        h.extend_from_slice(&s.src[..4]);
        h.extend_from_slice(&s.dst[..4]);
        let hc = !reference_sum(&[&h]);
        h[10..12].copy_from_slice(&hc.to_be_bytes());
        let mut ph = Vec::new();
        ph.extend_from_slice(&s.src[..4]);
        ph.extend_from_slice(&s.dst[..4]);
        ph.extend_from_slice(&[0, proto]);
        ph.extend_from_slice(&(len as u16).to_be_bytes());
        pseudo = reference_sum(&[&ph]);
        p.extend_from_slice(&h);
    }
    let mut csum = !reference_sum(&[&pseudo.to_be_bytes(), &l4]);
    if s.udp && csum == 0 {
        csum = 0xffff;
    }
    l4[field_in_l4..field_in_l4 + 2].copy_from_slice(&csum.to_be_bytes());
    let field = p.len() + field_in_l4;
    p.extend_from_slice(&l4);
    Built {
        pkt: p,
        field,
        pseudo,
    }
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        any::<bool>(),
        any::<bool>(),
        0usize..3,
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..1500),
        any::<[u8; 16]>(),
        any::<[u8; 16]>(),
        any::<(u16, u16)>(),
    )
        .prop_map(
            |(ipv6, udp, vlans, hop_by_hop, payload, src, dst, ports)| Spec {
                ipv6,
                udp,
                vlans,
                hop_by_hop: ipv6 && hop_by_hop,
                payload,
                src,
                dst,
                ports,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn complete_partial_and_wrong_are_told_apart(s in spec(), flip in any::<prop::sample::Index>()) {
        let b = build(&s);
        prop_assert_eq!(classify(&b.pkt), L4Checksum::Complete);
        let mut same_pkt = b.pkt.clone();
        prop_assert!(!complete_partial(&mut same_pkt) || same_pkt == b.pkt,
            "a complete packet is never changed");

        // As an offloading sender leaves it: the pseudo-header sum in the field.
        let mut partial = b.pkt.clone();
        partial[b.field..b.field + 2].copy_from_slice(&b.pseudo.to_be_bytes());
        if partial != b.pkt {
            prop_assert_eq!(classify(&partial), L4Checksum::Partial);
        }
        prop_assert!(complete_partial(&mut partial) || partial == b.pkt);
        prop_assert_eq!(classify(&partial), L4Checksum::Complete);
        prop_assert!(super::same(
            u16::from_be_bytes([partial[b.field], partial[b.field + 1]]),
            u16::from_be_bytes([b.pkt[b.field], b.pkt[b.field + 1]])
        ));

        // Cut into buffers (any lengths, odd ones too; the headers stay in the first):
        // the same answers.
        let head = b.field + 2;
        let cut = head + flip.index(b.pkt.len() - head + 1);
        let cut2 = cut + (b.pkt.len() - cut) / 3;
        let mut pieces = b.pkt.clone();
        pieces[b.field..b.field + 2].copy_from_slice(&b.pseudo.to_be_bytes());
        let (first, rest) = pieces.split_at_mut(cut);
        let (mid, last) = rest.split_at(cut2 - cut);
        if first.len() > b.field + 1 && u16::from_be_bytes([b.pkt[b.field], b.pkt[b.field + 1]]) != b.pseudo {
            prop_assert_eq!(classify_buffers(&[first, mid, last]), L4Checksum::Partial);
        }
        complete_partial_buffers(first, &[mid, last]);
        prop_assert_eq!(classify_buffers(&[first, mid, last]), L4Checksum::Complete);
        prop_assert_eq!(classify(&pieces), L4Checksum::Complete);

        // A changed byte after the IP header (outside the checksum field) is wrong,
        // and stays wrong.
        let start = b.pkt.len() - s.payload.len() - if s.udp { 8 } else { 20 };
        let i = start + flip.index(b.pkt.len() - start);
        let field = u16::from_be_bytes([b.pkt[b.field], b.pkt[b.field + 1]]);
        if i != b.field && i != b.field + 1 && !super::same(field, b.pseudo) {
            let mut bad = b.pkt.clone();
            bad[i] ^= 0x20;
            prop_assert_eq!(classify(&bad), L4Checksum::Wrong);
            let before = bad.clone();
            prop_assert!(!complete_partial(&mut bad));
            prop_assert_eq!(bad, before);
        }
    }
}

fn example(ipv6: bool, udp: bool) -> Spec {
    Spec {
        ipv6,
        udp,
        vlans: 0,
        hop_by_hop: false,
        payload: b"hello, afxdp".to_vec(),
        src: [10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        dst: [10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
        ports: (40000, 5201),
    }
}

#[test]
fn udp_over_ipv4_without_checksum_is_absent_and_left_alone() {
    let mut b = build(&example(false, true));
    b.pkt[b.field..b.field + 2].copy_from_slice(&[0, 0]);
    assert_eq!(classify(&b.pkt), L4Checksum::Absent);
    let before = b.pkt.clone();
    assert!(!complete_partial(&mut b.pkt));
    assert_eq!(b.pkt, before);
}

#[test]
fn fragments_truncated_and_other_protocols_are_not_applicable() {
    let b = build(&example(false, false));
    let mut frag = b.pkt.clone();
    frag[14 + 6] = 0x20; // more fragments
    assert_eq!(classify(&frag), L4Checksum::NotApplicable);
    assert!(!complete_partial(&mut frag));
    assert_eq!(
        classify(&b.pkt[..b.pkt.len() - 1]),
        L4Checksum::NotApplicable
    );
    assert_eq!(classify(&b.pkt[..20]), L4Checksum::NotApplicable);
    let mut arp = b.pkt.clone();
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    assert_eq!(classify(&arp), L4Checksum::NotApplicable);
    let mut icmp = b.pkt.clone();
    icmp[14 + 9] = 1;
    assert_eq!(classify(&icmp), L4Checksum::NotApplicable);
    assert_eq!(classify(&[]), L4Checksum::NotApplicable);
}

#[test]
fn trailing_ethernet_padding_is_not_part_of_the_segment() {
    // A short frame padded to 60 bytes: the IP length, not the frame, bounds the sum.
    let b = build(&Spec {
        payload: vec![1, 2],
        ..example(false, true)
    });
    let mut padded = b.pkt.clone();
    padded.resize(60, 0xee);
    assert_eq!(classify(&padded), L4Checksum::Complete);
}

#[test]
fn a_computed_zero_udp_checksum_is_sent_as_all_ones() {
    // Find a payload whose UDP checksum computes to zero, then complete its partial.
    for x in 0..=u16::MAX {
        let b = build(&Spec {
            payload: x.to_be_bytes().to_vec(),
            ..example(false, true)
        });
        if u16::from_be_bytes([b.pkt[b.field], b.pkt[b.field + 1]]) == 0xffff {
            let mut partial = b.pkt.clone();
            partial[b.field..b.field + 2].copy_from_slice(&b.pseudo.to_be_bytes());
            assert!(complete_partial(&mut partial));
            assert_eq!(partial, b.pkt);
            return;
        }
    }
    panic!("no payload gives a zero checksum");
}
