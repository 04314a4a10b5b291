"""Capture COUNT packets from queue 0 of IFNAME into a pcap file.

sudo python examples/capture_pcap.py eth0 /tmp/eth0.pcap 1000
"""

from __future__ import annotations

import sys
import time

import afxdp_rs
from afxdp_rs.pcap import PcapWriter


def main(ifname: str, path: str, count: int) -> None:
    with afxdp_rs.XskSocket(ifname, 0) as sock, PcapWriter(path) as pcap:
        while pcap.packets < count:
            with sock.recv(min(256, count - pcap.packets), timeout=10.0) as batch:
                if len(batch) == 0:
                    sys.exit(f"no packet for 10 s; captured {pcap.packets}")
                now = time.time()
                for frame in batch:  # zero-copy views into the UMEM
                    pcap.write(frame, now)
        print(f"captured {pcap.packets} packets ({pcap.bytes} bytes) to {path}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
