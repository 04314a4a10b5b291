"""The demo: receive and send packets over AF_XDP on a private veth test bed.

It needs no interface: it creates a veth pair in an unnamed network namespace that
disappears with the process (even if it is killed), then

* rx: a generator (a send-only AF_XDP socket on the peer end, in its own thread) sends
  packets into the pair; an AF_XDP socket with the default XDP program receives them;
* tx: an AF_XDP socket sends packets, and the peer's interface counters confirm they
  arrived.

It prints packets per second for each direction and accounts for every packet: a
packet that did not arrive is shown with the counter that recorded its loss.
"""

from __future__ import annotations

import dataclasses
import threading
import time

from afxdp_rs._afxdp import XskSocket
from afxdp_rs.testbed import VethTestbed
from afxdp_rs.types import XdpMode


@dataclasses.dataclass
class Result:
    direction: str
    packets: int
    delivered: int
    seconds: float
    lost: dict[str, int]

    @property
    def pps(self) -> float:
        return self.delivered / self.seconds if self.seconds > 0 else 0.0

    def line(self, size: int) -> str:
        lost = ", ".join(f"{k}={v}" for k, v in self.lost.items() if v) or "none"
        return (
            f"{self.direction}: {self.delivered:,} of {self.packets:,} packets of {size} bytes "
            f"in {self.seconds:.3f} s = {self.pps / 1e6:.3f} Mpps "
            f"({self.pps * size * 8 / 1e9:.2f} Gbit/s); lost: {lost}"
        )


def _frames(tb: VethTestbed, size: int, batch: int, to_inner: bool) -> list[bytes]:
    return [tb.frame(i, size, to_inner=to_inner) for i in range(batch)]


def measure_rx(tb: VethTestbed, packets: int, size: int, batch: int, mode: XdpMode) -> Result:
    frames = _frames(tb, size, batch, to_inner=True)
    received = 0
    # Deep rings absorb the generator's bursts while the receiver is between batches.
    rx = XskSocket(tb.inner, 0, mode=mode, frame_count=8192, fill_size=4096, rx_size=4096)
    with rx, XskSocket(tb.peer, 0, rx_size=0) as gen:
        sent = [0]
        stop = threading.Event()

        def generate() -> None:
            while sent[0] < packets and not stop.is_set():
                chunk = frames[: min(batch, packets - sent[0])]
                sent[0] += gen.send(chunk, timeout=5.0)
            gen.flush(timeout=5.0)

        thread = threading.Thread(target=generate, name="afxdp-generator")
        start = time.perf_counter()
        last = start
        thread.start()
        try:
            while received < packets:
                with rx.recv(256, timeout=0.5) as got:
                    n = len(got)
                if n:
                    received += n
                    last = time.perf_counter()
                elif not thread.is_alive():
                    break  # generator done and nothing more for 0.5 s
        finally:
            # Also on Ctrl-C: the generator ends before its socket is closed.
            stop.set()
            thread.join()
        stats = rx.statistics()
    lost = {k: stats[k] for k in ("rx_dropped", "rx_ring_full", "rx_invalid_descs")}
    lost["unaccounted"] = max(0, packets - received - sum(lost.values()))
    return Result("rx", packets, received, last - start, lost)


def measure_tx(tb: VethTestbed, packets: int, size: int, batch: int) -> Result:
    frames = _frames(tb, size, batch, to_inner=False)
    before = tb.link_stats(tb.peer)
    with XskSocket(tb.inner, 0, rx_size=0) as tx:
        start = time.perf_counter()
        sent = 0
        while sent < packets:
            sent += tx.send(frames[: min(batch, packets - sent)], timeout=5.0)
        tx.flush(timeout=5.0)
        seconds = time.perf_counter() - start
        stats = tx.statistics()
    after = tb.link_stats(tb.peer)
    arrived = after.get("rx_packets", 0) - before.get("rx_packets", 0)
    # The peer's interface counts every packet that came out of the pair (its stack
    # then discards them: nobody listens for the test EtherType there).
    lost = {
        "tx_invalid_descs": stats["tx_invalid_descs"],
        "not_completed": stats["tx_outstanding"],
    }
    lost["unaccounted"] = max(0, packets - arrived - sum(lost.values()))
    return Result("tx", packets, min(arrived, stats["tx_completed"]), seconds, lost)


def run(packets: int = 300_000, size: int = 64, batch: int = 64, mode: XdpMode = "auto") -> int:
    """Runs the demo and prints the rates; returns a process exit code."""
    with VethTestbed(ephemeral=True) as tb:
        with XskSocket(tb.inner, 0, mode=mode) as probe:
            attach, zc = probe.attach_mode, probe.zerocopy
        print(
            f"afxdp_rs demo: veth pair {tb.inner}<->{tb.peer} in a private network namespace, "
            f"XDP {attach} mode, {'zero-copy' if zc else 'copy'} mode, batch {batch}"
        )
        results: list[Result] = []
        try:
            results.append(measure_rx(tb, packets, size, batch, mode))
            results.append(measure_tx(tb, packets, size, batch))
        except KeyboardInterrupt:
            for r in results:
                print(r.line(size))
            print("stopped (Ctrl-C or SIGTERM) before the end")
            return 0
    for r in results:
        print(r.line(size))
    return 0 if all(r.lost.get("unaccounted", 0) == 0 for r in results) else 1
