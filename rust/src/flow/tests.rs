//! The filter grammar: each example's exact rules, the errors, and describe/parse
//! round trips.

use std::net::Ipv6Addr;

use super::*;

fn ok(expr: &str) -> Vec<Rule> {
    parse(expr).unwrap_or_else(|e| panic!("`{expr}` failed: {e}"))
}

fn err(expr: &str) -> String {
    match parse(expr) {
        Ok(r) => panic!("`{expr}` parsed to {r:?}"),
        Err(e) => e.to_string(),
    }
}

fn assert_err(expr: &str, needles: &[&str]) {
    let msg = err(expr);
    for n in needles {
        assert!(msg.contains(n), "error for `{expr}` lacks {n:?}: {msg}");
    }
}

fn eth(e: u16) -> Rule {
    Rule {
        fields: F_ETHERTYPE,
        ethertype: e.to_be(),
        ..Rule::default()
    }
}

fn w4(a: [u8; 4]) -> [u32; 4] {
    [u32::from_ne_bytes(a), 0, 0, 0]
}

fn w6(s: &str) -> [u32; 4] {
    to_words(s.parse::<Ipv6Addr>().unwrap().octets())
}

const TCP: Rule = Rule {
    fields: F_PROTO,
    ethertype: 0,
    vlan: 0,
    proto: 6,
    _pad: [0; 3],
    sport: 0,
    dport: 0,
    src: [0; 4],
    src_mask: [0; 4],
    dst: [0; 4],
    dst_mask: [0; 4],
};
const UDP: Rule = Rule { proto: 17, ..TCP };

const EXAMPLES: &[&str] = &[
    "udp and dst port 4789",
    "port 53",
    "udp port 53 or tcp port 80",
    "host 10.0.0.1",
    "dst net fd00::/8 and tcp",
    "vlan 100 and ip",
    "arp",
    "ether proto 0x88b5",
    "icmp or icmp6",
    "(tcp or udp) and dst port 53",
    "vlan",
    "ip proto 47 or ip6 proto tcp or proto 50",
    "src net 10.1.2.3/8 and dst host 10.9.9.9 or dst host ::1 and sctp src port 9",
    "ip6 and udp or ether proto 0x0800 and proto gre",
    "ip and tcp or host 10.0.0.1 and icmp or src 192.168.0.0/16 and src port 0",
];

#[test]
fn rule_layout_matches_c() {
    assert_eq!(std::mem::size_of::<Rule>(), 80);
    assert_eq!(std::mem::align_of::<Rule>(), 4);
    assert_eq!(std::mem::offset_of!(Rule, proto), 8);
    assert_eq!(std::mem::offset_of!(Rule, sport), 12);
    assert_eq!(std::mem::offset_of!(Rule, src), 16);
    assert_eq!(std::mem::offset_of!(Rule, dst_mask), 64);
}

#[test]
fn udp_dst_port() {
    let want = Rule {
        fields: F_PROTO | F_DPORT,
        dport: 4789u16.to_be(),
        ..UDP
    };
    assert_eq!(ok("udp and dst port 4789"), [want]);
    assert_eq!(ok("udp dst port 4789"), [want]);
    assert_eq!(ok("UDP && DST PORT 4789"), [want]);
}

#[test]
fn port_gives_two_rules() {
    let s = Rule {
        fields: F_SPORT,
        sport: 53u16.to_be(),
        ..Rule::default()
    };
    let d = Rule {
        fields: F_DPORT,
        dport: 53u16.to_be(),
        ..Rule::default()
    };
    assert_eq!(ok("port 53"), [s, d]);
    assert_eq!(ok("src port 53"), [s]);
    assert_eq!(ok("dst port 53"), [d]);
    assert_eq!(ok("port 0")[1].dport, 0);
    assert_eq!(ok("port 65535")[1].dport, 65535u16.to_be());
}

#[test]
fn udp_port_or_tcp_port() {
    let p = |base: Rule, n: u16| {
        [
            Rule {
                fields: F_PROTO | F_SPORT,
                sport: n.to_be(),
                ..base
            },
            Rule {
                fields: F_PROTO | F_DPORT,
                dport: n.to_be(),
                ..base
            },
        ]
    };
    let want: Vec<Rule> = p(UDP, 53).into_iter().chain(p(TCP, 80)).collect();
    assert_eq!(ok("udp port 53 or tcp port 80"), want);
    assert_eq!(ok("udp port 53 || tcp port 80"), want);
}

#[test]
fn host_v4() {
    let a = w4([10, 0, 0, 1]);
    let m = w4([255; 4]);
    let src = Rule {
        fields: F_ETHERTYPE | F_SRC,
        src: a,
        src_mask: m,
        ..eth(0x0800)
    };
    let dst = Rule {
        fields: F_ETHERTYPE | F_DST,
        dst: a,
        dst_mask: m,
        ..eth(0x0800)
    };
    assert_eq!(ok("host 10.0.0.1"), [src, dst]);
    assert_eq!(ok("src host 10.0.0.1"), [src]);
    assert_eq!(ok("src 10.0.0.1"), [src]);
    assert_eq!(ok("dst 10.0.0.1"), [dst]);
    assert_eq!(ok("ip host 10.0.0.1"), [src, dst]);
}

#[test]
fn net_v6_and_tcp() {
    let want = Rule {
        fields: F_ETHERTYPE | F_PROTO | F_DST,
        dst: w6("fd00::"),
        dst_mask: [u32::from_ne_bytes([0xff, 0, 0, 0]), 0, 0, 0],
        ..Rule {
            ethertype: 0x86ddu16.to_be(),
            ..TCP
        }
    };
    assert_eq!(ok("dst net fd00::/8 and tcp"), [want]);
    assert_eq!(ok("tcp and dst fd00::/8"), [want]);
    assert_eq!(
        ok("dst net FD00:1::/8 and tcp"),
        [want],
        "host bits are masked"
    );
}

#[test]
fn net_masks_and_host_bits() {
    let r = ok("src net 10.1.2.3/12");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].src, w4([10, 0, 0, 0]));
    assert_eq!(r[0].src_mask, w4([255, 0xf0, 0, 0]));
    let r = ok("dst net 2001:db8:ffff::1/33");
    assert_eq!(r[0].dst, w6("2001:db8:8000::"));
    assert_eq!(r[0].dst_mask, w6("ffff:ffff:8000::"));
    let r = ok("net 0.0.0.0/0");
    assert_eq!((r[0].src, r[0].src_mask), ([0; 4], [0; 4]));
    assert_eq!(r[0].fields, F_ETHERTYPE | F_SRC);
    let r = ok("host ::1");
    assert_eq!(r[0].src_mask, [u32::MAX; 4]);
    assert_eq!(r[0].ethertype, 0x86ddu16.to_be());
}

#[test]
fn ethertypes_and_vlan() {
    let want = Rule {
        fields: F_VLAN | F_VLAN_ID | F_ETHERTYPE,
        vlan: 100,
        ..eth(0x0800)
    };
    assert_eq!(ok("vlan 100 and ip"), [want]);
    assert_eq!(
        ok("vlan"),
        [Rule {
            fields: F_VLAN,
            ..Rule::default()
        }]
    );
    assert_eq!(ok("vlan 4095")[0].vlan, 4095);
    assert_eq!(ok("arp"), [eth(0x0806)]);
    assert_eq!(ok("ether proto 0x88b5"), [eth(0x88b5)]);
    assert_eq!(ok("ether proto 0X88B5"), [eth(0x88b5)]);
    assert_eq!(ok("ether proto 2048"), [eth(0x0800)]);
    assert_eq!(ok("ether proto ip6"), ok("ip6"));
    assert_eq!(ok("ether proto \\arp"), ok("arp"));
}

#[test]
fn protocols() {
    let icmp = Rule {
        fields: F_PROTO | F_ETHERTYPE,
        proto: 1,
        ..eth(0x0800)
    };
    let icmp6 = Rule {
        fields: F_PROTO | F_ETHERTYPE,
        proto: 58,
        ..eth(0x86dd)
    };
    assert_eq!(ok("icmp or icmp6"), [icmp, icmp6]);
    assert_eq!(ok("ip proto icmp"), [icmp]);
    assert_eq!(ok("ip proto 1"), [icmp]);
    assert_eq!(ok("ip6 proto \\icmp6"), [icmp6]);
    assert_eq!(ok("sctp")[0], Rule { proto: 132, ..TCP });
    assert_eq!(ok("proto 17"), [UDP]);
    assert_eq!(ok("proto udp"), [UDP]);
    assert_eq!(ok("proto 0x2f")[0].proto, 47);
    assert_eq!(ok("ip6 proto 255")[0].proto, 255);
    assert_eq!(ok("ip6 proto 58"), ok("icmp6"));
    assert_eq!(ok("vlan 0")[0].fields, F_VLAN | F_VLAN_ID);
}

#[test]
fn parentheses_distribute() {
    let d = |base: Rule| Rule {
        fields: F_PROTO | F_DPORT,
        dport: 53u16.to_be(),
        ..base
    };
    assert_eq!(ok("(tcp or udp) and dst port 53"), [d(TCP), d(UDP)]);
    assert_eq!(ok("dst port 53 and (tcp or udp)"), [d(TCP), d(UDP)]);
    assert_eq!(ok("((tcp) or (udp)) and (dst port 53)"), [d(TCP), d(UDP)]);
    // (a or b) and (c or d) -> 4 rules; `and` binds tighter than `or`.
    assert_eq!(ok("(tcp or udp) and (ip or ip6)").len(), 4);
    assert_eq!(ok("tcp or udp and ip").len(), 2);
    assert_eq!(ok("(tcp or udp) and ip").len(), 2);
}

#[test]
fn dedup_and_impossible_combinations() {
    assert_eq!(ok("tcp or tcp or (tcp)"), [TCP]);
    assert_eq!(ok("tcp and tcp"), [TCP]);
    // ip-tcp survives, the ip6 alternatives vanish against the IPv4 host.
    let r = ok("(ip or ip6) and tcp and src host 10.0.0.1");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].fields, F_ETHERTYPE | F_PROTO | F_SRC);
    // Nested networks intersect to the narrower one.
    let r = ok("src net 10.0.0.0/8 and src net 10.1.0.0/16");
    assert_eq!(
        (r[0].src, r[0].src_mask),
        (w4([10, 1, 0, 0]), w4([255, 255, 0, 0]))
    );
    assert_eq!(ok("net 10.0.0.0/8 and src host 10.1.2.3").len(), 2);
}

#[test]
fn never_matches() {
    assert_err(
        "ip and ip6",
        &[
            "`ip and ip6`",
            "can never match",
            "0x0800",
            "0x86dd",
            "`or`",
        ],
    );
    assert_err("tcp and udp", &["can never match", "tcp", "udp"]);
    assert_err(
        "src host 1.2.3.4 and dst host ::1",
        &["can never match", "IPv4", "IPv6"],
    );
    assert_err(
        "src net 10.0.0.0/8 and src net 11.0.0.0/8",
        &["10.0.0.0/8", "11.0.0.0/8"],
    );
    assert_err("arp and port 53", &["can never match", "arp"]);
    assert_err("arp and tcp", &["can never match"]);
    assert_err("icmp port 5", &["`icmp port 5`", "no ports"]);
    assert_err("icmp and dst port 5", &["no ports"]);
    assert_err("vlan 1 and vlan 2", &["VLAN 1", "VLAN 2"]);
    assert_err("ip6 host 10.0.0.1", &["can never match"]);
    assert_err("tcp or (ip and ip6)", &["`ip and ip6`", "column 9"]);
}

#[test]
fn not_is_rejected() {
    assert_err(
        "not tcp",
        &["`not`", "column 1", "not supported", "instead"],
    );
    assert_err("! tcp", &["`!`"]);
    assert_err("udp and not port 53", &["`not`", "column 9"]);
    assert_err("udp not tcp", &["`not`"]);
}

#[test]
fn number_errors() {
    assert_err(
        "tcp port",
        &["expected a port number", "`port`", "column 5", "ends"],
    );
    assert_err("port 70000", &["`70000`", "column 6", "0 to 65535"]);
    assert_err("tcp and port 70000", &["column 14"]);
    assert_err("port http", &["`http`", "decimal"]);
    assert_err("port -1", &["`-1`"]);
    assert_err("vlan 4096", &["`4096`", "0 to 4095"]);
    assert_err("ip proto 256", &["`256`"]);
    assert_err("ip proto foo", &["`foo`", "tcp, udp"]);
    assert_err("ether proto 0x10000", &["`0x10000`"]);
    assert_err("ether proto 0x", &["`0x`"]);
    assert_err("ether proto", &["ethertype", "ends"]);
    assert_err("ether host 1.2.3.4", &["`ether host`", "ether proto N"]);
}

#[test]
fn address_errors() {
    assert_err(
        "host 1.2.3",
        &["`1.2.3`", "column 6", "is not an IP address"],
    );
    assert_err("host example.com", &["`example.com`", "not resolved"]);
    assert_err("src net 10.0.0.0/33", &["`/33`", "column 17", "/0 to /32"]);
    assert_err("net fd00::/129", &["`/129`", "/0 to /128"]);
    assert_err("net 10.0.0.0/x", &["`/x`"]);
    assert_err("net 10.0.0.0", &["prefix length", "`net 10.0.0.0/24`"]);
    assert_err(
        "net 10.0.0.0 mask 255.0.0.0",
        &[
            "`net 10.0.0.0 mask` at column 1",
            "prefix length",
            "`net 10.0.0.0/8`",
        ],
    );
    assert_err("host 10.0.0.0/8", &["`net 10.0.0.0/8`"]);
    assert_err(
        "src tcp",
        &["expected `host`, `net`, `port` or an address", "`tcp`"],
    );
    assert_err("dst", &["ends"]);
}

#[test]
fn syntax_errors() {
    assert_err("", &["empty"]);
    assert_err("   ", &["empty"]);
    assert_err("foo", &["unknown word `foo`", "column 1", "ip6", "port"]);
    assert_err("tcp or bar", &["`bar`", "column 8"]);
    assert_err("10.0.0.1", &["`host 10.0.0.1`"]);
    assert_err("80", &["`port 80`"]);
    assert_err("tcp 80", &["unexpected `80`", "column 5", "`and`"]);
    assert_err("tcp and", &["expected a primitive", "ends"]);
    assert_err("and tcp", &["found `and`"]);
    assert_err("tcp or or udp", &["found `or`"]);
    assert_err("(tcp or udp", &["`(` at column 1", "never closed"]);
    assert_err("tcp)", &["unmatched `)`", "column 4"]);
    assert_err("()", &["found `)`"]);
    assert_err("tcp & udp", &["lone `&`", "`and`"]);
    assert_err("tcp | udp", &["lone `|`", "`or`"]);
    assert_err("(tcp udp)", &["unexpected `udp`"]);
}

#[test]
fn tokens_and_columns() {
    assert_eq!(
        ok("tcp&&dst port 53||udp"),
        ok("tcp and dst port 53 or udp")
    );
    assert_eq!(ok("(tcp)and(udp or tcp)"), [TCP]);
    assert_eq!(ok("\ttcp\n"), [TCP]);
    assert_err("tcp or é", &["`é` at column 8"]);
    assert_err("tcp\u{3000}or\u{a0}foo", &["`foo` at column 8"]);
    let deep = format!("{}tcp{}", "(".repeat(32), ")".repeat(32));
    assert_eq!(ok(&deep), [TCP]);
    let deeper = format!("{}tcp{}", "(".repeat(33), ")".repeat(33));
    assert_err(&deeper, &["column 33", "nests too deeply"]);
    assert_err(&"(".repeat(100_000), &["nests too deeply"]);
}

#[test]
fn too_many_rules() {
    let expr: Vec<String> = (1..=9).map(|p| format!("port {p}")).collect();
    assert_err(&expr.join(" or "), &["18 rules", "at most 16", "simplify"]);
    let expr: Vec<String> = (1..=16).map(|p| format!("dst port {p}")).collect();
    assert_eq!(ok(&expr.join(" or ")).len(), 16);
    let alts = |word: &str| {
        let v: Vec<String> = (1..=17).map(|n| format!("{word} {n}")).collect();
        format!("({})", v.join(" or "))
    };
    let expr = format!("{} and {}", alts("vlan"), alts("dst port"));
    assert_err(&expr, &["more than 256"]);
}

#[test]
fn describe_output() {
    assert_eq!(
        describe(&ok("udp and dst port 4789")),
        "udp and dst port 4789"
    );
    assert_eq!(describe(&ok("port 53")), "src port 53 or dst port 53");
    assert_eq!(
        describe(&ok("host 10.0.0.1")),
        "src host 10.0.0.1 or dst host 10.0.0.1"
    );
    assert_eq!(
        describe(&ok("tcp and dst net fd00::/8")),
        "tcp and dst net fd00::/8"
    );
    assert_eq!(describe(&ok("ip and vlan 100")), "vlan 100 and ip");
    assert_eq!(
        describe(&ok("ether proto 0x88b5 or arp")),
        "ether proto 0x88b5 or arp"
    );
    assert_eq!(
        describe(&ok("icmp or icmp6 or proto 1")),
        "icmp or icmp6 or proto icmp"
    );
    assert_eq!(
        describe(&ok("ip and tcp or ip6 proto 99")),
        "ip proto tcp or ip6 proto 99"
    );
    assert_eq!(
        describe(&ok("icmp and src 1.2.3.4")),
        "icmp and src host 1.2.3.4"
    );
    assert_eq!(
        describe(&ok("ip6 and proto 1 and src ::/0")),
        "proto icmp and src net ::/0"
    );
    assert_eq!(
        describe(&ok("ether proto 0x1234 and vlan")),
        "vlan and ether proto 0x1234"
    );
    assert_eq!(describe(&[]), "");
    assert_eq!(describe(&[Rule::default()]), "(anything)");
    let odd = Rule {
        fields: F_PROTO | F_ETHERTYPE,
        proto: 6,
        ..eth(0x88b5)
    };
    assert_eq!(describe(&[odd]), "ether proto 0x88b5 and proto tcp");
}

#[test]
fn describe_round_trips() {
    for expr in EXAMPLES {
        let rules = ok(expr);
        let text = describe(&rules);
        assert_eq!(parse(&text), Ok(rules), "`{expr}` described as `{text}`");
    }
}
