"""Throughput benchmarks in the spirit of xdpsock: rxdrop, txonly and l2fwd.

Each workload runs through one or more *paths*:

* ``python``: the Python API, one call per batch (``recv``/``release``, ``send``,
  ``l2fwd``);
* ``rust``: the same loop entirely in Rust (``XskSocket.rust_*``), the reference;
* ``af_packet``: Python's own AF_PACKET sockets (``recv_into``/``send``), what Python
  programs use today.

Without an interface the benchmark builds its own veth test bed. Traffic for rxdrop and
l2fwd comes from a send-only AF_XDP socket on the peer end, driven by the Rust loop in
its own thread, at full rate. Every packet is accounted for: what the generator sent,
what arrived, and what was lost.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from afxdp_rs._afxdp import XskSocket
from afxdp_rs.testbed import ETH_P_AFXDP_TEST, VethTestbed, packet_statistics

__all__ = ["Options", "Result", "run"]

PATHS = ("python", "rust", "af_packet")


@dataclasses.dataclass
class Options:
    workload: str = "rxdrop"
    ifname: str | None = None
    peer: str | None = None
    queue: int = 0
    mode: str = "auto"
    bind: str = "auto"
    batch: int = 64
    frame_size: int = 4096
    size: int = 64
    duration: float = 2.0
    poll: bool = False
    #: After a batch that was not full, wait this long (seconds) for more packets.
    linger: float = 0.0
    #: rxdrop on this many queues at once (one socket, receiver thread and generator each).
    queues: int = 1
    paths: tuple[str, ...] = ("python",)


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


def _socket(o: Options, ifname: str, **kw: Any) -> XskSocket:
    return XskSocket(ifname, o.queue, mode=o.mode, bind=o.bind, frame_size=o.frame_size, **kw)


def _packet_socket(o: Options, ifname: str) -> socket.socket:
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


class _Generator:
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
            self.stats = self.sock.rust_txonly(self.packet, self.duration, self.batch)
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

    def __enter__(self) -> _Generator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.stop_loop()
        if self.thread.ident is not None:
            self.thread.join()
        self.sock.close()


def _in_thread(loop: Callable[[], dict[str, float]]) -> Callable[[], dict[str, float]]:
    """Starts `loop` in a thread; the returned function waits for it and returns its
    result or raises its error (an error in the thread is never lost)."""
    out: dict[str, float] = {}
    errors: list[BaseException] = []

    def run() -> None:
        try:
            out.update(loop())
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=run)
    t.start()

    def wait() -> dict[str, float]:
        t.join()
        if errors:
            raise errors[0]
        return out

    return wait


def _rust_loop(gen: _Generator, loop: Callable[[], dict[str, float]]) -> dict[str, float]:
    """Runs a Rust receive loop in a thread and starts the generator once it runs. The
    caller closes the loop's socket on the way out, which ends the loop early."""
    wait = _in_thread(loop)
    time.sleep(0.05)
    gen.start()
    return wait()


def _rxdrop(o: Options, path: str, ifname: str, peer: str, packet: bytes) -> Result:
    with _Generator(o, peer, packet) as gen:
        return _rxdrop_with(o, path, ifname, gen)


def _rxdrop_with(o: Options, path: str, ifname: str, gen: _Generator) -> Result:
    total = o.duration + 0.4  # the receiver outlives the generator, then drains
    if path == "af_packet":
        rx = _packet_socket(o, ifname)
        packet_statistics(rx)
        buf = bytearray(4096)
        got = 0
        c0, t0 = time.thread_time(), time.perf_counter()
        gen.start()
        while time.perf_counter() - t0 < total:
            try:
                rx.recv_into(buf)
                got += 1
            except (BlockingIOError, TimeoutError):
                continue
            if o.linger:
                got += _linger_drain(rx, buf, o.linger)
        cpu = time.thread_time() - c0
        g = gen.join()
        _, drops = packet_statistics(rx)
        rx.close()
        return Result(path, got, g["seconds"], int(g["packets"]), got, cpu, {"drops": drops})
    sock = _socket(o, ifname, tx_size=0)
    try:
        if path == "rust":
            out = _rust_loop(gen, lambda: sock.rust_rxdrop(total, o.batch, o.poll, o.linger))
            got, cpu = int(out["packets"]), float(out["cpu_seconds"])
        else:
            got = 0
            timeout = 0.05 if o.poll else 0
            c0, t0 = time.thread_time(), time.perf_counter()
            gen.start()
            while time.perf_counter() - t0 < total:
                batch = sock.recv(o.batch, timeout=timeout, linger=o.linger)
                got += len(batch)
                batch.release()
            cpu = time.thread_time() - c0
        g = gen.join()
        st = sock.statistics()
    finally:
        sock.close()
    kernel = {k: st[k] for k in ("rx_dropped", "rx_ring_full")}
    return Result(path, got, g["seconds"], int(g["packets"]), got, cpu, kernel)


def _txonly(
    o: Options, path: str, ifname: str, tb: VethTestbed | None, peer: str, packet: bytes
) -> Result:
    before = tb.link_stats(peer).get("rx_packets", 0) if tb else 0
    if path == "af_packet":
        tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        tx.bind((ifname, 0))
        sent = 0
        c0, t0 = time.thread_time(), time.perf_counter()
        while time.perf_counter() - t0 < o.duration:
            for _ in range(o.batch):
                tx.send(packet)
            sent += o.batch
        secs, cpu = time.perf_counter() - t0, time.thread_time() - c0
        tx.close()
    else:
        sock = _socket(o, ifname, rx_size=0)
        try:
            if path == "rust":
                r = sock.rust_txonly(packet, o.duration, o.batch)
                sent, secs, cpu = int(r["packets"]), r["seconds"], r["cpu_seconds"]
            else:
                packets = [packet] * o.batch
                c0, t0 = time.thread_time(), time.perf_counter()
                while time.perf_counter() - t0 < o.duration:
                    sock.send(packets)
                sock.flush(timeout=1.0)
                secs, cpu = time.perf_counter() - t0, time.thread_time() - c0
                sent = sock.statistics()["tx_completed"]
        finally:
            sock.close()
    time.sleep(0.05)
    arrived = tb.link_stats(peer)["rx_packets"] - before if tb else sent
    return Result(path, sent, secs, sent, arrived, cpu)


def _linger_drain(s: socket.socket, buf: bytearray, linger: float) -> int:
    """After a wakeup, let packets gather for `linger` s, then take them all."""
    time.sleep(linger)
    got = 0
    while True:
        try:
            s.recv_into(buf, 0, socket.MSG_DONTWAIT)
        except (BlockingIOError, TimeoutError):
            return got
        got += 1


def _swap(buf: bytearray, n: int) -> bytes:
    return bytes(buf[6:12] + buf[0:6] + buf[12:n])


def _l2fwd(
    o: Options, path: str, ifname: str, tb: VethTestbed | None, peer: str, packet: bytes
) -> Result:
    with _Generator(o, peer, packet) as gen:
        return _l2fwd_with(o, path, ifname, tb, peer, gen)


def _l2fwd_with(
    o: Options, path: str, ifname: str, tb: VethTestbed | None, peer: str, gen: _Generator
) -> Result:
    before = tb.link_stats(peer).get("rx_packets", 0) if tb else 0
    total = o.duration + 0.4
    if path == "af_packet":
        s = _packet_socket(o, ifname)
        buf = bytearray(4096)
        fwd = 0
        c0, t0 = time.thread_time(), time.perf_counter()
        gen.start()
        while time.perf_counter() - t0 < total:
            try:
                n, addr = s.recvfrom_into(buf)
            except (BlockingIOError, TimeoutError):
                continue
            if addr[2] == socket.PACKET_OUTGOING:
                continue
            s.send(_swap(buf, n))
            fwd += 1
            if o.linger:
                time.sleep(o.linger)
                while True:
                    try:
                        n, addr = s.recvfrom_into(buf, 0, socket.MSG_DONTWAIT)
                    except (BlockingIOError, TimeoutError):
                        break
                    if addr[2] != socket.PACKET_OUTGOING:
                        s.send(_swap(buf, n))
                        fwd += 1
        cpu = time.thread_time() - c0
        s.close()
    else:
        sock = _socket(o, ifname)
        try:
            if path == "rust":
                out = _rust_loop(gen, lambda: sock.rust_l2fwd(total, o.batch, o.poll, o.linger))
                fwd, cpu = int(out["packets"]), float(out["cpu_seconds"])
            else:
                fwd = 0
                c0, t0 = time.thread_time(), time.perf_counter()
                gen.start()
                while time.perf_counter() - t0 < total:
                    n = sock.l2fwd(o.batch)
                    fwd += n
                    if not n and o.poll:
                        sock.wait_readable(timeout=0.05)
                    elif n < o.batch and o.linger:
                        time.sleep(o.linger)
                sock.flush(timeout=1.0)
                cpu = time.thread_time() - c0
        finally:
            sock.close()
    g = gen.join()
    time.sleep(0.05)
    back = tb.link_stats(peer)["rx_packets"] - before if tb else fwd
    return Result(path, fwd, g["seconds"], int(g["packets"]), back, cpu)


def _rxdrop_queues(o: Options, path: str, tb: VethTestbed, packet: bytes) -> Result:
    """rxdrop on queues 0..N-1 at once: one socket, one receiver thread and one
    generator (on the peer's tx queue k, which lands on rx queue k) per queue."""
    total = o.duration + 0.4

    def receive(sock: XskSocket) -> dict[str, float]:
        if path == "rust":
            return sock.rust_rxdrop(total, o.batch, o.poll, o.linger)
        got = 0
        c0, t0 = time.thread_time(), time.perf_counter()
        timeout = 0.05 if o.poll else 0
        while time.perf_counter() - t0 < total and not sock.closed:
            batch = sock.recv(o.batch, timeout=timeout, linger=o.linger)
            got += len(batch)
            batch.release()
        return {"packets": got, "cpu_seconds": time.thread_time() - c0}

    # Everything opened is closed on the way out, also on an error or Ctrl-C: closing
    # a socket ends the loop running on it, and the generators stop their traffic.
    with contextlib.ExitStack() as stack:
        socks = []
        for q in range(o.queues):
            sock = XskSocket(
                tb.inner, q, mode=o.mode, bind=o.bind, frame_size=o.frame_size, tx_size=0
            )
            stack.callback(sock.close)
            socks.append(sock)
        gens = [
            stack.enter_context(_Generator(dataclasses.replace(o, queue=q), tb.peer, packet))
            for q in range(o.queues)
        ]
        waits = [_in_thread(functools.partial(receive, s)) for s in socks]
        time.sleep(0.05)
        for g in gens:
            g.start()
        stats = [g.join() for g in gens]
        outs = [w() for w in waits]
        kernel = {k: sum(s.statistics()[k] for s in socks) for k in ("rx_dropped", "rx_ring_full")}
    secs = max(st["seconds"] for st in stats)
    offered = sum(int(st["packets"]) for st in stats)
    got = sum(int(r["packets"]) for r in outs)
    cpu = sum(float(r["cpu_seconds"]) for r in outs)
    name = f"{path} x{o.queues}"
    return Result(name, got, secs, offered, got, cpu, kernel)


def run(o: Options, report: Callable[[Result], None] | None = None) -> list[Result]:
    """Runs the workload through each of ``o.paths``; returns one Result per path."""
    if o.workload not in ("rxdrop", "txonly", "l2fwd"):
        raise ValueError(f"workload={o.workload!r}: use rxdrop, txonly or l2fwd")
    for p in o.paths:
        if p not in PATHS:
            raise ValueError(f"path {p!r}: use {', '.join(PATHS)}")
    results: list[Result] = []

    def one(tb: VethTestbed | None, ifname: str, peer: str) -> None:
        dst = tb.inner_mac if tb else "ff:ff:ff:ff:ff:ff"
        src = tb.peer_mac if tb else "02:00:00:00:00:99"
        if o.workload == "txonly" and tb:
            dst, src = tb.peer_mac, tb.inner_mac
        head = (
            bytes.fromhex(dst.replace(":", ""))
            + bytes.fromhex(src.replace(":", ""))
            + ETH_P_AFXDP_TEST.to_bytes(2, "big")
        )
        packet = head + bytes(max(0, o.size - len(head)))
        for path in o.paths:
            if o.queues > 1:
                if o.workload != "rxdrop" or tb is None or path == "af_packet":
                    continue
                r = _rxdrop_queues(o, path, tb, packet)
                results.append(r)
                if report:
                    report(r)
                continue
            if o.workload == "rxdrop":
                r = _rxdrop(o, path, ifname, peer, packet)
            elif o.workload == "txonly":
                r = _txonly(o, path, ifname, tb, peer, packet)
            else:
                r = _l2fwd(o, path, ifname, tb, peer, packet)
            results.append(r)
            if report:
                report(r)

    if o.queues > 1 and (o.workload != "rxdrop" or o.ifname is not None):
        raise ValueError("--queues applies to rxdrop on the built-in test bed")
    if o.ifname is None:
        with VethTestbed(ephemeral=True, queues=o.queues) as tb:
            one(tb, tb.inner, tb.peer)
    else:
        if o.workload != "txonly" and o.peer is None:
            raise ValueError(
                "rxdrop and l2fwd on a real interface need --peer (the generator's side)"
            )
        one(None, o.ifname, o.peer or o.ifname)
    return results
