//! Rules printed back as a filter, in the grammar [`super::parse`] reads.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::*;

/// Render rules as one expression in the grammar `parse` reads (rules joined by `or`).
/// An empty list gives "" and a rule without fields "(anything)"; `parse` makes neither.
pub fn describe(rules: &[Rule]) -> String {
    let all: Vec<String> = rules.iter().map(describe_rule).collect();
    all.join(" or ")
}

fn describe_rule(r: &Rule) -> String {
    let has = |bit: u32| r.fields & bit != 0;
    let eth = has(F_ETHERTYPE).then(|| u16::from_be(r.ethertype));
    // An address already implies the IPv4/IPv6 ethertype.
    let implied = has(F_SRC | F_DST) && matches!(eth, Some(ETH_IP | ETH_IP6));
    let shown = if implied { None } else { eth };
    let mut parts = Vec::new();
    if has(F_VLAN_ID) {
        parts.push(format!("vlan {}", r.vlan));
    } else if has(F_VLAN) {
        parts.push("vlan".into());
    }
    let proto = proto_word(r.proto);
    match (eth, has(F_PROTO).then_some(r.proto)) {
        (Some(ETH_IP), Some(1)) => parts.push("icmp".into()),
        (Some(ETH_IP6), Some(58)) => parts.push("icmp6".into()),
        (_, Some(p)) => match shown {
            Some(e @ (ETH_IP | ETH_IP6)) => parts.push(format!("{} proto {proto}", eth_word(e))),
            Some(e) => parts.push(format!("ether proto {} and proto {proto}", eth_word(e))),
            None if [6, 17, 132].contains(&p) => parts.push(proto),
            None => parts.push(format!("proto {proto}")),
        },
        (_, None) => match shown {
            Some(e @ (ETH_IP | ETH_IP6 | ETH_ARP)) => parts.push(eth_word(e)),
            Some(e) => parts.push(format!("ether proto {}", eth_word(e))),
            None => {}
        },
    }
    if has(F_SRC) {
        parts.push(format!("src {}", net_text(r, r.src, r.src_mask)));
    }
    if has(F_DST) {
        parts.push(format!("dst {}", net_text(r, r.dst, r.dst_mask)));
    }
    if has(F_SPORT) {
        parts.push(format!("src port {}", host16(r.sport)));
    }
    if has(F_DPORT) {
        parts.push(format!("dst port {}", host16(r.dport)));
    }
    if parts.is_empty() {
        return "(anything)".into();
    }
    parts.join(" and ")
}

/// `host A` or `net A/len`; the family comes from the ethertype, else from the mask.
pub(super) fn net_text(r: &Rule, addr: [u32; 4], mask: [u32; 4]) -> String {
    let eth = (r.fields & F_ETHERTYPE != 0).then(|| u16::from_be(r.ethertype));
    let v6 = eth == Some(ETH_IP6) || (eth != Some(ETH_IP) && mask[1..].iter().any(|&w| w != 0));
    let b = to_bytes(addr);
    let (text, max, len) = if v6 {
        let len = mask.iter().map(|w| w.count_ones()).sum();
        (Ipv6Addr::from(b).to_string(), 128, len)
    } else {
        let text = Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string();
        (text, 32, mask[0].count_ones())
    };
    if len == max {
        format!("host {text}")
    } else {
        format!("net {text}/{len}")
    }
}
