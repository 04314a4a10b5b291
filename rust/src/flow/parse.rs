//! Filters in tcpdump's words into rules: a small recursive-descent parser, then
//! distribution of `and` over `or` into at most [`MAX_RULES`] rules.

use std::fmt;
use std::net::IpAddr;

use super::describe::net_text;
use super::*;

/// Cap on alternatives while expanding, before the final `MAX_RULES` check.
const MAX_EXPANSION: usize = MAX_RULES * MAX_RULES;
/// Parenthesis nesting limit (the parser recurses on `(`).
const MAX_DEPTH: usize = 32;
const WORDS: &str = "ip, ip6, arp, ether proto N, vlan [N], tcp, udp, sctp, icmp, icmp6, \
    [ip|ip6] proto N, [src|dst] host A, [src|dst] net A/len, [src|dst] port N, \
    [tcp|udp|sctp] [src|dst] port N, and (&&), or (||), ( )";
/// Fields holding one value, for conflict checks: (bit, name, value in host order).
type Get = fn(&Rule) -> u32;
const VALUES: [(u32, &str, Get); 5] = [
    (F_ETHERTYPE, "ethertype", |r| host16(r.ethertype)),
    (F_VLAN_ID, "VLAN", |r| r.vlan.into()),
    (F_PROTO, "protocol", |r| r.proto.into()),
    (F_SPORT, "source port", |r| host16(r.sport)),
    (F_DPORT, "destination port", |r| host16(r.dport)),
];
/// Which side(s) an address or port primitive applies to: (source, destination).
type Dir = (bool, bool);
const EITHER: Dir = (true, true);

/// Parse a tcpdump-style expression into at most `MAX_RULES` rules (any of which may match).
pub fn parse(expr: &str) -> Result<Vec<Rule>, FilterError> {
    let toks = tokenize(expr)?;
    if toks.is_empty() {
        return fail("empty filter expression; write e.g. `udp and dst port 4789`".into());
    }
    let mut p = Parser { expr, toks, pos: 0 };
    let rules = p.expr()?;
    if let Some(t) = p.peek() {
        return fail(unexpected(t));
    }
    let (n, expr) = (rules.len(), expr.trim());
    if n > MAX_RULES {
        return fail(format!(
            "`{expr}` expands to {n} rules but at most {MAX_RULES} fit; simplify it: drop \
             alternatives, or say `src`/`dst` instead of `host`/`port` (each makes two rules)"
        ));
    }
    Ok(rules)
}

fn fail<T>(message: String) -> Result<T, FilterError> {
    Err(FilterError { message })
}

/// A token: its text, 1-based character column (for messages) and byte offset (for quoting).
#[derive(Clone, Copy)]
struct Tok<'a> {
    text: &'a str,
    col: usize,
    at: usize,
}

impl Tok<'_> {
    fn is(&self, words: &[&str]) -> bool {
        words.iter().any(|w| self.text.eq_ignore_ascii_case(w))
    }
}

/// Tokens print as they are quoted in messages: "`text` at column N".
impl fmt::Display for Tok<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` at column {}", self.text, self.col)
    }
}

fn tokenize(src: &str) -> Result<Vec<Tok<'_>>, FilterError> {
    let chars: Vec<(usize, char)> = src.char_indices().collect();
    let is_sep = |c: char| c.is_whitespace() || "()!&|".contains(c);
    let (mut toks, mut i, mut depth) = (Vec::new(), 0, 0);
    while i < chars.len() {
        let (at, c) = chars[i];
        let col = i + 1;
        let n = match c {
            _ if c.is_whitespace() => 0,
            '(' if depth == MAX_DEPTH => {
                return fail(format!("`(` at column {col} nests too deeply; simplify"));
            }
            '(' | ')' => {
                depth = if c == '(' {
                    depth + 1
                } else {
                    depth.saturating_sub(1)
                };
                1
            }
            '!' => 1,
            '&' | '|' if chars.get(i + 1).map(|x| x.1) == Some(c) => 2,
            '&' | '|' => {
                let word = if c == '&' { "and" } else { "or" };
                let text = format!("`{c}{c}` or `{word}`");
                return fail(format!("lone `{c}` at column {col}; write {text}"));
            }
            _ => chars[i..].iter().take_while(|x| !is_sep(x.1)).count(),
        };
        if n > 0 {
            let end = chars.get(i + n).map_or(src.len(), |x| x.0);
            let text = &src[at..end];
            toks.push(Tok { text, col, at });
        }
        i += n.max(1);
    }
    Ok(toks)
}

fn unexpected(t: Tok) -> String {
    if t.is(&["not", "!"]) {
        not_supported(t)
    } else if t.text == ")" {
        format!("unmatched {t}; remove it or add a `(` before it")
    } else {
        format!("unexpected {t}; join primitives with `and` or `or`")
    }
}

fn not_supported(t: Tok) -> String {
    format!(
        "{t} is not supported: rules can only select packets, not exclude them; list what \
         you want instead (e.g. `udp or icmp` rather than `not tcp`)"
    )
}

/// The source-side and/or destination-side alternative, as `dir` asks.
fn pick((s, d): Dir, src: Rule, dst: Rule) -> Vec<Rule> {
    let sides = [(s, src), (d, dst)].into_iter();
    sides.filter_map(|(on, r)| on.then_some(r)).collect()
}

struct Parser<'a> {
    expr: &'a str,
    toks: Vec<Tok<'a>>,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<Tok<'a>> {
        self.toks.get(self.pos).copied()
    }

    fn peek_is(&self, words: &[&str]) -> bool {
        self.peek().is_some_and(|t| t.is(words))
    }

    fn eat(&mut self, words: &[&str]) -> bool {
        let hit = self.peek_is(words);
        self.pos += hit as usize;
        hit
    }

    /// The next token, which must exist: `what` is what should follow the previous one.
    fn need(&mut self, what: &str) -> Result<Tok<'a>, FilterError> {
        let Some(t) = self.peek() else {
            let prev = self.toks[self.pos - 1];
            let end = "but the expression ends there";
            return fail(format!("expected {what} after {prev}, {end}"));
        };
        self.pos += 1;
        Ok(t)
    }

    fn expr(&mut self) -> Result<Vec<Rule>, FilterError> {
        let mut rules = self.conj()?;
        while self.eat(&["or", "||"]) {
            for r in self.conj()? {
                push_unique(&mut rules, r);
            }
            check_expansion(rules.len())?;
        }
        Ok(rules)
    }

    fn conj(&mut self) -> Result<Vec<Rule>, FilterError> {
        let start = self.pos;
        let mut rules = self.prim()?;
        while self.eat(&["and", "&&"]) {
            let rhs = self.prim()?;
            rules = self.and(&rules, &rhs, start)?;
        }
        Ok(rules)
    }

    /// Intersect two sets of alternatives; tokens `start..pos` are quoted if nothing is left.
    fn and(&self, a: &[Rule], b: &[Rule], start: usize) -> Result<Vec<Rule>, FilterError> {
        let mut out = Vec::new();
        let mut why = None;
        for (x, y) in a.iter().flat_map(|x| b.iter().map(move |y| (x, y))) {
            match merge(x, y) {
                Ok(r) => push_unique(&mut out, r),
                Err(e) => _ = why.get_or_insert(e),
            }
        }
        if let Some(why) = why.filter(|_| out.is_empty()) {
            let (s, e) = (self.toks[start], self.toks[self.pos - 1]);
            let (text, col) = (&self.expr[s.at..e.at + e.text.len()], s.col);
            return fail(format!(
                "`{text}` (column {col}) can never match: {why}; join the alternatives with \
                 `or` or drop one"
            ));
        }
        check_expansion(out.len())?;
        Ok(out)
    }

    fn prim(&mut self) -> Result<Vec<Rule>, FilterError> {
        let start = self.pos;
        let t = self.need("a primitive such as `tcp` or `port 53`")?;
        let w = t.text.to_ascii_lowercase();
        match w.as_str() {
            "(" => {
                let rules = self.expr()?;
                match self.peek() {
                    Some(c) if c.text == ")" => self.pos += 1,
                    Some(other) => return fail(unexpected(other)),
                    None => return fail(format!("{t} is never closed; add a `)`")),
                }
                Ok(rules)
            }
            "not" | "!" => fail(not_supported(t)),
            "ip" | "ip6" => {
                let mut r = with_eth(if w == "ip" { ETH_IP } else { ETH_IP6 });
                if !self.eat(&["proto"]) {
                    return self.qualified(r, start);
                }
                r.fields |= F_PROTO;
                r.proto = proto_value(self.need("an IP protocol number or name")?)?;
                Ok(vec![r])
            }
            "arp" => Ok(vec![with_eth(ETH_ARP)]),
            "ether" => {
                let p = self.need("`proto`")?;
                if !p.is(&["proto"]) {
                    let what = format!("`ether {}` at column {}", p.text, t.col);
                    let why = "only `ether proto N` is (MAC addresses can't be matched)";
                    return fail(format!("{what} is not supported; {why}"));
                }
                let v = self.need("an ethertype such as 0x88b5 or ip6")?;
                let e = match by_name(&ETH_NAMES, &ETH_VALUES, v.text) {
                    Some(e) => e,
                    None => number(v, 0xffff, "an ethertype", true)? as u16,
                };
                Ok(vec![with_eth(e)])
            }
            "vlan" => {
                let mut r = rule(F_VLAN);
                let numeric = |n: Tok| n.text.starts_with(|c: char| c.is_ascii_digit());
                if self.peek().is_some_and(numeric) {
                    r.fields |= F_VLAN_ID;
                    r.vlan = number(self.need("")?, 4095, "a VLAN id", false)? as u16;
                }
                Ok(vec![r])
            }
            "tcp" | "udp" | "sctp" | "icmp" | "icmp6" => {
                let mut r = match w.as_str() {
                    "icmp" => with_eth(ETH_IP),
                    "icmp6" => with_eth(ETH_IP6),
                    _ => rule(0),
                };
                r.fields |= F_PROTO;
                r.proto = proto_value(t)?;
                self.qualified(r, start)
            }
            "proto" => {
                let mut r = rule(F_PROTO);
                r.proto = proto_value(self.need("an IP protocol number or name")?)?;
                Ok(vec![r])
            }
            "src" | "dst" | "host" | "net" | "port" => {
                self.pos -= 1;
                self.dir_prim()
            }
            "and" | "or" | "&&" | "||" | ")" => {
                fail(format!("expected a primitive like `tcp`, found {t}"))
            }
            _ => {
                let text = t.text;
                let addr = text.split('/').next().unwrap_or_default();
                let hint = if addr.parse::<IpAddr>().is_ok() {
                    format!("to match an address write `host {text}` or `net {text}`")
                } else if text.bytes().all(|b| b.is_ascii_digit()) {
                    format!("to match a port write `port {text}`")
                } else {
                    format!("understood words: {WORDS}")
                };
                fail(format!("unknown word {t}; {hint}"))
            }
        }
    }

    /// A protocol word may be followed by `[src|dst] host|net|port ...`, which is and-ed in.
    fn qualified(&mut self, base: Rule, start: usize) -> Result<Vec<Rule>, FilterError> {
        if !self.peek_is(&["src", "dst", "host", "net", "port"]) {
            return Ok(vec![base]);
        }
        let rhs = self.dir_prim()?;
        self.and(&[base], &rhs, start)
    }

    /// `[src|dst] host A`, `[src|dst] net A/len`, `[src|dst] port N`, `src|dst A[/len]`.
    fn dir_prim(&mut self) -> Result<Vec<Rule>, FilterError> {
        let first = self.peek().expect("caller peeked");
        let dir = match first.text.to_ascii_lowercase().as_str() {
            "src" => (true, false),
            "dst" => (false, true),
            _ => EITHER,
        };
        self.pos += (dir != EITHER) as usize;
        let want = "`host`, `net`, `port` or an address";
        let kw = self.need(want)?;
        if kw.is(&["host"]) {
            addr_rules(dir, self.need("an IP address")?, Some(false))
        } else if kw.is(&["net"]) {
            let a = self.need("a network such as 10.0.0.0/8")?;
            if self.peek_is(&["mask"]) {
                let what = format!("`net {} mask` at column {}", a.text, kw.col);
                let fix = format!("write a prefix length instead, e.g. `net {}/8`", a.text);
                return fail(format!("{what} is not supported; {fix}"));
            }
            addr_rules(dir, a, Some(true))
        } else if kw.is(&["port"]) {
            let n = number(self.need("a port number")?, 65535, "a port number", false)? as u16;
            let (mut s, mut d) = (rule(F_SPORT), rule(F_DPORT));
            (s.sport, d.dport) = (n.to_be(), n.to_be());
            Ok(pick(dir, s, d))
        } else if kw.text.contains([':', '.']) && dir != EITHER {
            addr_rules(dir, kw, None)
        } else {
            fail(format!("expected {want} after {first}, found {kw}"))
        }
    }
}

/// Rules for an address token `A` or `A/len`; `net` says whether a prefix is required
/// (`Some(true)`), forbidden (`Some(false)`) or optional.
fn addr_rules(dir: Dir, t: Tok, net: Option<bool>) -> Result<Vec<Rule>, FilterError> {
    let (a, len) = match t.text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (t.text, None),
    };
    if net == Some(false) && len.is_some() {
        let whole = t.text;
        return fail(format!(
            "`host` takes one address, not {t}; use `net {whole}`"
        ));
    }
    if net == Some(true) && len.is_none() {
        let fix = format!("write e.g. `net {a}/24` (or `host {a}` for one address)");
        return fail(format!("`net` needs a prefix length, {t} has none; {fix}"));
    }
    let Ok(ip) = a.parse::<IpAddr>() else {
        let fix = "write a literal such as 10.0.0.1 or fd00::1 (names are not resolved)";
        let col = t.col;
        return fail(format!("`{a}` at column {col} is not an IP address; {fix}"));
    };
    let (eth, max, octets) = match ip {
        IpAddr::V4(v4) => (ETH_IP, 32, v4.octets().to_vec()),
        IpAddr::V6(v6) => (ETH_IP6, 128, v6.octets().to_vec()),
    };
    let mut bytes = [0u8; 16]; // IPv4 fills word 0 only
    bytes[..octets.len()].copy_from_slice(&octets);
    let plen = match len.map(|l| (l, digits(l, 10))) {
        None => max,
        Some((_, Some(n))) if n <= max => n,
        Some((l, _)) => {
            let col = t.col + a.chars().count();
            let family = if max == 32 { "IPv4" } else { "IPv6" };
            return fail(format!(
                "prefix length `/{l}` at column {col} is not valid for {family} address `{a}`; \
                 use /0 to /{max}"
            ));
        }
    };
    let mask: [u8; 16] = std::array::from_fn(|i| {
        let bits = plen.saturating_sub(8 * i as u32).min(8);
        (0xff00u16 >> bits) as u8
    });
    for (b, m) in bytes.iter_mut().zip(mask) {
        *b &= m;
    }
    let (mut s, mut d) = (with_eth(eth), with_eth(eth));
    (s.fields, s.src, s.src_mask) = (s.fields | F_SRC, to_words(bytes), to_words(mask));
    (d.fields, d.dst, d.dst_mask) = (d.fields | F_DST, s.src, s.src_mask);
    Ok(pick(dir, s, d))
}

fn rule(fields: u32) -> Rule {
    Rule {
        fields,
        ..Rule::default()
    }
}

fn with_eth(eth: u16) -> Rule {
    Rule {
        ethertype: eth.to_be(),
        ..rule(F_ETHERTYPE)
    }
}

/// A string of digits in `radix` (saturating at u32::MAX), or None.
fn digits(s: &str, radix: u32) -> Option<u32> {
    let ok = !s.is_empty() && s.chars().all(|c| c.is_digit(radix));
    ok.then(|| u32::from_str_radix(s, radix).unwrap_or(u32::MAX))
}

/// A number up to `max`, decimal or (if `hex`) 0x-prefixed hex; `what` names it in errors.
fn number(t: Tok, max: u32, what: &str, hex: bool) -> Result<u32, FilterError> {
    let lower = t.text.to_ascii_lowercase();
    let hex_digits = lower.strip_prefix("0x").filter(|_| hex);
    match hex_digits.map_or(digits(&lower, 10), |h| digits(h, 16)) {
        Some(n) if n <= max => Ok(n),
        Some(_) => fail(format!("{t} is out of range for {what}; use 0 to {max}")),
        None => {
            let or_hex = if hex { " or 0x hex" } else { "" };
            fail(format!("expected {what}, found {t}; write decimal{or_hex}"))
        }
    }
}

fn proto_value(t: Tok) -> Result<u8, FilterError> {
    match by_name(&PROTO_NAMES, &PROTO_VALUES, t.text) {
        Some(p) => Ok(p),
        None => Ok(number(t, 255, "an IP protocol (a number, tcp, udp, ...)", true)? as u8),
    }
}

fn push_unique(rules: &mut Vec<Rule>, r: Rule) {
    if !rules.contains(&r) {
        rules.push(r);
    }
}

fn check_expansion(n: usize) -> Result<(), FilterError> {
    if n <= MAX_EXPANSION {
        return Ok(());
    }
    fail(format!(
        "the expression expands to more than {MAX_EXPANSION} alternatives, and at most \
         {MAX_RULES} rules fit; simplify it"
    ))
}

fn value_word(bit: u32, v: u32) -> String {
    match (bit, v as u16) {
        (F_ETHERTYPE, ETH_IP) => "0x0800 (IPv4)".into(),
        (F_ETHERTYPE, ETH_IP6) => "0x86dd (IPv6)".into(),
        (F_ETHERTYPE, e) => eth_word(e),
        (F_PROTO, _) => proto_word(v as u8),
        _ => v.to_string(),
    }
}

/// The rule matching the packets that match both `a` and `b`, or why there is none.
/// Unset fields are zero in rules built here, so merging is OR-ing once nothing clashes.
fn merge(a: &Rule, b: &Rule) -> Result<Rule, String> {
    let both = a.fields & b.fields;
    for (bit, what, get) in VALUES {
        if both & bit != 0 && get(a) != get(b) {
            let (x, y) = (value_word(bit, get(a)), value_word(bit, get(b)));
            return Err(format!("one part needs {what} {x} and another {what} {y}"));
        }
    }
    let nets = |r: &Rule| [(r.src, r.src_mask), (r.dst, r.dst_mask)];
    let (na, nb) = (nets(a), nets(b));
    for (i, what) in ["source", "destination"].into_iter().enumerate() {
        let ((aa, am), (ba, bm)) = (na[i], nb[i]);
        // Both pre-masked: they intersect iff they agree on the bits both masks cover.
        if both & (F_SRC << i) != 0 && (0..4).any(|w| (aa[w] ^ ba[w]) & am[w] & bm[w] != 0) {
            let (x, y) = (net_text(a, aa, am), net_text(b, ba, bm));
            return Err(format!("the {what} can't be in both `{x}` and `{y}`"));
        }
    }
    let mut r = *a;
    r.fields |= b.fields;
    r.ethertype |= b.ethertype;
    r.vlan |= b.vlan;
    r.proto |= b.proto;
    r.sport |= b.sport;
    r.dport |= b.dport;
    for w in 0..4 {
        (r.src[w], r.src_mask[w]) = (a.src[w] | b.src[w], a.src_mask[w] | b.src_mask[w]);
        (r.dst[w], r.dst_mask[w]) = (a.dst[w] | b.dst[w], a.dst_mask[w] | b.dst_mask[w]);
    }
    let eth = (r.fields & F_ETHERTYPE != 0).then(|| u16::from_be(r.ethertype));
    let l4 = r.fields & (F_PROTO | F_SPORT | F_DPORT) != 0;
    if let Some(e) = eth.filter(|e| l4 && *e != ETH_IP && *e != ETH_IP6) {
        let e = eth_word(e);
        return Err(format!("ethertype {e} has no IP protocol or ports"));
    }
    let ports = r.fields & (F_SPORT | F_DPORT) != 0 && r.fields & F_PROTO != 0;
    if ports && ![6, 17, 132].contains(&r.proto) {
        let p = proto_word(r.proto);
        return Err(format!("protocol {p} has no ports (tcp, udp, sctp do)"));
    }
    Ok(r)
}
