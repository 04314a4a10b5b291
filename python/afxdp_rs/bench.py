"""Throughput benchmarks in the spirit of xdpsock: rxdrop, txonly and l2fwd.

Each workload runs through one or more *paths*:

* ``python``: the Python API, one call per batch (``recv``/``release``, ``send``,
  ``l2fwd``);
* ``rust``: the same loop entirely in Rust (``afxdp_rs.tools``), the reference;
* ``af_packet``: Python's own AF_PACKET sockets (``recv_into``/``send``), what Python
  programs use today.

A receiver waits for packets in one of three ways (``Options.wait``):

* ``spin``: asks again at once (``recv(timeout=0)``), one core at 100 %;
* ``poll``: sleeps in poll(2) until packets come;
* ``busy-poll``: spins on a socket opened with ``busy_poll=True``, so that each empty
  look is a system call in which the kernel polls the device itself (preferred busy
  polling; only where the socket gets a NAPI ID: not on veth, not in skb mode).

The ``drain`` workload measures the Python API's cost per packet without the kernel in
the way: the rx ring is filled first, then emptied by ``recv``/``release`` alone, with
iteration over the frames, and with the vector API (numpy, when installed).

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

from afxdp_rs import cdrain, tools
from afxdp_rs._afxdp import XdpProgram, XskSocket
from afxdp_rs.benchkit import (
    PATHS,
    WAITS,
    WORKLOADS,
    Generator,
    Options,
    Result,
    af_packet_step,
    busy_poll_detail,
    open_socket,
    packet_socket,
)
from afxdp_rs.cdrain import CDrain
from afxdp_rs.testbed import ETH_P_AFXDP_TEST, VethTestbed, packet_statistics

__all__ = ["Options", "Result", "run"]


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


def _rust_loop(gen: Generator, loop: Callable[[], dict[str, float]]) -> dict[str, float]:
    """Runs a Rust receive loop in a thread and starts the generator once it runs. The
    caller closes the loop's socket on the way out, which ends the loop early."""
    wait = _in_thread(loop)
    time.sleep(0.05)
    gen.start()
    return wait()


def _timed(
    total: float, step: Callable[[], int], gen: Generator | None = None
) -> tuple[int, float]:
    """Starts the generator (if any), then runs `step` (one batch: returns how many
    packets it handled) for `total` seconds; returns the packets and the CPU time of
    this thread."""
    count = 0
    c0, t0 = time.thread_time(), time.perf_counter()
    if gen is not None:
        gen.start()
    while time.perf_counter() - t0 < total:
        count += step()
    return count, time.thread_time() - c0


def _recv_step(o: Options, sock: XskSocket) -> Callable[[], int]:
    """One step of the Python API's rxdrop: receive a batch and release it."""
    timeout = 0.05 if o.poll else 0

    def step() -> int:
        batch = sock.recv(o.batch, timeout=timeout, linger=o.linger)
        n = len(batch)
        batch.release()
        return n

    return step


def _rxdrop(o: Options, path: str, ifname: str, peer: str, packet: bytes) -> Result:
    total = o.duration + 0.4  # the receiver outlives the generator, then drains
    with Generator(o, peer, packet) as gen:
        if path == "af_packet":
            rx = packet_socket(o, ifname)
            packet_statistics(rx)
            got, cpu = _timed(total, af_packet_step(rx, bytearray(65536), o.linger, _one), gen)
            g = gen.join()
            _, drops = packet_statistics(rx)
            rx.close()
            return Result(path, got, g["seconds"], int(g["packets"]), got, cpu, {"drops": drops})
        sock = open_socket(o, ifname, tx_size=0)
        try:
            if path == "rust":
                out = _rust_loop(gen, lambda: tools.rxdrop(sock, total, o.batch, o.poll, o.linger))
                got, cpu = int(out["packets"]), float(out["cpu_seconds"])
            else:
                got, cpu = _timed(total, _recv_step(o, sock), gen)
            g = gen.join()
            st = sock.statistics()
            busy = busy_poll_detail(o, sock)
        finally:
            sock.close()
    kernel = {k: st[k] for k in ("rx_dropped", "rx_ring_full")}
    return Result(path, got, g["seconds"], int(g["packets"]), got, cpu, kernel | busy)


def _one(n: int, addr: Any) -> int:
    return 1


def _txonly(
    o: Options, path: str, ifname: str, tb: VethTestbed | None, peer: str, packet: bytes
) -> Result:
    before = tb.link_stats(peer).get("rx_packets", 0) if tb else 0
    if path == "af_packet":
        tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        tx.bind((ifname, 0))

        def send_af_packet() -> int:
            for _ in range(o.batch):
                tx.send(packet)
            return o.batch

        t0 = time.perf_counter()
        sent, cpu = _timed(o.duration, send_af_packet)
        secs = time.perf_counter() - t0
        tx.close()
    else:
        sock = open_socket(o, ifname, rx_size=0)
        try:
            if path == "rust":
                r = tools.txonly(sock, packet, o.duration, o.batch)
                sent, secs, cpu = int(r["packets"]), r["seconds"], r["cpu_seconds"]
            else:
                packets = [packet] * o.batch
                t0 = time.perf_counter()
                _, cpu = _timed(o.duration, lambda: sock.send(packets))
                sock.flush(timeout=1.0)
                secs = time.perf_counter() - t0
                sent = sock.statistics()["tx_completed"]
        finally:
            sock.close()
    time.sleep(0.05)
    arrived = tb.link_stats(peer)["rx_packets"] - before if tb else sent
    return Result(path, sent, secs, sent, arrived, cpu)


def _l2fwd(
    o: Options, path: str, ifname: str, tb: VethTestbed | None, peer: str, packet: bytes
) -> Result:
    before = tb.link_stats(peer).get("rx_packets", 0) if tb else 0
    total = o.duration + 0.4
    with Generator(o, peer, packet) as gen:
        if path == "af_packet":
            s = packet_socket(o, ifname)
            buf = bytearray(65536)

            def reflect(n: int, addr: Any) -> int:
                if addr[2] == socket.PACKET_OUTGOING:
                    return 0
                s.send(bytes(buf[6:12] + buf[0:6] + buf[12:n]))
                return 1

            fwd, cpu = _timed(total, af_packet_step(s, buf, o.linger, reflect), gen)
            s.close()
        else:
            sock = open_socket(o, ifname)
            try:
                if path == "rust":
                    out = _rust_loop(
                        gen, lambda: tools.l2fwd(sock, total, o.batch, o.poll, o.linger)
                    )
                    fwd, cpu = int(out["packets"]), float(out["cpu_seconds"])
                else:

                    def forward() -> int:
                        n = sock.l2fwd(o.batch)
                        if not n and o.poll:
                            sock.wait_readable(timeout=0.05)
                        elif n < o.batch and o.linger:
                            time.sleep(o.linger)
                        return n

                    fwd, cpu = _timed(total, forward, gen)
                    sock.flush(timeout=1.0)
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
            return tools.rxdrop(sock, total, o.batch, o.poll, o.linger)
        got, cpu = _timed(total, _recv_step(o, sock))
        return {"packets": got, "cpu_seconds": cpu}

    # Everything opened is closed on the way out, also on an error or Ctrl-C: closing
    # a socket ends the loop running on it, and the generators stop their traffic.
    with contextlib.ExitStack() as stack:
        socks = []
        for q in range(o.queues):
            sock = open_socket(dataclasses.replace(o, queue=q), tb.inner, tx_size=0)
            stack.callback(sock.close)
            socks.append(sock)
        gens = [
            stack.enter_context(Generator(dataclasses.replace(o, queue=q), tb.peer, packet))
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


#: What the drain workload does with each batch.
DRAIN_BODIES = ("recv+release", "recv+iterate+release", "vector: field+bincount")
# What each Python body is compared with on the C side ("drain": descriptors only,
# "field": also two bytes of each packet), and the Rust API's drain.
C_BODY = {"recv+release": "drain", "vector: field+bincount": "field"}


def _drain_once(sock: XskSocket, batch: int, body: str, np: Any) -> int:
    """Empties the rx ring in batches, doing `body` with each; returns the packets."""
    n = 0
    while True:
        b = sock.recv(batch, timeout=0)
        k = len(b)
        if not k:
            b.release()
            return n
        if body == "recv+iterate+release":
            for f in b:
                len(f)
        elif body != "recv+release":
            np.bincount(np.frombuffer(memoryview(b.field(36, 2)), ">u2"))
        b.release()
        n += k


def _fill(gen: XskSocket, packets: list[bytes]) -> None:
    gen.send(packets, timeout=2.0)
    gen.flush(timeout=2.0)
    time.sleep(0.02)  # let the kernel finish delivering


def _drain(o: Options, tb: VethTestbed, packet: bytes) -> list[Result]:
    """The receive path's cost per packet with the kernel out of the way: a send-only
    socket on the peer fills the receiver's rx ring (2,048 packets) while nobody
    receives, then the receiver empties it; only the emptying is timed. With the
    comparison (``--compare``), in alternating turns: the Rust API's drain, and the
    same drain in C over libxdp's ring functions on queue 1 of the same test bed."""
    numpy: Any
    try:
        import numpy  # optional: only for the vector body
    except ImportError:
        numpy = None
    compare = len(o.paths) > 1
    bodies = list(DRAIN_BODIES if numpy is not None else DRAIN_BODIES[:2])
    if compare:
        bodies.insert(1, "rust recv+recycle")
    rounds = max(3, int(o.duration * 10))
    per_round: dict[str, list[float]] = {b: [] for b in bodies}
    c_round: dict[str, list[float]] = {"drain": [], "field": []}
    totals: dict[str, list[float]] = {b: [0, 0.0] for b in bodies}
    note = ""
    with contextlib.ExitStack() as stack:
        gen = XskSocket(tb.peer, 0, rx_size=0, frame_size=o.frame_size)
        stack.callback(gen.close)
        c: CDrain | None = None
        gen_c: XskSocket | None = None
        binary = None
        if compare:
            binary, note = cdrain.build()
        if binary is not None and tb.queues > 1:
            # The program first, so that the socket below joins it; its XSKMAP steers
            # queue 1 to the C side's socket.
            program = XdpProgram(tb.inner, o.mode)
            stack.callback(program.close)
        sock = open_socket(o, tb.inner, tx_size=0)
        stack.callback(sock.close)
        if binary is not None and tb.queues > 1:
            c = stack.enter_context(CDrain(binary, tb.inner, 1, program.xsks_map_fd, 2048, o.batch))
            gen_c = XskSocket(tb.peer, 1, rx_size=0, frame_size=o.frame_size)
            stack.callback(gen_c.close)
        packets = [packet] * 2048  # the receiver's fill ring holds 2,048 frames
        for _ in range(rounds):
            for body in bodies:
                _fill(gen, packets)
                if body == "rust recv+recycle":
                    n, took_ns = tools.drain(sock, o.batch)
                    dt = took_ns / 1e9
                else:
                    t0 = time.perf_counter()
                    n = _drain_once(sock, o.batch, body, numpy)
                    dt = time.perf_counter() - t0
                if n:
                    per_round[body].append(dt / n * 1e9)
                    totals[body][0] += n
                    totals[body][1] += dt
                if c is not None and gen_c is not None and body in C_BODY:
                    _fill(gen_c, packets)
                    cn, cns = c.drain(C_BODY[body] == "field")
                    if cn:
                        c_round[C_BODY[body]].append(cns / cn)
    results = []
    for body in bodies:
        ns = sorted(per_round[body])
        detail: dict[str, Any] = {
            "min-median": f"{ns[0]:.0f}-{ns[len(ns) // 2]:.0f} ns" if ns else "-"
        }
        cb = "drain" if body == "rust recv+recycle" else C_BODY.get(body)
        if cb and c_round[cb]:
            ref = c_round[cb]
            ratios = sorted(a / b for a, b in zip(per_round[body], ref, strict=False))
            detail["c_ns"] = f"{sorted(ref)[0]:.1f}-{sorted(ref)[len(ref) // 2]:.1f} ns"
            detail["ratio_to_c"] = (
                f"{ratios[len(ratios) // 2]:.1f} ({ratios[0]:.1f}-{ratios[-1]:.1f})"
            )
        elif compare and note and cb:
            detail["c"] = note
        total, seconds = totals[body]
        results.append(
            Result(
                f"drain {body}",
                int(total),
                seconds,
                rounds * len(packets),
                int(total),
                seconds,
                detail,
            )
        )
    if compare and c is not None:
        for cb, label in (("drain", "descriptors"), ("field", "one field")):
            ref = sorted(c_round[cb])
            if ref:
                results.append(
                    Result(
                        f"drain C ({label})",
                        len(ref) * len(packets),
                        sum(ref) * len(packets) / 1e9,
                        len(ref) * len(packets),
                        len(ref) * len(packets),
                        sum(ref) * len(packets) / 1e9,
                        {"min-median": f"{ref[0]:.1f}-{ref[len(ref) // 2]:.1f} ns", "built": note},
                    )
                )
    return results


def run(o: Options, report: Callable[[Result], None] | None = None) -> list[Result]:
    """Runs the workload through each of ``o.paths``; returns one Result per path."""
    if o.workload not in WORKLOADS:
        raise ValueError(f"workload={o.workload!r}: use {', '.join(WORKLOADS)}")
    if o.wait not in WAITS:
        raise ValueError(f"wait={o.wait!r}: use {', '.join(WAITS)}")
    for p in o.paths:
        if p not in PATHS:
            raise ValueError(f"path {p!r}: use {', '.join(PATHS)}")
    results: list[Result] = []
    if o.workload in ("forward", "tcp"):
        from afxdp_rs import bench_forward

        if o.ifname is not None or o.queues > 1:
            raise ValueError(f"{o.workload} runs on its own test bed, one queue pair")
        for path in o.paths:
            if o.workload == "tcp" and path == "af_packet":
                continue
            r = getattr(bench_forward, o.workload)(o, path)
            results.append(r)
            if report:
                report(r)
        return results

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
        if o.workload == "drain" or (o.drain and o.workload == "rxdrop"):
            assert tb is not None  # checked by run()
            for r in _drain(o, tb, packet):
                results.append(r)
                if report:
                    report(r)
            if o.workload == "drain":
                return
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

    if o.workload == "drain" and o.ifname is not None:
        raise ValueError("drain runs on its own test bed: leave out --interface")
    if o.queues > 1 and (o.workload != "rxdrop" or o.ifname is not None):
        raise ValueError("--queues applies to rxdrop on the built-in test bed")
    if o.ifname is None:
        # Jumbo packets need a jumbo MTU (and multi-buffer, on where the kernel has it).
        mtu = max(1500, o.size - 14)
        # The C side of the drain comparison takes queue 1 of the test bed.
        draining = o.workload == "drain" or o.drain
        queues = max(o.queues, 2) if draining and len(o.paths) > 1 else o.queues
        with VethTestbed(ephemeral=True, queues=queues, mtu=mtu) as tb:
            one(tb, tb.inner, tb.peer)
    else:
        if o.workload != "txonly" and o.peer is None:
            raise ValueError(
                "rxdrop and l2fwd on a real interface need --peer (the generator's side)"
            )
        one(None, o.ifname, o.peer or o.ifname)
    return results
