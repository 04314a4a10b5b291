"""Flow steering: a socket takes only the packets its filter matches; everything else
reaches the kernel stack untouched (ping and TCP keep working between two real
stacks); rules change at once under traffic without losing or doubling a packet; one
socket per queue, whatever the rules."""

from __future__ import annotations

import hashlib
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from test_real_traffic import DATA, ping, tcp_transfer

import afxdp_rs
from afxdp_rs.testbed import LinkedHosts, VethTestbed

pytestmark = pytest.mark.kernel


@pytest.fixture
def hosts() -> Iterator[LinkedHosts]:
    """Hosts A and B joined by a bridge: sockets go on B's own interface, b0."""
    with LinkedHosts(bridge=True) as net:
        yield net


def on_b(net: LinkedHosts, **kw: object) -> afxdp_rs.XskSocket:
    return net.run("b", lambda: afxdp_rs.XskSocket("b0", 0, **kw))  # type: ignore[arg-type]


def udp_listener(net: LinkedHosts, port: int) -> socket.socket:
    def make() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)  # SO_RCVBUFFORCE
        s.bind((net.address("b"), port))
        s.setblocking(False)
        return s

    return net.run("b", make)


def drain_udp(s: socket.socket) -> list[int]:
    got = []
    while True:
        try:
            got.append(struct.unpack_from("!Q", s.recv(64))[0])
        except BlockingIOError:
            return got


def send_udp(net: LinkedHosts, packets: list[tuple[int, int]], gap: float = 0.0) -> None:
    """Sends (port, seq) datagrams from host A to host B."""

    def run() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for port, seq in packets:
                s.sendto(struct.pack("!Q", seq) + bytes(16), (net.address("b"), port))
                if gap:
                    time.sleep(gap)

    net.run("a", run)


def udp_of(frame: bytes) -> tuple[int, int]:
    """(destination port, sequence number) of a UDP/IPv4 frame sent by send_udp."""
    assert frame[12:14] == b"\x08\x00" and frame[23] == 17, frame[:40].hex()
    return struct.unpack_from("!H", frame, 36)[0], struct.unpack_from("!Q", frame, 42)[0]


def take_all(sock: afxdp_rs.XskSocket, quiet: float = 0.3) -> list[bytes]:
    got: list[bytes] = []
    while True:
        with sock.recv(64, timeout=quiet) as batch:
            if not len(batch):
                return got
            got.extend(batch.to_list())


def test_a_socket_takes_only_its_flow(hosts: LinkedHosts) -> None:
    net = hosts
    mine, others = udp_listener(net, 9999), udp_listener(net, 9998)
    with on_b(net, match="udp and dst port 9999") as sock:
        assert sock.match == "udp and dst port 9999"
        send_udp(net, [(9999 - (i % 2), i) for i in range(100)])
        ping(net, "a", "b")
        ping(net, "b", "a", version=6)
        data = DATA[: 16 << 20]
        want = hashlib.sha256(data).hexdigest()
        assert tcp_transfer(net, "a", "b", data) == want
        assert tcp_transfer(net, "b", "a", data, version=6) == want
        taken = [udp_of(f) for f in take_all(sock)]
    assert taken == [(9999, i) for i in range(0, 100, 2)], "exactly its flow, in order"
    time.sleep(0.1)
    assert drain_udp(others) == list(range(1, 100, 2)), "the rest reached the stack"
    assert drain_udp(mine) == [], "what the socket took never reached the stack"


def test_rules_change_under_traffic_without_loss_or_duplicates(hosts: LinkedHosts) -> None:
    """A stream alternating between ports 9999 and 9998; half way the socket's rule
    moves from one port to the other. Every datagram arrives exactly once: at the
    socket while its port is the rule's, else at the stack."""
    net = hosts
    listeners = {p: udp_listener(net, p) for p in (9999, 9998)}
    count = 4000
    stream = [(9999 - (i % 2), i) for i in range(count)]
    with on_b(net, match="udp dst port 9999") as sock:
        sender = threading.Thread(target=send_udp, args=(net, stream, 0.0002))
        sender.start()
        taken: list[tuple[int, int]] = []
        switched_at = None
        while sender.is_alive() or switched_at is None:
            with sock.recv(64, timeout=0.05) as batch:
                taken.extend(udp_of(f) for f in batch.to_list())
            if switched_at is None and len(taken) > count // 8:
                sock.set_match("udp dst port 9998")
                switched_at = len(taken)
        sender.join()
        taken.extend(udp_of(f) for f in take_all(sock))
        assert sock.match == "udp and dst port 9998"
    time.sleep(0.1)
    stack = {p: drain_udp(s) for p, s in listeners.items()}
    seqs = sorted([s for _, s in taken] + stack[9999] + stack[9998])
    assert seqs == list(range(count)), "every datagram exactly once"
    ports = [p for p, _ in taken]
    first = ports.index(9998)
    assert set(ports[:first]) == {9999} and set(ports[first:]) == {9998}, (
        "the socket's flow moved at once from one port to the other"
    )
    assert switched_at is not None and 0 < first


_HOLDER = """
import sys, afxdp_rs
sock = afxdp_rs.XskSocket(sys.argv[1], 0, match="icmp")
print("open", flush=True)
sys.stdin.read()
"""


def test_one_socket_per_queue_whatever_the_rules() -> None:
    with VethTestbed() as bed:
        other = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, bed.inner],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert other.stdout is not None and other.stdout.readline().strip() == "open"
            with pytest.raises(afxdp_rs.BusyError, match="one AF_XDP socket per queue"):
                afxdp_rs.XskSocket(bed.inner, 0, match="udp port 53")
        finally:
            other.kill()
            other.wait()


def test_vlan_and_several_rules() -> None:
    with VethTestbed() as bed:
        inner = bytes.fromhex(bed.inner_mac.replace(":", ""))
        peer = bytes.fromhex(bed.peer_mac.replace(":", ""))

        def tagged(vid: int, seq: int) -> bytes:
            return inner + peer + struct.pack("!HHHI", 0x8100, vid, 0x88B5, seq) + bytes(46)

        with (
            afxdp_rs.XskSocket(
                bed.inner, 0, mode="native", match="vlan 100 or ether proto 0x88b6"
            ) as sock,
            socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as out,
        ):
            out.bind((bed.peer, 0))
            frames = [
                tagged(100, 1),
                tagged(200, 2),
                bed.frame(3, 64),
                inner + peer + struct.pack("!HI", 0x88B6, 4) + bytes(50),
                tagged(100, 5),
            ]
            for f in frames:
                out.send(f)
            got = take_all(sock)
        assert got == [frames[0], frames[3], frames[4]]


def test_filter_errors_name_the_part() -> None:
    with VethTestbed() as bed:
        with pytest.raises(afxdp_rs.ConfigError, match="`not`"):
            afxdp_rs.XskSocket(bed.inner, 0, match="not tcp")
        with pytest.raises(afxdp_rs.ConfigError, match="70000"):
            afxdp_rs.XskSocket(bed.inner, 0, match="port 70000")
        with pytest.raises(afxdp_rs.ConfigError, match="can never match"):
            afxdp_rs.XskSocket(bed.inner, 0, match="ip and ip6")
        with afxdp_rs.XskSocket(bed.inner, 0) as sock:
            assert sock.match is None
            with pytest.raises(afxdp_rs.ConfigError, match="1.2.3"):
                sock.set_match("host 1.2.3")
            assert sock.match is None, "a bad filter changes nothing"
