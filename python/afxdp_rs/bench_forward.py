"""Benchmarks of forwarding between two interfaces (the ``forward`` and ``tcp``
workloads of ``afxdp bench``), on their own test beds.

* ``forward``: full-rate generators on the outer ends of two veth pairs send small
  frames toward each other through a forwarder between the inner ends: both
  directions at once. Paths: ``rust`` (the zero-copy ``Forwarder``), ``python`` (a
  forwarder written with the Python API: ``recv().to_list()`` then ``send``, a copy per
  packet) and ``af_packet`` (Python's AF_PACKET sockets).
* ``tcp``: two hosts with real stacks and default offloads (``LinkedHosts``), iperf3
  from A to B through the forwarder; partial checksums are completed on the way.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
import threading
import time
from collections.abc import Callable

from afxdp_rs._afxdp import Forwarder, XskSocket
from afxdp_rs.benchkit import Generator, Options, Result, af_packet_step, packet_socket
from afxdp_rs.testbed import ETH_P_AFXDP_TEST, LinkedHosts, VethTestbed

__all__ = ["forward", "tcp"]


def _copying_forwarder(o: Options, a: str, b: str) -> Callable[[], float]:
    """The Python API forwarder (a copy per packet) in a thread; returns the function
    that stops it and returns the thread's CPU seconds."""
    sa = XskSocket(a, 0, mode=o.mode, bind=o.bind, complete_checksums=True)
    sb = XskSocket(b, 0, mode=o.mode, bind=o.bind, complete_checksums=True)
    stop = threading.Event()
    cpu: list[float] = []

    def run() -> None:
        c0 = time.thread_time()
        try:
            while not stop.is_set():
                moved = 0
                for src, dst in ((sa, sb), (sb, sa)):
                    with src.recv(o.batch, timeout=0) as batch:
                        if len(batch):
                            moved += dst.send(batch.to_list(), timeout=1.0)
                if not moved:
                    sa.wait_readable(timeout=0.001)
        finally:
            cpu.append(time.thread_time() - c0)

    t = threading.Thread(target=run, name="afxdp-bench-pyforward")
    t.start()

    def halt() -> float:
        stop.set()
        t.join()
        sa.close()
        sb.close()
        return cpu[0] if cpu else 0.0

    return halt


def _af_packet_forwarder(o: Options, a: str, b: str) -> Callable[[], float]:
    """A forwarder on Python's AF_PACKET sockets, in a thread."""
    sockets = {a: packet_socket(o, a), b: packet_socket(o, b)}
    for s in sockets.values():
        s.setblocking(False)
    stop = threading.Event()
    cpu: list[float] = []
    buf = bytearray(65536)

    def stepper(src: str, dst: str) -> Callable[[], int]:
        out = sockets[dst]

        def handle(n: int, addr: tuple[object, ...]) -> int:
            if addr[2] == socket.PACKET_OUTGOING:
                return 0
            out.send(bytes(buf[:n]))
            return 1

        return af_packet_step(sockets[src], buf, 0.0, handle)

    steps = [stepper(a, b), stepper(b, a)]

    def run() -> None:
        c0 = time.thread_time()
        while not stop.is_set():
            if not sum(step() for step in steps):
                time.sleep(0.0001)
        cpu.append(time.thread_time() - c0)

    t = threading.Thread(target=run, name="afxdp-bench-afpacket-forward")
    t.start()

    def halt() -> float:
        stop.set()
        t.join()
        for s in sockets.values():
            s.close()
        return cpu[0] if cpu else 0.0

    return halt


def _zero_copy_forwarder(o: Options, a: str, b: str) -> Callable[[], float]:
    """The Rust Forwarder; its CPU time is the process's minus the other threads'."""
    c0 = time.process_time()
    fwd = Forwarder(a, b, mode=o.mode, bind=o.bind, batch=o.batch)

    def halt() -> float:
        fwd.stop()
        return time.process_time() - c0

    return halt


_FORWARDERS = {
    "rust": _zero_copy_forwarder,
    "python": _copying_forwarder,
    "af_packet": _af_packet_forwarder,
}


def forward(o: Options, path: str) -> Result:
    """Small frames both ways through a forwarder between two veth pairs."""
    with VethTestbed(ephemeral=True) as tb:
        tb.add_veth("fwd0", "fwd1")
        ends = {tb.peer: "fwd1", "fwd1": tb.peer}  # generator -> where its frames land
        before = {n: tb.link_stats(n)["rx_packets"] for n in ends.values()}
        head = bytes(6) + bytes.fromhex("020000000099") + ETH_P_AFXDP_TEST.to_bytes(2, "big")
        packet = head + bytes(max(0, o.size - len(head)))
        halt = _FORWARDERS[path](o, tb.inner, "fwd0")
        gens = [Generator(dataclasses.replace(o, queue=0), g, packet) for g in ends]
        try:
            for g in gens:
                g.start()
            stats = [g.join() for g in gens]
        finally:
            for g in gens:
                g.__exit__()
            cpu = halt()
        if path == "rust":
            cpu -= sum(float(s["cpu_seconds"]) for s in stats)
        time.sleep(0.05)
        arrived = sum(tb.link_stats(n)["rx_packets"] - before[n] for n in ends.values())
    offered = sum(int(s["packets"]) for s in stats)
    seconds = max(float(s["seconds"]) for s in stats)
    return Result(path, arrived, seconds, offered, arrived, cpu)


def tcp(o: Options, path: str) -> Result:
    """iperf3 from host A to host B (real stacks, default offloads) through the
    forwarder, for ``o.duration`` seconds."""
    if path == "af_packet":
        raise ValueError("the tcp workload runs the rust and python paths")
    with LinkedHosts() as net:
        halt = _FORWARDERS[path](o, net.a_if, net.b_if)
        try:
            server = subprocess.Popen(
                net.command("b", "iperf3", "-s", "-1", "-B", net.address("b")),
                stdout=subprocess.DEVNULL,
            )
            time.sleep(0.3)
            client = subprocess.run(
                net.command(
                    "a",
                    "iperf3",
                    "-c",
                    net.address("b"),
                    "-J",
                    "-t",
                    str(max(1, round(o.duration))),
                ),
                capture_output=True,
                text=True,
                check=True,
                timeout=o.duration + 30,
            )
            server.wait(timeout=10)
        finally:
            cpu = halt()
    end = json.loads(client.stdout)["end"]
    sent, received = end["sum_sent"], end["sum_received"]
    seconds = float(received["seconds"])
    segments = int(received["bytes"]) // 1448
    gbps = float(received["bits_per_second"]) / 1e9
    detail = {"Gbit/s": f"{gbps:.2f}", "retransmits": sent.get("retransmits", 0)}
    return Result(path, segments, seconds, segments, segments, cpu, detail)
