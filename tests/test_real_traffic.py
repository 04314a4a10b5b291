"""Real traffic through afxdp_rs: two hosts with real kernel stacks (namespaces A and
B, default offloads: checksum offload, TSO) joined only through a forwarder on a1/b1.
Ping, TCP transfers checked with sha256, a UDP flood whose every loss is matched to a
counter, and checksums: partial ones completed on the way, wrong ones left wrong."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import struct
import subprocess
import threading
import time
import warnings
from collections.abc import Callable, Iterator

import pytest
from conftest import wait_ready
from packets import frame, l4_checksum_ok

import afxdp_rs
from afxdp_rs.testbed import LinkedHosts, VethTestbed
from afxdp_rs.types import XdpMode

pytestmark = pytest.mark.kernel


@pytest.fixture
def net() -> Iterator[LinkedHosts]:
    with LinkedHosts() as hosts:
        yield hosts


def ping(net: LinkedHosts, src: str, dst: str, version: int = 4, count: int = 20) -> None:
    r = subprocess.run(
        net.command(
            src,
            "ping",
            f"-{version}",
            "-c",
            str(count),
            "-i",
            "0.01",
            "-W",
            "2",
            net.address(dst, version),
        ),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert f"{count} received, 0% packet loss" in r.stdout, r.stdout + r.stderr


def tcp_transfer(net: LinkedHosts, src: str, dst: str, data: bytes, version: int = 4) -> str:
    """Sends ``data`` over TCP from host ``src`` to host ``dst``; returns the sha256 of
    what arrived (and checks every byte arrived)."""
    family = socket.AF_INET if version == 4 else socket.AF_INET6
    addr = net.address(dst, version)
    listening = threading.Event()
    result: dict[str, object] = {}

    def serve() -> None:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((addr, 5001))
            s.listen(1)
            s.settimeout(30)
            listening.set()
            conn, _ = s.accept()
            with conn:
                conn.settimeout(30)
                h, n = hashlib.sha256(), 0
                while chunk := conn.recv(1 << 20):
                    h.update(chunk)
                    n += len(chunk)
            result["sha256"], result["bytes"] = h.hexdigest(), n

    def server() -> None:
        try:
            net.run(dst, serve)
        except BaseException as e:
            result["error"] = e
            listening.set()

    t = threading.Thread(target=server)
    t.start()
    assert listening.wait(10)

    def send() -> None:
        with socket.create_connection((addr, 5001), timeout=30) as c:
            c.sendall(data)

    net.run(src, send)
    t.join(60)
    assert "error" not in result, result
    assert result["bytes"] == len(data)
    return str(result["sha256"])


DATA = os.urandom(64 << 20)
DATA_SHA256 = hashlib.sha256(DATA).hexdigest()


def offloads_off(net: LinkedHosts, host: str, what: str) -> None:
    subprocess.run(net.command(host, "ethtool", "-K", f"{host}0", *what.split()), check=True)


@pytest.mark.parametrize("mode", ["native", "skb"])
def test_ping_and_tcp_through_the_forwarder(net: LinkedHosts, mode: XdpMode) -> None:
    """The hosts keep their default offloads: their stacks send partial checksums,
    which the forwarder completes."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fwd = afxdp_rs.Forwarder(net.a_if, net.b_if, mode=mode)
    with fwd:
        if mode == "skb":
            # In skb mode the veth peers' segmentation offload makes 64 KiB packets;
            # the peers are in other namespaces, so the forwarder can only say so.
            said = [str(w.message) for w in caught if w.category is afxdp_rs.AfXdpWarning]
            assert any("peer is in another network namespace" in m for m in said), said
            for host in ("a", "b"):
                offloads_off(net, host, "tso off gso off")
        ping(net, "a", "b")
        ping(net, "b", "a", version=6)
        assert tcp_transfer(net, "a", "b", DATA) == DATA_SHA256
        assert tcp_transfer(net, "b", "a", DATA, version=6) == DATA_SHA256
        stats = fwd.statistics()
        assert fwd.running
    for d in stats:
        assert d["checksums"] > 1000, d  # the stacks' partial checksums, completed
    tcp = net.snmp("b", "Tcp")
    assert tcp["InCsumErrors"] == 0


def python_forwarder(a: afxdp_rs.XskSocket, b: afxdp_rs.XskSocket) -> Callable[[], None]:
    """The same forwarder written with the Python API (a copy per packet); returns the
    function that stops it."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            while not stop.is_set():
                moved = 0
                for src, dst in ((a, b), (b, a)):
                    with src.recv(64, timeout=0) as batch:
                        if len(batch):
                            moved += dst.send(batch.to_list(), timeout=1.0)
                if not moved:
                    a.wait_readable(timeout=0.005)
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=run)
    t.start()

    def halt() -> None:
        stop.set()
        t.join()
        if errors:
            raise errors[0]

    return halt


def test_the_same_through_the_python_api(net: LinkedHosts) -> None:
    data = DATA[: 16 << 20]
    a = afxdp_rs.XskSocket(net.a_if, 0, complete_checksums=True)
    b = afxdp_rs.XskSocket(net.b_if, 0, complete_checksums=True)
    with a, b:
        halt = python_forwarder(a, b)
        try:
            ping(net, "a", "b")
            want = hashlib.sha256(data).hexdigest()
            assert tcp_transfer(net, "a", "b", data) == want
            assert tcp_transfer(net, "b", "a", data, version=6) == want
        finally:
            halt()
        assert a.statistics()["checksums_completed"] > 100
        assert b.statistics()["checksums_completed"] > 100


def settle(fwd: afxdp_rs.Forwarder) -> None:
    """Waits until the forwarder has moved nothing for a while: what was sent has
    arrived or was counted."""
    last, still = -1, 0
    for _ in range(200):
        moved = sum(d["packets"] for d in fwd.statistics())
        still = still + 1 if moved == last else 0
        if still >= 4:
            time.sleep(0.05)
            return
        last = moved
        time.sleep(0.05)
    raise AssertionError("the forwarder kept moving packets for 10 s")


def test_udp_flood_every_loss_counted(net: LinkedHosts) -> None:
    """A flood of small UDP datagrams from A's stack to a receiver in B that reads
    only afterwards: whatever did not arrive is in exactly one counter on the way."""
    count = 100_000
    dst = (net.address("b"), 9000)
    bound = threading.Event()
    flooded = threading.Event()
    seen: set[int] = set()

    def receive() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
            s.bind(dst)
            bound.set()
            flooded.wait(60)
            s.setblocking(False)
            while True:
                try:
                    seen.add(struct.unpack_from("!Q", s.recv(64))[0])
                except BlockingIOError:
                    return

    def flood() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(count):
                s.sendto(struct.pack("!Q", i) + bytes(10), dst)

    with afxdp_rs.Forwarder(net.a_if, net.b_if) as fwd:
        links0 = {n: net.link_stats(n) for n in (net.a_if, net.b_if)}
        hosts0 = {h: net.link_stats(f"{h}0", h) for h in ("a", "b")}
        udp0 = net.snmp("b")
        t = threading.Thread(target=net.run, args=("b", receive))
        t.start()
        assert bound.wait(10)
        net.run("a", flood)
        settle(fwd)
        flooded.set()
        t.join(60)
        stats = fwd.statistics()
        links1 = {n: net.link_stats(n) for n in (net.a_if, net.b_if)}
        hosts1 = {h: net.link_stats(f"{h}0", h) for h in ("a", "b")}
        udp1 = net.snmp("b")
    a_to_b = next(d for d in stats if d["from"] == net.a_if)
    counters = {
        "a0 tx_dropped": hosts1["a"]["tx_dropped"] - hosts0["a"]["tx_dropped"],
        "AF_XDP rx_dropped (a1)": a_to_b["rx"]["rx_dropped"],
        "AF_XDP rx_ring_full (a1)": a_to_b["rx"]["rx_ring_full"],
        "b1 tx_dropped": links1[net.b_if]["tx_dropped"] - links0[net.b_if]["tx_dropped"],
        "b0 rx_dropped": hosts1["b"]["rx_dropped"] - hosts0["b"]["rx_dropped"],
        "B Udp RcvbufErrors": udp1["RcvbufErrors"] - udp0["RcvbufErrors"],
    }
    missing = count - len(seen)
    assert udp1["InCsumErrors"] == udp0["InCsumErrors"], "a checksum arrived unfinished"
    assert missing > 0, "the receiver's buffer holds less than the flood"
    assert missing == sum(counters.values()), (missing, counters)


def test_a_wrong_checksum_stays_wrong(net: LinkedHosts) -> None:
    """Frames written raw on A's interface: a partial checksum arrives at B completed,
    a wrong one arrives exactly as it was sent (and B's stack drops it)."""
    a_mac, b_mac = net.mac("a"), net.mac("b")
    src, dst = net.address("a"), net.address("b")
    sent = {
        kind: frame(b_mac, a_mac, src, dst, "udp", kind.encode() * 50, checksum=kind)
        for kind in ("partial", "wrong")
    }
    with afxdp_rs.Forwarder(net.a_if, net.b_if):

        def capture() -> list[bytes]:
            got: list[bytes] = []
            with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800)) as s:
                s.bind(("b0", 0))
                s.settimeout(5)
                ready.set()
                while len(got) < 2:
                    data = s.recv(4096)
                    if data[23] == 17 and data[36:38] == struct.pack("!H", 9000):
                        got.append(data)
            return got

        ready = threading.Event()
        received: list[list[bytes]] = []
        t = threading.Thread(target=lambda: received.append(net.run("b", capture)))
        t.start()
        assert ready.wait(10)
        udp0 = net.snmp("b")

        def inject() -> None:
            with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
                s.bind(("a0", 0))
                for f in sent.values():
                    s.send(f)

        net.run("a", inject)
        t.join(10)
        udp1 = net.snmp("b")
    arrived = {("partial" if f[42:49] == b"partial" else "wrong"): f for f in received[0]}
    assert l4_checksum_ok(arrived["partial"])
    assert arrived["partial"] == frame(b_mac, a_mac, src, dst, "udp", b"partial" * 50)
    assert arrived["wrong"] == sent["wrong"], "a wrong checksum is never 'fixed'"
    assert not l4_checksum_ok(arrived["wrong"])
    assert udp1["InCsumErrors"] - udp0["InCsumErrors"] == 1


def test_checksum_of_received_frames_and_completing_on_receive() -> None:
    with VethTestbed() as bed:
        inner = bytes.fromhex(bed.inner_mac.replace(":", ""))
        peer = bytes.fromhex(bed.peer_mac.replace(":", ""))
        frames = {
            "complete": frame(inner, peer, "10.1.0.2", "10.1.0.1", "udp", b"x" * 30),
            "partial": frame(
                inner, peer, "10.1.0.2", "10.1.0.1", "tcp", b"y" * 900, checksum="partial"
            ),
            "wrong": frame(inner, peer, "fd00::2", "fd00::1", "udp", b"z" * 31, checksum="wrong"),
            "partial6": frame(
                inner, peer, "fd00::2", "fd00::1", "udp", b"w" * 333, checksum="partial"
            ),
            "not_applicable": bed.frame(1, 64),
        }
        expect = {
            "complete": "complete",
            "partial": "partial",
            "wrong": "wrong",
            "partial6": "partial",
            "not_applicable": "not_applicable",
        }
        for complete in (False, True):
            with (
                afxdp_rs.XskSocket(bed.inner, 0, complete_checksums=complete) as sock,
                socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as out,
            ):
                out.bind((bed.peer, 0))
                for f in frames.values():
                    out.send(f)
                got: list[tuple[str, bytes]] = []
                while len(got) < len(frames):
                    with sock.recv(16, timeout=2.0) as batch:
                        assert len(batch), "frames did not arrive"
                        got.extend((fr.checksum, bytes(fr)) for fr in batch)
                        assert batch.checksums() == [c for c, _ in got[-len(batch) :]]
                completed = sock.statistics()["checksums_completed"]
            for (name, f), (checksum, data) in zip(frames.items(), got, strict=True):
                if complete and expect[name] == "partial":
                    assert checksum == "complete" and l4_checksum_ok(data), name
                else:
                    assert checksum == expect[name], name
                    assert data == f, name
            assert completed == (2 if complete else 0)


def test_the_command_line_forwards_real_traffic(
    net: LinkedHosts, capsys: pytest.CaptureFixture[str]
) -> None:
    from afxdp_rs.cli import main

    codes: list[int] = []
    t = threading.Thread(target=lambda: codes.append(main(["forward", "a1", "b1", "-d", "4"])))
    t.start()
    wait_ready(os.getpid(), "a1", "b1")
    ping(net, "a", "b")
    data = DATA[: 8 << 20]
    assert tcp_transfer(net, "a", "b", data) == hashlib.sha256(data).hexdigest()
    t.join(30)
    assert codes == [0]
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("a1 -> b1:"))
    found = re.search(r"([\d,]+) partial checksums completed", line)
    assert found, out
    completed = int(found.group(1).replace(",", ""))
    assert completed > 1000, out
    assert "lost 0" in line, out
