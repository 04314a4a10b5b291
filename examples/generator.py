"""A traffic generator: send COUNT numbered 64-byte Ethernet frames out of IFNAME.

sudo python examples/generator.py eth0 1000000 02:00:00:00:00:01
"""

from __future__ import annotations

import struct
import sys
import time

import afxdp_rs

ETH_P_EXPERIMENTAL = 0x88B5


def frames(dst: bytes, src: bytes, first: int, n: int) -> list[bytes]:
    head = dst + src + struct.pack("!H", ETH_P_EXPERIMENTAL)
    return [head + struct.pack("!I", first + i) + bytes(46) for i in range(n)]


def main(ifname: str, count: int, dst_mac: str) -> None:
    dst = bytes.fromhex(dst_mac.replace(":", ""))
    src = bytes.fromhex("020000000099")
    with afxdp_rs.XskSocket(ifname, 0, rx_size=0) as sock:  # send only: no XDP program
        start = time.perf_counter()
        sent = 0
        while sent < count:
            sent += sock.send(frames(dst, src, sent, min(64, count - sent)))
        sock.flush(timeout=5.0)
        secs = time.perf_counter() - start
        print(f"sent {sent} packets in {secs:.3f} s ({sent / secs / 1e6:.3f} Mpps)")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "ff:ff:ff:ff:ff:ff")
