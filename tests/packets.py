"""Building and checking IPv4/IPv6 TCP/UDP frames in the tests, with a plain RFC 1071
checksum: complete, left partial as an offloading sender leaves it, or wrong."""

from __future__ import annotations

import ipaddress
import struct


def ones_sum(data: bytes) -> int:
    """The one's complement sum of ``data`` as 16-bit big-endian words."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _pseudo(src: str, dst: str, proto: int, length: int) -> bytes:
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if s.version == 4:
        return s.packed + d.packed + struct.pack("!BBH", 0, proto, length)
    return s.packed + d.packed + struct.pack("!IxxxB", length, proto)


def frame(
    dst_mac: bytes,
    src_mac: bytes,
    src: str,
    dst: str,
    proto: str,
    payload: bytes,
    checksum: str = "complete",
    ports: tuple[int, int] = (40000, 9000),
) -> bytes:
    """An Ethernet frame carrying a UDP datagram or a TCP segment (PSH|ACK) from
    ``src`` to ``dst``. ``checksum``: "complete", "partial" (the pseudo-header sum, as a
    sender with checksum offload leaves it) or "wrong"."""
    number = 17 if proto == "udp" else 6
    if proto == "udp":
        l4 = struct.pack("!HHHH", ports[0], ports[1], 8 + len(payload), 0) + payload
        field = 6
    else:
        l4 = struct.pack("!HHIIBBHHH", ports[0], ports[1], 1, 0, 0x50, 0x18, 0xFFFF, 0, 0)
        l4 += payload
        field = 16
    pseudo = ones_sum(_pseudo(src, dst, number, len(l4)))
    if checksum == "partial":
        value = pseudo
    else:
        value = 0xFFFF ^ ones_sum(struct.pack("!H", pseudo) + l4)
        if proto == "udp" and value == 0:
            value = 0xFFFF
        if checksum == "wrong":
            value ^= 0x5A5A
    l4 = l4[:field] + struct.pack("!H", value) + l4[field + 2 :]
    if ipaddress.ip_address(src).version == 4:
        ip = struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(l4),
            1,
            0x4000,
            64,
            number,
            0,
            ipaddress.ip_address(src).packed,
            ipaddress.ip_address(dst).packed,
        )
        ip = ip[:10] + struct.pack("!H", 0xFFFF ^ ones_sum(ip)) + ip[12:]
        ethertype = 0x0800
    else:
        ip = struct.pack(
            "!IHBB16s16s",
            6 << 28,
            len(l4),
            number,
            64,
            ipaddress.ip_address(src).packed,
            ipaddress.ip_address(dst).packed,
        )
        ethertype = 0x86DD
    return dst_mac + src_mac + struct.pack("!H", ethertype) + ip + l4


def l4_checksum_ok(f: bytes) -> bool:
    """Whether the TCP/UDP checksum of an IPv4 or IPv6 frame (no VLAN) verifies."""
    ethertype = struct.unpack_from("!H", f, 12)[0]
    if ethertype == 0x0800:
        ihl = (f[14] & 0x0F) * 4
        total = struct.unpack_from("!H", f, 16)[0]
        proto, src, dst = f[23], f[26:30], f[30:34]
        l4 = f[14 + ihl : 14 + total]
        pseudo = src + dst + struct.pack("!BBH", 0, proto, len(l4))
    else:
        length = struct.unpack_from("!H", f, 18)[0]
        proto, src, dst = f[20], f[22:38], f[38:54]
        l4 = f[54 : 54 + length]
        pseudo = src + dst + struct.pack("!IxxxB", len(l4), proto)
    return ones_sum(pseudo + l4) == 0xFFFF
