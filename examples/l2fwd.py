"""An L2 forwarder: frames received on IF_A go out IF_B (and back) until COUNT moved.

sudo python examples/l2fwd.py eth0 eth1 1000000
"""

from __future__ import annotations

import selectors
import sys

import afxdp_rs


def main(if_a: str, if_b: str, count: int) -> None:
    a = afxdp_rs.XskSocket(if_a, 0)
    b = afxdp_rs.XskSocket(if_b, 0)
    moved = 0
    with a, b, selectors.DefaultSelector() as sel:
        sel.register(a.fileno(), selectors.EVENT_READ)
        sel.register(b.fileno(), selectors.EVENT_READ)
        while moved < count:
            idle = True
            for src, dst in ((a, b), (b, a)):
                with src.recv(256, timeout=0) as batch:
                    if len(batch):
                        dst.send(batch.to_list(), timeout=1.0)
                        moved += len(batch)
                        idle = False
            if idle and not sel.select(timeout=10.0):
                sys.exit(f"no packet for 10 s; forwarded {moved}")
        a.flush(timeout=1.0)
        b.flush(timeout=1.0)
    print(f"forwarded {moved} packets")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
