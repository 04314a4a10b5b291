"""Jumbo frames (AF_XDP multi-buffer): 9,000-byte frames byte-exact both ways in
native and skb mode, mixed with small ones in order, their frames accounted for;
what happens without multi-buffer; TCP with a 9,000-byte MTU through the forwarder;
timestamps."""

from __future__ import annotations

import hashlib
import time
import warnings
from collections.abc import Iterator

import pytest
from test_real_traffic import DATA, DATA_SHA256, ping, tcp_transfer

import afxdp_rs
from afxdp_rs.testbed import LinkedHosts, VethTestbed
from afxdp_rs.types import XdpMode

pytestmark = pytest.mark.kernel

MTU = 9000
BIGGEST = MTU + 14  # Ethernet header, no VLAN tag


@pytest.fixture(params=["native", "skb"])
def jumbo(request: pytest.FixtureRequest) -> Iterator[tuple[VethTestbed, XdpMode]]:
    with VethTestbed(mtu=MTU) as bed:
        yield bed, request.param


def receive(sock: afxdp_rs.XskSocket, n: int) -> list[bytes]:
    got: list[bytes] = []
    while len(got) < n:
        with sock.recv(64, timeout=5.0) as batch:
            assert len(batch), f"only {len(got)} of {n} packets arrived"
            got.extend(bytes(f) for f in batch)
    return got


def accounted(sock: afxdp_rs.XskSocket) -> None:
    st = sock.statistics()
    parts = st["free_frames"] + st["rx_in_kernel"] + st["rx_held"] + st["tx_outstanding"]
    assert parts == st["frame_count"], st


def test_jumbo_frames_byte_exact_both_ways(jumbo: tuple[VethTestbed, XdpMode]) -> None:
    bed, mode = jumbo
    with (
        afxdp_rs.XskSocket(bed.inner, 0, mode=mode) as a,
        afxdp_rs.XskSocket(bed.peer, 0, mode=mode) as b,
    ):
        assert a.attach_mode == mode, "a frags program attaches with a 9,000-byte MTU"
        assert a.multi_buffer and b.multi_buffer
        assert a.max_packet == MTU + 18
        to_a = [bed.frame(i, size) for i, size in enumerate([BIGGEST, 9000, 8014] * 10)]
        to_b = [bed.frame(i, BIGGEST - i, to_inner=False) for i in range(30)]
        assert b.send(to_a, timeout=5.0) == 30 and b.flush(timeout=5.0)
        assert receive(a, 30) == to_a
        assert a.send(to_b, timeout=5.0) == 30 and a.flush(timeout=5.0)
        assert receive(b, 30) == to_b
        for sock, got, sent in ((a, to_a, to_b), (b, to_b, to_a)):
            st = sock.statistics()
            assert st["rx_packets"] == 30 and st["rx_bytes"] == sum(map(len, got))
            assert st["tx_packets"] == 30 and st["tx_bytes"] == sum(map(len, sent))
            assert st["tx_completed"] == 30, "packets, whatever frames they took"
            assert st["rx_dropped"] == st["tx_invalid_descs"] == 0
            accounted(sock)


def test_mixed_stream_in_order_and_segments(jumbo: tuple[VethTestbed, XdpMode]) -> None:
    bed, mode = jumbo
    sizes = [60, BIGGEST, 1514, 4096, 64, 9000, 3841, 128]
    frames = [bed.frame(i, sizes[i % len(sizes)]) for i in range(400)]
    with (
        afxdp_rs.XskSocket(bed.inner, 0, mode=mode) as rx,
        afxdp_rs.XskSocket(bed.peer, 0, rx_size=0) as tx,
    ):
        sent = 0
        got: list[bytes] = []
        while len(got) < len(frames):
            if sent < len(frames):
                sent += tx.send(frames[sent : sent + 32], timeout=5.0)
            with rx.recv(64, timeout=0.5) as batch:
                for f in batch:
                    views = f.segments()
                    assert f.nsegments == len(views) and len(f) == sum(map(len, views))
                    assert b"".join(bytes(v) for v in views) == bytes(f)
                    if f.nsegments > 1:
                        with pytest.raises(BufferError, match="spans .* frames"):
                            memoryview(f)
                        with pytest.raises(afxdp_rs.BatchInUseError):
                            batch.release()
                    for v in views:
                        v.release()
                    got.append(bytes(f))
                if len(batch):
                    data = bytearray(sum(batch.lengths()))
                    lengths = __import__("array").array("I", [0] * len(batch))
                    assert batch.copy_into(data, lengths) == len(data)
                    assert bytes(data) == b"".join(batch.to_list())
        assert got == frames, "every packet, in order, byte for byte"
        st = rx.statistics()
        assert st["rx_packets"] == 400 and st["rx_dropped"] == 0
        accounted(rx)


def test_without_multi_buffer_a_jumbo_frame_is_dropped_and_counted() -> None:
    with VethTestbed(mtu=MTU) as bed:
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            sock = afxdp_rs.XskSocket(bed.inner, 0, mode="skb", multi_buffer=False)
        with sock, bed.packet_socket(bed.peer) as peer:
            assert not sock.multi_buffer
            assert any(
                "multi_buffer" in str(w.message) and "MTU" in str(w.message) for w in said
            ), [str(w.message) for w in said]
            peer.send(bed.frame(0, BIGGEST))
            peer.send(bed.frame(1, 1000))
            assert receive(sock, 1) == [bed.frame(1, 1000)]
            assert sock.statistics()["rx_dropped"] == 1, "the jumbo frame is counted"
            with pytest.raises(afxdp_rs.PacketSizeError, match="use multi_buffer"):
                sock.send([bed.frame(2, BIGGEST)])
        with pytest.raises(afxdp_rs.ConfigError, match="multi_buffer='yes'"):
            afxdp_rs.XskSocket(bed.inner, 0, multi_buffer="yes")  # type: ignore[arg-type]


def test_jumbo_tcp_through_the_forwarder() -> None:
    """Two stacks with a 9,000-byte MTU and default offloads: 9,000-byte TCP segments,
    each over three frames, their partial checksums completed across the frames."""
    with LinkedHosts(mtu=MTU) as net, afxdp_rs.Forwarder(net.a_if, net.b_if) as fwd:
        ping(net, "a", "b")
        assert tcp_transfer(net, "a", "b", DATA) == DATA_SHA256
        data = DATA[: 16 << 20]
        assert tcp_transfer(net, "b", "a", data, version=6) == hashlib.sha256(data).hexdigest()
        stats = fwd.statistics()
        assert net.snmp("b", "Tcp")["InCsumErrors"] == 0
    a_to_b = next(d for d in stats if d["from"] == net.a_if)
    assert a_to_b["bytes"] / a_to_b["packets"] > 5000, "jumbo segments went through"
    assert a_to_b["checksums"] > 1000


def test_timestamps_are_when_each_packet_arrived(jumbo: tuple[VethTestbed, XdpMode]) -> None:
    bed, mode = jumbo
    with (
        afxdp_rs.XskSocket(bed.inner, 0, mode=mode, timestamps=True) as sock,
        bed.packet_socket(bed.peer) as peer,
    ):
        sent = []
        for i in range(6):
            sent.append(time.time())
            peer.send(bed.frame(i, BIGGEST if i % 2 else 64))
            time.sleep(0.02)
        stamps: list[float] = []
        while len(stamps) < 6:
            with sock.recv(16, timeout=5.0) as batch:
                assert len(batch)
                batch_stamps = batch.timestamps()
                stamps.extend(f.timestamp or 0.0 for f in batch)
                assert batch_stamps == stamps[-len(batch) :]
        for t_sent, t_got in zip(sent, stamps, strict=True):
            assert t_sent - 0.005 <= t_got <= t_sent + 0.015, (sent, stamps)
        assert stamps == sorted(stamps)
    with afxdp_rs.XskSocket(bed.inner, 0) as plain, bed.packet_socket(bed.peer) as peer:
        peer.send(bed.frame(0, 64))
        with plain.recv(1, timeout=5.0) as batch:
            assert batch[0].timestamp is None


def test_multi_buffer_by_default_only_where_a_packet_can_be_larger_than_a_frame() -> None:
    """Asking the kernel for multi-buffer costs zero-copy on drivers that cannot combine
    the two: the default asks only where it is needed. Native mode delivers packets no
    larger than the MTU; skb mode can deliver GRO superpackets; a frame holds 3,840
    bytes of packet by default."""
    with VethTestbed() as bed:
        with afxdp_rs.XskSocket(bed.inner, 0, mode="native") as sock:
            assert sock.multi_buffer is False
            assert sock.max_packet == bed.mtu + 18
        with afxdp_rs.XskSocket(bed.inner, 0, mode="skb") as sock:
            assert sock.multi_buffer is True
        with afxdp_rs.XskSocket(bed.inner, 0, mode="native", multi_buffer=True) as sock:
            assert sock.multi_buffer is True
        bed.set_mtu(bed.inner, 3840 - 18)
        try:
            with afxdp_rs.XskSocket(bed.inner, 0, mode="native") as sock:
                assert sock.multi_buffer is False
            bed.set_mtu(bed.inner, 3840 - 17)
            with afxdp_rs.XskSocket(bed.inner, 0, mode="native") as sock:
                assert sock.multi_buffer is True
        finally:
            bed.set_mtu(bed.inner, bed.mtu)
