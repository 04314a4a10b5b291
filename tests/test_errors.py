"""Bad input and misuse: each raises a specific exception whose message names the value
and says what to do. Frame views never read a frame that went back to the kernel."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import kernel

import afxdp_rs
from afxdp_rs.testbed import VethTestbed

pytestmark = pytest.mark.kernel


def test_unknown_interface(bed: VethTestbed) -> None:
    with pytest.raises(afxdp_rs.InterfaceNotFoundError, match="'nosuchif0'|\"nosuchif0\""):
        afxdp_rs.XskSocket("nosuchif0", 0)
    with pytest.raises(LookupError):
        afxdp_rs.XskSocket("", 0)


def test_queue_the_interface_does_not_have(bed: VethTestbed) -> None:
    with pytest.raises(afxdp_rs.QueueError, match=r"queue 5 does not exist.*has 1 queue") as e:
        afxdp_rs.XskSocket(bed.inner, 5)
    assert e.value.errno == 22  # EINVAL
    with pytest.raises(afxdp_rs.QueueError, match=r"queue=-1"):
        afxdp_rs.XskSocket(bed.inner, -1)
    assert bed.xdp_state(bed.inner) == ("none", 0), "nothing left attached after the error"


@pytest.mark.parametrize("name", ["fill_size", "comp_size", "rx_size", "tx_size"])
def test_ring_size_not_power_of_two(bed: VethTestbed, name: str) -> None:
    with pytest.raises(afxdp_rs.ConfigError, match=rf"{name}=1000 .*power of two.*1024"):
        kwargs: dict[str, Any] = {name: 1000}
        afxdp_rs.XskSocket(bed.inner, 0, **kwargs)


@pytest.mark.parametrize("size", [0, 1000, 3000, 8192, -2048])
def test_frame_size_not_allowed(bed: VethTestbed, size: int) -> None:
    with pytest.raises(afxdp_rs.ConfigError, match=rf"frame_size={size}\b.*2048 or 4096"):
        afxdp_rs.XskSocket(bed.inner, 0, frame_size=size)


def test_other_bad_settings(bed: VethTestbed) -> None:
    with pytest.raises(afxdp_rs.ConfigError, match="frame_count=-1"):
        afxdp_rs.XskSocket(bed.inner, 0, frame_count=-1)
    with pytest.raises(afxdp_rs.ConfigError, match="frame_count=0"):
        afxdp_rs.XskSocket(bed.inner, 0, frame_count=0)
    with pytest.raises(afxdp_rs.ConfigError, match="headroom=4000"):
        afxdp_rs.XskSocket(bed.inner, 0, headroom=4000)
    with pytest.raises(afxdp_rs.ConfigError, match=r"mode=\"turbo\""):
        afxdp_rs.XskSocket(bed.inner, 0, mode="turbo")  # type: ignore[arg-type]
    with pytest.raises(afxdp_rs.ConfigError, match=r"bind=\"fast\""):
        afxdp_rs.XskSocket(bed.inner, 0, bind="fast")  # type: ignore[arg-type]
    with pytest.raises(afxdp_rs.ConfigError, match="rx_size=0 and tx_size=0"):
        afxdp_rs.XskSocket(bed.inner, 0, rx_size=0, tx_size=0)


def test_zero_copy_on_veth_says_so(bed: VethTestbed) -> None:
    with pytest.raises(afxdp_rs.ConfigError, match='cannot do zero-copy.*bind="auto"'):
        afxdp_rs.XskSocket(bed.inner, 0, bind="zerocopy")
    # The default falls back to copy mode and reports it.
    with afxdp_rs.XskSocket(bed.inner, 0) as sock:
        assert sock.zerocopy is False


def test_packet_sizes(bed: VethTestbed) -> None:
    with afxdp_rs.XskSocket(bed.inner, 0) as sock:
        assert sock.max_packet == 1500 + 18
        with pytest.raises(afxdp_rs.PacketSizeError, match=r"packet 1 is 2000 bytes.*1518"):
            sock.send([b"\x00" * 64, b"\x00" * 2000])
        with pytest.raises(afxdp_rs.PacketSizeError, match=r"packet 0 is 0 bytes"):
            sock.send([b""])
        with pytest.raises(TypeError, match="packet 0 is a int"):
            sock.send([5])  # type: ignore[list-item]
        stats = sock.statistics()
        assert stats["tx_packets"] == 0, "a rejected batch sends nothing"
    # With a jumbo MTU and one frame per packet, the frame is the limit; with
    # multi-buffer (the default where the kernel has it), the MTU is.
    bed.set_mtu(bed.inner, 4000)
    try:
        with afxdp_rs.XskSocket(bed.inner, 0, frame_size=2048, multi_buffer=False) as sock:
            assert sock.max_packet == 2048
            with pytest.raises(
                afxdp_rs.PacketSizeError, match=r"2049 bytes.*one frame of 2048.*use multi_buffer"
            ):
                sock.send([b"\x00" * 2049])
        with afxdp_rs.XskSocket(bed.inner, 0, frame_size=2048) as sock:
            if kernel() < (6, 6):
                # No multi-buffer AF_XDP before 6.6: one frame per packet, and the
                # socket says what that costs on this MTU.
                assert not sock.multi_buffer and sock.max_packet == 2048
                said = [w for w in sock.warnings if "MTU" in w and "6.6" in w]
                assert said and bed.inner in said[0], sock.warnings
                return
            assert sock.multi_buffer
            assert sock.max_packet == 4000 + 18
            with pytest.raises(afxdp_rs.PacketSizeError, match=r"4019 bytes.*MTU\+18=4018"):
                sock.send([b"\x00" * 4019])
    finally:
        bed.set_mtu(bed.inner, bed.mtu)


def test_huge_batch_request_is_clamped(bed: VethTestbed) -> None:
    with afxdp_rs.XskSocket(bed.inner, 0, rx_size=64) as sock:
        with sock.recv(10**9, timeout=0) as batch:
            assert len(batch) == 0
        with pytest.raises(afxdp_rs.ConfigError, match="max=1000000000000"):
            sock.recv(10**12)


def test_mutable_buffers_are_sent_as_they_were(bed: VethTestbed) -> None:
    with afxdp_rs.XskSocket(bed.inner, 0) as sock, bed.packet_socket(bed.peer) as peer:
        peer.settimeout(2.0)
        frames = [bed.frame(i, 100, to_inner=False) for i in range(3)]
        packets: list[bytes | bytearray | memoryview] = [
            bytearray(frames[0]),
            memoryview(bytearray(frames[1])),
            frames[2],
        ]
        assert sock.send(packets, timeout=1.0) == 3
        assert sock.flush(timeout=1.0)
        got: list[bytes] = []
        while len(got) < 3:
            data, addr = peer.recvfrom(2048)
            if addr[2] != 4:  # PACKET_OUTGOING
                got.append(data)
        assert got == frames


def test_removed_interface_is_reported(bed: VethTestbed) -> None:
    """A socket whose interface is deleted raises on the next wait, never hangs."""
    bed.add_veth("gone0", "gone1")
    sock = afxdp_rs.XskSocket("gone0", 0)
    bed.delete_link("gone0")
    with pytest.raises(afxdp_rs.XdpOSError, match="stopped working"):
        sock.recv(8, timeout=2.0)
    with pytest.raises(afxdp_rs.XdpOSError, match="stopped working"):
        sock.wait_readable(timeout=2.0)
    sock.close()


def test_wrong_direction(bed: VethTestbed) -> None:
    with afxdp_rs.XskSocket(bed.inner, 0, tx_size=0) as rx_only:
        with pytest.raises(afxdp_rs.ConfigError, match="tx_size=0 .*cannot send"):
            rx_only.send([bed.frame(1, 64)])
    with afxdp_rs.XskSocket(bed.peer, 0, rx_size=0) as tx_only:
        with pytest.raises(afxdp_rs.ConfigError, match="rx_size=0 .*cannot receive"):
            tx_only.recv(8, timeout=0)


def test_use_after_close(bed: VethTestbed) -> None:
    sock = afxdp_rs.XskSocket(bed.inner, 0)
    sock.close()
    assert sock.closed
    for call in (
        lambda: sock.recv(1, timeout=0),
        lambda: sock.send([b"\x00" * 64]),
        lambda: sock.flush(timeout=0),
        sock.statistics,
        sock.fileno,
    ):
        with pytest.raises(afxdp_rs.SocketClosedError, match="closed"):
            call()


def test_bad_timeouts_and_max(bed: VethTestbed) -> None:
    with afxdp_rs.XskSocket(bed.inner, 0) as sock:
        with pytest.raises(afxdp_rs.ConfigError, match="timeout=-1"):
            sock.recv(1, timeout=-1)
        with pytest.raises(afxdp_rs.ConfigError, match="timeout=NaN"):
            sock.flush(timeout=float("nan"))
        with pytest.raises(afxdp_rs.ConfigError, match="max=0"):
            sock.recv(0)


def _one_batch(bed: VethTestbed, sock: afxdp_rs.XskSocket, n: int) -> afxdp_rs.RxBatch:
    with bed.packet_socket(bed.peer) as sender:
        for seq in range(n):
            sender.send(bed.frame(seq, 100))
    batch = sock.recv(n, timeout=2.0)
    assert len(batch) == n
    return batch


def test_views_never_outlive_their_batch(bed: VethTestbed) -> None:
    with afxdp_rs.XskSocket(bed.inner, 0) as sock:
        batch = _one_batch(bed, sock, 4)
        frame = batch[0]
        last = batch[-1]
        assert bytes(last) == bed.frame(3, 100)
        view = memoryview(frame)
        assert view.nbytes == 100 and view.format == "B" and not view.readonly
        assert bytes(view) == bed.frame(0, 100)
        with pytest.raises(afxdp_rs.BatchInUseError, match="1 memoryview"):
            batch.release()
        assert not batch.released
        view.release()
        batch.release()
        assert batch.released
        batch.release()  # releasing twice is fine
        with pytest.raises(afxdp_rs.BatchReleasedError):
            bytes(frame)
        with pytest.raises(afxdp_rs.BatchReleasedError):
            memoryview(frame)
        with pytest.raises(afxdp_rs.BatchReleasedError):
            len(frame)
        with pytest.raises(afxdp_rs.BatchReleasedError):
            batch[1]
        with pytest.raises(afxdp_rs.BatchReleasedError):
            batch.to_list()
        with pytest.raises(IndexError, match="frame index 4 out of range"):
            batch[4]


def test_writable_views_and_context_manager(bed: VethTestbed) -> None:
    with afxdp_rs.XskSocket(bed.inner, 0) as sock:
        with _one_batch(bed, sock, 2) as batch:
            view = memoryview(batch[1])
            view[0:6] = b"\xaa" * 6  # e.g. rewrite a MAC in place before forwarding
            assert bytes(batch[1])[:6] == b"\xaa" * 6
            del view
        assert batch.released
        # Frames went back to the kernel and are reused for new packets.
        again = _one_batch(bed, sock, 2)
        assert bytes(again[1]) == bed.frame(1, 100)
        again.release()


def test_batch_survives_socket_close(bed: VethTestbed) -> None:
    sock = afxdp_rs.XskSocket(bed.inner, 0)
    batch = _one_batch(bed, sock, 1)
    sock.close()
    # The UMEM stays mapped while the batch holds it.
    assert bytes(batch[0]) == bed.frame(0, 100)
    batch.release()


_FOREIGN = """
#include <linux/bpf.h>
#define SEC(name) __attribute__((section(name), used))
SEC("xdp") int someone_else(struct xdp_md *ctx) { return XDP_PASS; }
char LICENSE[] SEC("license") = "GPL";
"""


def test_foreign_program_is_never_replaced(bed: VethTestbed, tmp_path: Path) -> None:
    """Someone else's XDP program blocks us with a message whose command removes it."""
    src, obj = tmp_path / "foreign.bpf.c", tmp_path / "foreign.bpf.o"
    src.write_text(_FOREIGN)
    arch = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu"}[os.uname().machine]
    subprocess.run(
        [
            "clang",
            "-O2",
            "-target",
            "bpf",
            "-idirafter",
            f"/usr/include/{arch}",
            "-c",
            str(src),
            "-o",
            str(obj),
        ],
        check=True,
    )
    subprocess.run(
        ["ip", "link", "set", "dev", bed.inner, "xdpgeneric", "obj", str(obj), "sec", "xdp"],
        check=True,
    )
    mode, prog_id = bed.xdp_state(bed.inner)
    assert mode == "skb" and prog_id != 0
    with pytest.raises(afxdp_rs.ProgramAttachedError) as e:
        afxdp_rs.XskSocket(bed.inner, 0)
    message = str(e.value)
    assert f'"someone_else" attached (id {prog_id}, skb mode) that is not afxdp_rs' in message
    assert "never replaced" in message
    assert bed.xdp_state(bed.inner) == (mode, prog_id), "the other program is untouched"
    command = message.split("`")[1]
    assert command == f"ip link set dev {bed.inner} xdp off"
    subprocess.run([*command.split()[:-2], "xdpgeneric", "off"], check=True)
    assert bed.xdp_state(bed.inner) == ("none", 0)
    with afxdp_rs.XskSocket(bed.inner, 0) as sock:
        assert sock.attach_mode == "native"


def test_a_failing_iterator_says_how_many_were_queued(bed: VethTestbed) -> None:
    def packets() -> Iterator[bytes]:
        for i in range(300):
            yield bed.frame(i, 64)
        raise RuntimeError("the packet source failed")

    def then_short() -> Iterator[bytes]:
        yield from (bed.frame(i, 64) for i in range(260))
        yield b"short"

    class WithBytes:
        def __bytes__(self) -> bytes:
            return bed.frame(7, 70)

    with afxdp_rs.XskSocket(bed.inner, 0) as sock:
        before = bed.link_stats(bed.peer)["rx_packets"]
        with pytest.raises(RuntimeError, match="the packet source failed") as failed:
            sock.send(packets(), timeout=5.0)
        assert vars(failed.value)["queued"] == 300
        assert "300 packet(s) of this send were queued" in "".join(failed.value.__notes__)
        assert sock.flush(timeout=2.0)
        assert bed.link_stats(bed.peer)["rx_packets"] - before == 300, "all 300 left"
        with pytest.raises(afxdp_rs.PacketSizeError, match="packet 260 is 5 bytes") as short:
            sock.send(then_short(), timeout=5.0)
        assert vars(short.value)["queued"] == 256  # the first chunk went
        with pytest.raises(afxdp_rs.PacketSizeError) as whole:
            sock.send([bed.frame(0, 64), b"x"])
        assert vars(whole.value)["queued"] == 0, "a list is checked whole first"
        assert sock.send([WithBytes()], timeout=1.0) == 1
        assert sock.send(iter([WithBytes()] * 3), timeout=1.0) == 3
