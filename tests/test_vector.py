"""The vector API: a batch's packet offsets and lengths as zero-copy arrays, a
read-only view of the UMEM to index with them, one field of every packet in one call;
with numpy, and with nothing but the buffer protocol. The batch's lifetime rules hold
for the UMEM view; iterating a batch makes its frames in one go."""

from __future__ import annotations

import contextlib
import ctypes
import struct
from collections.abc import Iterator

import numpy as np
import pytest
from packets import frame

import afxdp_rs
from afxdp_rs.testbed import VethTestbed

pytestmark = pytest.mark.kernel

DST, SRC = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")


def udp(i: int, size: int = 18) -> bytes:
    payload = bytes([i % 251]) * size
    return frame(DST, SRC, "10.0.0.2", "10.0.0.1", "udp", payload, ports=(1000 + i, 2000 + i % 7))


@contextlib.contextmanager
def sockets(bed: VethTestbed) -> Iterator[tuple[afxdp_rs.XskSocket, afxdp_rs.XskSocket]]:
    """A receiving socket on the inner end, a sending one on the peer."""
    with afxdp_rs.XskSocket(bed.inner, 0) as sock:
        with afxdp_rs.XskSocket(bed.peer, 0, rx_size=0) as gen:
            yield sock, gen


def received(
    sock: afxdp_rs.XskSocket, gen: afxdp_rs.XskSocket, frames: list[bytes]
) -> afxdp_rs.RxBatch:
    assert gen.send(frames, timeout=5.0) == len(frames)
    gen.flush(timeout=5.0)
    batch = sock.recv(len(frames), timeout=5.0, linger=0.05)
    assert len(batch) == len(frames)
    return batch


def test_offsets_lengths_and_umem_give_every_packet_byte_exact(bed: VethTestbed) -> None:
    frames = [udp(i, 18 + i) for i in range(64)]
    with sockets(bed) as (sock, gen):
        with received(sock, gen, frames) as batch:
            offsets = np.frombuffer(memoryview(batch.offsets()), np.uint64)
            lengths = np.frombuffer(memoryview(batch.lengths_array()), np.uint32)
            umem = np.frombuffer(memoryview(batch.umem()), np.uint8)
            assert len(batch.offsets()) == 64 and umem.flags.writeable is False
            assert [int(n) for n in lengths] == [len(f) for f in frames] == batch.lengths()
            assert [int(o) for o in offsets] == [f.addr for f in batch]
            for i, f in enumerate(frames):
                o, n = int(offsets[i]), int(lengths[i])
                assert umem[o : o + n].tobytes() == f
            # The same without numpy: the buffer protocol alone.
            offs = memoryview(batch.offsets())
            assert offs.format == "Q" and offs.readonly and offs.shape == (64,)
            view = memoryview(batch.umem())
            assert bytes(view[offs[5] : offs[5] + len(frames[5])]) == frames[5]
            view.release()
            del umem


def test_field_gathers_one_field_of_every_packet(bed: VethTestbed) -> None:
    frames = [udp(i) for i in range(40)] + [DST + SRC + b"\x88\xb5" + bytes(16)]
    with sockets(bed) as (sock, gen):
        with received(sock, gen, frames) as batch:
            ports = np.frombuffer(memoryview(batch.field(36, 2)), ">u2")
            # The last packet is 30 bytes long: its field is zeros.
            assert ports.tolist() == [2000 + i % 7 for i in range(40)] + [0]
            assert np.bincount(ports[:40] - 2000).tolist() == [6, 6, 6, 6, 6, 5, 5]
            head = batch.field(0, 14)
            assert head[:14] == frames[0][:14] and len(head) == 14 * len(frames)
            # A field that straddles the end of a packet: its bytes, then zeros.
            tail = batch.field(28, 4)[-4:]
            assert tail == frames[-1][28:30] + bytes(2)
            with pytest.raises(afxdp_rs.ConfigError, match="size=0"):
                batch.field(0, 0)
        with pytest.raises(afxdp_rs.BatchReleasedError):
            batch.field(0, 2)


def test_field_reads_across_the_frames_of_a_jumbo_packet() -> None:
    with VethTestbed(ephemeral=True, mtu=9000) as bed:
        big = frame(DST, SRC, "10.0.0.2", "10.0.0.1", "udp", bytes(range(256)) * 35)
        with sockets(bed) as (sock, gen):
            with received(sock, gen, [big, udp(1)]) as batch:
                assert batch[0].nsegments == 3
                for offset in (0, 4090, 4094, 4096, 8190, len(big) - 3):
                    assert batch.field(offset, 6)[:6] == (big[offset : offset + 6] + bytes(6))[:6]


def test_the_umem_view_is_a_view_of_the_batch(bed: VethTestbed) -> None:
    with sockets(bed) as (sock, gen):
        batch = received(sock, gen, [udp(i) for i in range(8)])
        offsets = np.frombuffer(memoryview(batch.offsets()), np.uint64)
        umem = np.frombuffer(memoryview(batch.umem()), np.uint8)
        with pytest.raises(afxdp_rs.BatchInUseError):
            batch.release()
        with pytest.raises((BufferError, TypeError), match="not writable|read-only"):
            ctypes.c_char.from_buffer(batch.umem())
        del umem
        batch.release()
        # The numbers are the batch's own: they outlive it; the UMEM view does not.
        assert len(offsets) == 8
        with pytest.raises(afxdp_rs.BatchReleasedError):
            batch.umem()


def test_iterating_makes_the_frames_at_once(bed: VethTestbed) -> None:
    frames = [udp(i) for i in range(16)]
    with sockets(bed) as (sock, gen):
        batch = received(sock, gen, frames)
        it = iter(batch)
        assert [bytes(f) for f in batch] == frames
        first = next(it)
        batch.release()
        later = next(it)
        for f in (first, later):
            with pytest.raises(afxdp_rs.BatchReleasedError):
                bytes(f)
        with pytest.raises(afxdp_rs.BatchReleasedError):
            iter(batch)


def test_a_port_histogram_with_numpy(bed: VethTestbed) -> None:
    """The example's pattern: many batches, one numpy call each."""
    with sockets(bed) as (sock, gen):
        hist = np.zeros(65536, np.int64)
        for r in range(10):
            with received(sock, gen, [udp(r * 64 + i) for i in range(64)]) as batch:
                counts = np.bincount(np.frombuffer(memoryview(batch.field(36, 2)), ">u2"))
                hist[: len(counts)] += counts
        assert hist.sum() == 640
        expected = np.bincount([2000 + i % 7 for i in range(640)])
        assert (hist[: len(expected)] == expected).all()
        assert struct.unpack("!H", udp(3)[36:38])[0] == 2003
