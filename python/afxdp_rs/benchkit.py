"""What the benchmarks share (afxdp_rs.bench and afxdp_rs.bench_forward): the options,
a result, the traffic generator, and the AF_PACKET sockets and loop step."""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from afxdp_rs import tools
from afxdp_rs._afxdp import XskSocket
from afxdp_rs.testbed import ETH_P_AFXDP_TEST
from afxdp_rs.types import BindMode, XdpMode

__all__ = [
    "PATHS",
    "WAITS",
    "WORKLOADS",
    "Generator",
    "Options",
    "Result",
    "af_packet_step",
    "busy_poll_detail",
    "open_socket",
    "packet_socket",
]

PATHS = ("python", "rust", "af_packet")
WORKLOADS = ("rxdrop", "txonly", "l2fwd", "forward", "tcp", "drain")
WAITS = ("spin", "poll", "busy-poll")


@dataclasses.dataclass
class Options:
    workload: str = "rxdrop"
    ifname: str | None = None
    peer: str | None = None
    queue: int = 0
    mode: XdpMode = "auto"
    bind: BindMode = "auto"
    batch: int = 64
    frame_size: int = 4096
    size: int = 64
    duration: float = 2.0
    #: How a receiver waits: spin, poll or busy-poll (see the module's text).
    wait: str = "spin"
    #: After a batch that was not full, wait this long (seconds) for more packets.
    linger: float = 0.0
    #: rxdrop on this many queues at once (one socket, receiver thread and generator each).
    queues: int = 1
    paths: tuple[str, ...] = ("python",)
    #: With the rxdrop workload, also measure the drain cost (the ``drain`` workload).
    drain: bool = False

    @property
    def poll(self) -> bool:
        return self.wait == "poll"


@dataclasses.dataclass
class Result:
    path: str
    packets: int  # received (rxdrop), sent (txonly) or forwarded back (l2fwd)
    seconds: float
    offered: int  # what the generator sent (rxdrop, l2fwd) or what was sent (txonly)
    arrived: int  # what arrived where it should
    cpu_seconds: float  # CPU time of the thread doing the work
    detail: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def pps(self) -> float:
        return self.packets / self.seconds if self.seconds > 0 else 0.0

    @property
    def lost(self) -> int:
        return max(0, self.offered - self.arrived)

    @property
    def cpu_ns_per_packet(self) -> float:
        return self.cpu_seconds / self.packets * 1e9 if self.packets else float("nan")


def open_socket(o: Options, ifname: str, **kw: Any) -> XskSocket:
    return XskSocket(
        ifname,
        o.queue,
        mode=o.mode,
        bind=o.bind,
        frame_size=o.frame_size,
        busy_poll=o.wait == "busy-poll",
        busy_poll_budget=o.batch,
        **kw,
    )


def busy_poll_detail(o: Options, sock: XskSocket) -> dict[str, Any]:
    """Whether the kernel could busy-poll for the socket (it needs a NAPI ID)."""
    if o.wait != "busy-poll":
        return {}
    napi = sock.napi_id
    return {"napi_id": napi} if napi else {"busy_poll": "inactive"}


def packet_socket(o: Options, ifname: str) -> socket.socket:
    """An AF_PACKET socket for the test EtherType with a 64 MiB receive buffer, blocking
    with a short timeout in poll mode, non-blocking otherwise."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_AFXDP_TEST))
    s.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE
    s.bind((ifname, ETH_P_AFXDP_TEST))
    if o.poll:
        s.settimeout(0.05)
    else:
        s.setblocking(False)
    return s


class Generator:
    """Full-rate traffic from the peer end, in a thread, for a fixed time.

    Use it in a ``with`` block: leaving the block (also on an error or Ctrl-C) stops
    the traffic, waits for the thread and closes the socket."""

    def __init__(self, o: Options, peer: str, packet: bytes) -> None:
        self.sock = XskSocket(peer, o.queue, rx_size=0, frame_size=o.frame_size)
        self.packet = packet
        self.duration = o.duration
        self.batch = o.batch
        self.stats: dict[str, float] = {}
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="afxdp-bench-generator")

    def _run(self) -> None:
        try:
            self.stats = tools.txonly(self.sock, self.packet, self.duration, self.batch)
        except BaseException as e:  # raised by join()
            self.error = e

    def start(self) -> None:
        self.thread.start()

    def join(self) -> dict[str, float]:
        """Waits for the run to end; returns its numbers, or raises what stopped it."""
        self.thread.join()
        self.sock.close()
        if self.error is not None:
            raise RuntimeError(f"the traffic generator failed: {self.error}") from self.error
        return self.stats

    def __enter__(self) -> Generator:
        return self

    def __exit__(self, *exc: object) -> None:
        tools.stop_loop(self.sock)
        if self.thread.ident is not None:
            self.thread.join()
        self.sock.close()


def af_packet_step(
    s: socket.socket, buf: bytearray, linger: float, handle: Callable[[int, Any], int]
) -> Callable[[], int]:
    """One step of an AF_PACKET loop: take a packet (waiting as the socket is set up
    to), and with `linger`, let more gather and take them all. `handle(n, addr)` deals
    with each and says whether it counts."""

    def step() -> int:
        try:
            n, addr = s.recvfrom_into(buf)
        except (BlockingIOError, TimeoutError):
            return 0
        got = handle(n, addr)
        if linger:
            time.sleep(linger)
            while True:
                try:
                    n, addr = s.recvfrom_into(buf, 0, socket.MSG_DONTWAIT)
                except (BlockingIOError, TimeoutError):
                    break
                got += handle(n, addr)
        return got

    return step
