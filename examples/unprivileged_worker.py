"""An unprivileged worker: take AF_XDP sockets from a privileged helper and receive
COUNT packets on them.

    sudo python -m afxdp_rs helper eth0 --socket /run/afxdp.sock &
    python examples/unprivileged_worker.py /run/afxdp.sock 1000   # no capabilities
"""

from __future__ import annotations

import sys
import time

from afxdp_rs import privileged


def main(path: str, count: int) -> None:
    handover = privileged.receive(path)
    # A small UMEM: the worker's locked-memory limit (RLIMIT_MEMLOCK) must cover it.
    sockets = handover.open_sockets(frame_count=512, frame_size=2048)
    got = 0
    last = time.monotonic()
    try:
        while got < count:
            for sock in sockets:
                with sock.recv(64, timeout=0.1) as batch:
                    got += len(batch)
                    if len(batch):
                        last = time.monotonic()
            if time.monotonic() - last > 30:
                sys.exit(f"no packet for 30 s; received {got}")
    finally:
        for sock in sockets:
            sock.close()
    print(f"received {got} packets on {handover.ifname} queues {handover.queues}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
