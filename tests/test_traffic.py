"""Real packets through the real kernel: AF_XDP receive and send on a veth pair, in
native and in skb XDP mode, every byte checked."""

from __future__ import annotations

import socket
import struct
import threading
from typing import Any

import pytest

import afxdp_rs
from afxdp_rs.testbed import ETH_P_AFXDP_TEST, VethTestbed, packet_statistics
from afxdp_rs.types import XdpMode

pytestmark = pytest.mark.kernel

COUNT = 10_000
CHUNK = 500  # below the ring sizes, so a chunk always fits in flight
MODES = ["native", "skb"]


def size_of(seq: int) -> int:
    """Packet sizes from 60 to 1514 bytes, varying with the sequence number."""
    return 60 + (seq * 7) % 1455


def seq_of(data: bytes) -> int | None:
    """The sequence number of a test frame, None for any other traffic."""
    if len(data) < 18 or struct.unpack_from("!H", data, 12)[0] != ETH_P_AFXDP_TEST:
        return None
    return int(struct.unpack_from("!I", data, 14)[0])


@pytest.mark.parametrize("mode", MODES)
def test_receive_10k_byte_exact(bed: VethTestbed, mode: XdpMode) -> None:
    sender = bed.packet_socket(bed.peer)
    received: dict[int, bytes] = {}
    duplicates = 0
    other = 0
    with afxdp_rs.XskSocket(bed.inner, 0, mode=mode, bind="copy") as sock:
        assert sock.attach_mode == mode
        assert bed.xdp_state(bed.inner)[0] == mode
        assert sock.zerocopy is False  # veth has no zero-copy support
        for start in range(0, COUNT, CHUNK):
            for seq in range(start, start + CHUNK):
                sender.send(bed.frame(seq, size_of(seq)))
            got = 0
            while got < CHUNK:
                with sock.recv(128, timeout=2.0) as batch:
                    assert len(batch) > 0, f"timed out with {got}/{CHUNK} of chunk {start}"
                    for frame in batch:
                        data = bytes(frame)
                        found = seq_of(data)
                        if found is None:
                            other += 1
                            continue
                        if found in received:
                            duplicates += 1
                        received[found] = data
                        got += 1
        stats = sock.statistics()
    sender.close()

    assert duplicates == 0
    assert sorted(received) == list(range(COUNT)), "every packet arrives exactly once"
    for seq, data in received.items():
        assert data == bed.frame(seq, size_of(seq)), f"packet {seq} differs"
    assert stats["rx_packets"] == COUNT + other
    assert stats["rx_bytes"] >= sum(size_of(s) for s in range(COUNT))
    for counter in ("rx_dropped", "rx_invalid_descs", "rx_ring_full"):
        assert stats[counter] == 0, (counter, stats)
    # Every frame is back in the socket's hands: on the fill ring or in the pool.
    assert stats["tx_outstanding"] == 0


@pytest.mark.parametrize("mode", MODES)
def test_send_10k_in_order_byte_exact(bed: VethTestbed, mode: XdpMode) -> None:
    sink = bed.packet_socket(bed.peer)
    sink.settimeout(2.0)
    packet_statistics(sink)  # reset the counters
    before = bed.link_stats(bed.peer).get("rx_packets", 0)
    arrived: list[bytes] = []
    with afxdp_rs.XskSocket(bed.inner, 0, mode=mode) as sock:
        assert sock.attach_mode == mode
        for start in range(0, COUNT, CHUNK):
            packets = [
                bed.frame(s, size_of(s), to_inner=False) for s in range(start, start + CHUNK)
            ]
            assert sock.send(packets, timeout=5.0) == CHUNK
            assert sock.flush(timeout=5.0)
            while len(arrived) < start + CHUNK:
                data, addr = sink.recvfrom(4096)
                if addr[2] != socket.PACKET_OUTGOING and seq_of(data) is not None:
                    arrived.append(data)
        stats = sock.statistics()
    _, drops = packet_statistics(sink)
    sink.close()

    assert drops == 0
    assert [seq_of(d) for d in arrived] == list(range(COUNT)), "in order, none lost"
    for seq, data in enumerate(arrived):
        assert data == bed.frame(seq, size_of(seq), to_inner=False), f"packet {seq} differs"
    assert stats["tx_packets"] == COUNT
    assert stats["tx_completed"] == COUNT
    assert stats["tx_bytes"] == sum(size_of(s) for s in range(COUNT))
    assert stats["tx_invalid_descs"] == 0
    assert stats["tx_outstanding"] == 0
    assert bed.link_stats(bed.peer)["rx_packets"] - before >= COUNT


def test_program_detached_when_socket_closes(bed: VethTestbed) -> None:
    sock = afxdp_rs.XskSocket(bed.inner, 0)
    assert bed.xdp_state(bed.inner)[1] != 0
    sock.close()
    assert bed.xdp_state(bed.inner) == ("none", 0)
    sock.close()  # closing twice is fine


def test_sockets_share_one_program_and_reopen(bed: VethTestbed) -> None:
    for _ in range(3):
        with afxdp_rs.XskSocket(bed.inner, 0, mode="skb") as sock:
            state = bed.xdp_state(bed.inner)
            assert state[0] == "skb"
            assert sock.attach_mode == "skb"
        assert bed.xdp_state(bed.inner) == ("none", 0)


def test_blocking_recv_releases_the_gil(bed: VethTestbed) -> None:
    """A thread blocked in recv() lets the main thread run and send the packet."""
    sender = bed.packet_socket(bed.peer)
    result: list[int] = []
    with afxdp_rs.XskSocket(bed.inner, 0) as sock:
        started = threading.Event()

        def wait() -> None:
            started.set()
            with sock.recv(16, timeout=5.0) as batch:
                result.extend(seq_of(bytes(f)) or -1 for f in batch)

        t = threading.Thread(target=wait)
        t.start()
        started.wait()
        # The main thread needs the GIL to build and send this packet.
        sender.send(bed.frame(424242, 64))
        t.join(timeout=10)
        assert not t.is_alive()
    sender.close()
    assert 424242 in result


def test_recv_timeout_returns_empty_batch(bed: VethTestbed) -> None:
    with afxdp_rs.XskSocket(bed.inner, 0) as sock:
        batch = sock.recv(8, timeout=0.05)
        assert len(batch) == 0
        batch.release()
        assert sock.wait_readable(timeout=0.0) is False


def test_send_only_socket_on_the_peer_needs_no_program(bed: VethTestbed) -> None:
    """A tx-only socket (rx_size=0) loads no program; its packets reach the inner end."""
    with afxdp_rs.XskSocket(bed.inner, 0) as rx, afxdp_rs.XskSocket(bed.peer, 0, rx_size=0) as tx:
        assert tx.attach_mode is None
        assert bed.xdp_state(bed.peer) == ("none", 0)
        frames = [bed.frame(s, 64) for s in range(100)]
        assert tx.send(frames, timeout=2.0) == 100
        assert tx.flush(timeout=2.0)
        got: list[bytes] = []
        while len(got) < 100:
            with rx.recv(64, timeout=2.0) as batch:
                assert len(batch) > 0
                got.extend(d for d in batch.to_list() if seq_of(d) is not None)
        assert got == frames


@pytest.mark.parametrize(
    "options",
    [
        {"need_wakeup": False},
        {"frame_size": 2048, "headroom": 256},
        {"frame_count": 64, "fill_size": 32, "rx_size": 32, "tx_size": 32, "comp_size": 32},
    ],
    ids=["no-need-wakeup", "2k-frames-headroom", "tiny-rings"],
)
def test_options_round_trip(bed: VethTestbed, options: dict[str, Any]) -> None:
    """1,000 packets each way with other socket options, in chunks the rings can hold."""
    sender = bed.packet_socket(bed.peer)
    sender.settimeout(2.0)
    with afxdp_rs.XskSocket(bed.inner, 0, **options) as sock:
        chunk = min(CHUNK, options.get("rx_size", CHUNK) // 2)
        received: list[bytes] = []
        for start in range(0, 1000, chunk):
            for seq in range(start, min(start + chunk, 1000)):
                sender.send(bed.frame(seq, size_of(seq)))
            while len(received) < min(start + chunk, 1000):
                with sock.recv(64, timeout=2.0) as batch:
                    assert len(batch) > 0
                    received.extend(d for d in batch.to_list() if seq_of(d) is not None)
        assert received == [bed.frame(s, size_of(s)) for s in range(1000)]

        frames = [bed.frame(s, size_of(s), to_inner=False) for s in range(1000)]
        assert sock.send(frames, timeout=5.0) == 1000
        assert sock.flush(timeout=5.0)
        arrived: list[bytes] = []
        while len(arrived) < 1000:
            data, addr = sender.recvfrom(4096)
            if addr[2] != socket.PACKET_OUTGOING and seq_of(data) is not None:
                arrived.append(data)
        assert arrived == frames
        stats = sock.statistics()
        assert stats["rx_dropped"] == stats["rx_ring_full"] == stats["tx_invalid_descs"] == 0
        if not options.get("need_wakeup", True):
            # Without need_wakeup every send batch costs a system call.
            assert stats["tx_wakeups"] >= 1000 // 32
    sender.close()


def test_selectors_and_timeouts(bed: VethTestbed) -> None:
    """The blocking API works with selectors through fileno(), and never waits past
    its timeout."""
    import selectors

    with afxdp_rs.XskSocket(bed.inner, 0) as sock, selectors.DefaultSelector() as sel:
        sel.register(sock.fileno(), selectors.EVENT_READ)
        assert sel.select(timeout=0.05) == [], "nothing to read yet"
        with bed.packet_socket(bed.peer) as peer:
            peer.send(bed.frame(7, 64))
        events = sel.select(timeout=2.0)
        assert [key.fd for key, _ in events] == [sock.fileno()]
        with sock.recv(8, timeout=0) as batch:
            assert [seq_of(d) for d in batch.to_list()] == [7]
        assert sock.wait_readable(timeout=0.05) is False
        assert len(sock.recv(8, timeout=0.05)) == 0
        assert sock.flush(timeout=0.05) is True
