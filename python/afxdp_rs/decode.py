"""One line per packet, in the shape tcpdump prints with ``-n``: what ``afxdp capture``
shows without ``-w``, and ``afxdp capture -r FILE``.

Only the headers a capture tool is read for are decoded (Ethernet, 802.1Q/802.1ad, ARP,
IPv4, IPv6 and its common extension headers, TCP, UDP, ICMP, ICMPv6); anything else is
named by its EtherType or protocol number. Addresses are never resolved to names."""

from __future__ import annotations

import ipaddress
import struct
import time

__all__ = ["summary"]

_TCP_FLAGS = [
    (0x01, "F"),
    (0x02, "S"),
    (0x04, "R"),
    (0x08, "P"),
    (0x10, "."),
    (0x20, "U"),
    (0x40, "E"),
    (0x80, "W"),
]
_IPV6_EXT = {0, 43, 44, 60}  # hop-by-hop, routing, fragment, destination options
_ICMP = {0: "echo reply", 3: "destination unreachable", 8: "echo request", 11: "time exceeded"}
_ICMP6 = {
    1: "destination unreachable",
    128: "echo request",
    129: "echo reply",
    133: "router solicitation",
    134: "router advertisement",
    135: "neighbor solicitation",
    136: "neighbor advertisement",
}
_PROTO = {1: "ICMP", 2: "IGMP", 6: "TCP", 17: "UDP", 47: "GRE", 50: "ESP", 58: "ICMP6", 132: "SCTP"}


def _mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def _stamp(ts: float) -> str:
    t = time.localtime(ts)
    return time.strftime("%H:%M:%S", t) + f".{int(ts * 1e6) % 1_000_000:06d}"


def summary(frame: bytes, ts: float, *, link: bool = False) -> str:
    """The line tcpdump -n (with `link`: -e) would print for an Ethernet frame."""
    head = _stamp(ts)
    if len(frame) < 14:
        return f"{head} [|ether] length {len(frame)}"
    dst, src = frame[0:6], frame[6:12]
    etype = struct.unpack_from("!H", frame, 12)[0]
    off = 14
    vlans: list[int] = []
    while etype in (0x8100, 0x88A8) and len(frame) >= off + 4:
        tci, etype = struct.unpack_from("!HH", frame, off)
        vlans.append(tci & 0x0FFF)
        off += 4
    prefix = head
    if link:
        prefix += f" {_mac(src)} > {_mac(dst)}, ethertype 0x{etype:04x}, length {len(frame)}:"
    if vlans:
        prefix += "".join(f" vlan {v}," for v in vlans)
    return f"{prefix} {_payload(frame, off, etype)}"


def _payload(frame: bytes, off: int, etype: int) -> str:
    try:
        if etype == 0x0800:
            return _ipv4(frame, off)
        if etype == 0x86DD:
            return _ipv6(frame, off)
        if etype == 0x0806:
            return _arp(frame, off)
    except struct.error:
        return f"[|truncated] length {len(frame) - off}"
    return f"ethertype 0x{etype:04x}, length {len(frame) - off}"


def _arp(frame: bytes, off: int) -> str:
    op = struct.unpack_from("!H", frame, off + 6)[0]
    spa = ipaddress.IPv4Address(frame[off + 14 : off + 18])
    tpa = ipaddress.IPv4Address(frame[off + 24 : off + 28])
    if op == 1:
        return f"ARP, Request who-has {tpa} tell {spa}, length {len(frame) - off}"
    if op == 2:
        return (
            f"ARP, Reply {spa} is-at {_mac(frame[off + 8 : off + 14])}, length {len(frame) - off}"
        )
    return f"ARP, op {op}, length {len(frame) - off}"


def _ipv4(frame: bytes, off: int) -> str:
    vihl, _tos, total = struct.unpack_from("!BBH", frame, off)
    ihl = (vihl & 0x0F) * 4
    frag, _ttl, proto = struct.unpack_from("!HBB", frame, off + 6)
    src = ipaddress.IPv4Address(frame[off + 12 : off + 16])
    dst = ipaddress.IPv4Address(frame[off + 16 : off + 20])
    end = min(len(frame), off + total)
    if frag & 0x1FFF:
        return f"IP {src} > {dst}: ip-proto-{proto} (fragment)"
    return "IP " + _l4(frame, off + ihl, end, proto, str(src), str(dst), 4)


def _ipv6(frame: bytes, off: int) -> str:
    plen, nxt = struct.unpack_from("!HB", frame, off + 4)
    src = ipaddress.IPv6Address(frame[off + 8 : off + 24])
    dst = ipaddress.IPv6Address(frame[off + 24 : off + 40])
    end = min(len(frame), off + 40 + plen)
    at = off + 40
    while nxt in _IPV6_EXT and at + 8 <= end:
        if nxt == 44:
            return f"IP6 {src} > {dst}: frag"
        nxt, hlen = struct.unpack_from("!BB", frame, at)
        at += (hlen + 1) * 8
    return "IP6 " + _l4(frame, at, end, nxt, str(src), str(dst), 6)


def _l4(frame: bytes, at: int, end: int, proto: int, src: str, dst: str, version: int) -> str:
    if proto == 6 and at + 20 <= end:
        sport, dport, seq, ack, offs, flags = struct.unpack_from("!HHIIBB", frame, at)
        hlen = (offs >> 4) * 4
        shown = "".join(c for bit, c in _TCP_FLAGS if flags & bit) or "none"
        text = f"{src}.{sport} > {dst}.{dport}: Flags [{shown}], seq {seq}"
        if flags & 0x10:
            text += f", ack {ack}"
        return text + f", length {max(0, end - at - hlen)}"
    if proto == 17 and at + 8 <= end:
        sport, dport, ulen = struct.unpack_from("!HHH", frame, at)
        return f"{src}.{sport} > {dst}.{dport}: UDP, length {max(0, ulen - 8)}"
    if proto in (1, 58) and at + 4 <= end:
        kind = struct.unpack_from("!B", frame, at)[0]
        names = _ICMP if proto == 1 else _ICMP6
        label = "ICMP" if proto == 1 else "ICMP6"
        return f"{src} > {dst}: {label} {names.get(kind, f'type {kind}')}, length {end - at}"
    name = _PROTO.get(proto, f"ip-proto-{proto}")
    return f"{src} > {dst}: {name}, length {max(0, end - at)}"
