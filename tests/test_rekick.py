"""A sender never waits forever on a wakeup the kernel did not get: with every tx kick
the kernel asks for skipped on purpose (a lost wakeup), each sending path still gets
all its packets out, byte-exact and in order, through the re-kick of a stalled tx ring,
and counts it in ``tx_rekicks``."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest
from test_traffic import seq_of

import afxdp_rs
from afxdp_rs import tools
from afxdp_rs.aio import AsyncXskSocket
from afxdp_rs.testbed import VethTestbed

pytestmark = pytest.mark.kernel


@pytest.fixture
def lost_wakeups() -> Iterator[None]:
    """Every socket of this process skips the tx kicks the kernel asks for."""
    tools.hide_tx_wakeups(True)
    try:
        yield
    finally:
        tools.hide_tx_wakeups(False)


def arrivals(peer: socket.socket, count: int) -> list[bytes]:
    """The next `count` test frames the peer's AF_PACKET socket receives."""
    got: list[bytes] = []
    while len(got) < count:
        data, addr = peer.recvfrom(4096)
        if addr[2] != socket.PACKET_OUTGOING and seq_of(data) is not None:
            got.append(data)
    return got


def small_socket(bed: VethTestbed) -> afxdp_rs.XskSocket:
    # Few frames: sending 1,000 packets needs completions many times over.
    return afxdp_rs.XskSocket(bed.inner, 0, frame_count=64, tx_size=32, comp_size=32)


def test_blocking_send_and_flush_recover(bed: VethTestbed, lost_wakeups: None) -> None:
    frames = [bed.frame(s, 60 + s % 200, to_inner=False) for s in range(1000)]
    with bed.packet_socket(bed.peer) as peer, small_socket(bed) as sock:
        peer.settimeout(10.0)
        assert sock.send(frames, timeout=30.0) == 1000
        assert sock.flush(timeout=30.0), sock.statistics()
        assert arrivals(peer, 1000) == frames
        st = sock.statistics()
        assert st["tx_completed"] == 1000
        assert st["tx_outstanding"] == st["tx_ring_queued"] == 0
        # No ordinary kick was made: only the re-kicks moved the packets, and they
        # were counted.
        assert st["tx_rekicks"] > 0, st


def test_flush_of_a_single_packet_recovers(bed: VethTestbed, lost_wakeups: None) -> None:
    frame = bed.frame(1, 64, to_inner=False)
    with bed.packet_socket(bed.peer) as peer, small_socket(bed) as sock:
        peer.settimeout(10.0)
        assert sock.send([frame], timeout=5.0) == 1
        # The kernel was never kicked: the descriptor waits on the tx ring...
        assert sock.statistics()["tx_ring_queued"] == 1
        # ...until flush notices that nothing completes and kicks again.
        assert sock.flush(timeout=10.0)
        assert arrivals(peer, 1) == [frame]
        assert sock.statistics()["tx_rekicks"] >= 1


def test_rust_send_loop_recovers(bed: VethTestbed, lost_wakeups: None) -> None:
    with small_socket(bed) as sock:
        r = tools.txonly(sock, bed.frame(0, 64, to_inner=False), 0.3, batch=16)
        st = sock.statistics()
        assert r["packets"] > 0 and st["tx_rekicks"] > 0, (r, st)
        assert st["tx_completed"] == st["tx_packets"], st


def test_asyncio_sender_recovers(bed: VethTestbed, lost_wakeups: None) -> None:
    """In copy mode the kernel also sends from poll(2), which the event loop makes
    while it waits to write: the asyncio sender recovers with or without a re-kick, and
    this shows it does, whatever drives the kernel."""
    frames = [bed.frame(s, 64, to_inner=False) for s in range(500)]

    async def main() -> dict[str, int]:
        async with AsyncXskSocket.open(
            bed.inner, 0, frame_count=64, tx_size=32, comp_size=32
        ) as sock:
            assert await asyncio.wait_for(sock.send(frames), 30.0) == 500
            await asyncio.wait_for(sock.flush(), 30.0)
            return sock.sock.statistics()

    with bed.packet_socket(bed.peer) as peer:
        peer.settimeout(10.0)
        st = asyncio.run(main())
        assert arrivals(peer, 500) == frames
    assert st["tx_completed"] == 500 and st["tx_outstanding"] == 0, st


def test_sequence_check_through_a_forwarding_loop(bed: VethTestbed, lost_wakeups: None) -> None:
    """Both ends miss every wakeup: the sequence-checked sender and the Rust l2fwd loop
    on the peer. Every packet still comes back, in order and intact (both also wait in
    poll(2), which in copy mode makes the kernel send too), and the sender's counters
    say what the kernel completed."""
    with (
        afxdp_rs.XskSocket(bed.peer, 0, frame_count=128, fill_size=64, rx_size=64) as fwd,
        afxdp_rs.XskSocket(bed.inner, 0, frame_count=128, fill_size=64, rx_size=64) as seq,
    ):
        t = threading.Thread(
            target=tools.l2fwd,
            args=(
                fwd,
                600.0,
            ),
            kwargs={"poll": True},
        )
        t.start()
        try:
            r = tools.sequence_check(seq, bed.frame(0, 100, to_inner=False), 2000, window=32)
        finally:
            tools.stop_loop(fwd)
            t.join()
        assert (r["received"], r["missing"], r["out_of_order"], r["corrupted"]) == (
            2000,
            0,
            0,
            0,
        ), (r, seq.statistics(), fwd.statistics())
        assert seq.statistics()["tx_completed"] == 2000
