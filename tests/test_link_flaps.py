"""A link going down and up is a state, not the end of a socket: the blocking API,
asyncio, ``afxdp forward`` and ``afxdp capture`` ride through flaps under traffic;
nothing sent after the link is back is lost, every loss while it was down is counted;
a removed interface still ends things, with its own message."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import eventually, wait_ready
from pyroute2 import IPRoute

import afxdp_rs
from afxdp_rs.aio import AsyncXskSocket
from afxdp_rs.pcap import PcapReader
from afxdp_rs.testbed import ETH_P_AFXDP_TEST, VethTestbed

pytestmark = [pytest.mark.kernel, pytest.mark.bed(veths=[("fwd0", "fwd1")])]

AFXDP = shutil.which("afxdp", path=os.path.dirname(sys.executable)) or "afxdp"


def seq_of(frame: bytes) -> int:
    return int(struct.unpack_from("!I", frame, 14)[0])


class Sender:
    """Sends numbered frames into `bed.inner` from the peer end, one every 0.5 ms, in a
    thread, noting what the kernel accepted and what it refused, by errno."""

    def __init__(self, bed: VethTestbed, first: int = 0) -> None:
        self.bed, self.next = bed, first
        self.accepted: list[int] = []
        self.refused: dict[int, int] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        with self.bed.packet_socket(self.bed.peer) as s:
            while not self.stop.is_set():
                try:
                    s.send(self.bed.frame(self.next, 64))
                    self.accepted.append(self.next)
                except OSError as e:
                    self.refused[e.errno or 0] = self.refused.get(e.errno or 0, 0) + 1
                self.next += 1
                time.sleep(0.0005)

    def __enter__(self) -> Sender:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def burst(bed: VethTestbed, first: int, n: int, *, peer: str | None = None) -> list[bytes]:
    frames = [bed.frame(first + i, 64) for i in range(n)]
    with bed.packet_socket(peer or bed.peer) as s:
        for f in frames:
            s.send(f)
    return frames


def flap(bed: VethTestbed, name: str, down_for: float = 0.2) -> None:
    bed.set_link_state(name, up=False)
    time.sleep(down_for)
    bed.set_link_state(name, up=True)


@pytest.fixture()
def peer_drops(bed: VethTestbed) -> Iterator[dict[str, int]]:
    """The peer's tx_dropped before the test (what veth drops while the inner end is
    down is counted there)."""
    yield {"before": bed.link_stats(bed.peer).get("tx_dropped", 0)}


def drops_while_down_are_counted(bed: VethTestbed) -> bool:
    """Whether this kernel counts a frame sent into a veth whose other end is down in
    the sender's tx_dropped. 6.18 does; 6.1 accepts the frame and drops it without a
    counter anywhere (not the device's, not the qdisc's), so there the frames sent
    while the link was down cannot be accounted for exactly."""
    bed.add_veth("cnt0", "cnt1")
    try:
        bed.set_link_state("cnt1", up=False)

        def lower_down() -> bool:
            with IPRoute() as ipr:
                (link,) = ipr.get_links(ifname="cnt0")
                return bool(link.get_attr("IFLA_OPERSTATE") == "LOWERLAYERDOWN")

        # Once the kernel has seen the carrier go (the state the flap test's frames
        # meet): before that a frame still reaches veth, which counts its drop.
        eventually(lower_down, "cnt0 to see its peer down")
        before = bed.link_stats("cnt0").get("tx_dropped", 0)
        with bed.packet_socket("cnt0") as s:
            for i in range(5):
                s.send(bed.frame(i, 64))
        return bed.link_stats("cnt0").get("tx_dropped", 0) > before
    finally:
        bed.delete_link("cnt0")


def test_blocking_api_rides_through_flaps(bed: VethTestbed, peer_drops: dict[str, int]) -> None:
    counted = drops_while_down_are_counted(bed)
    with afxdp_rs.XskSocket(bed.inner, 0) as sock:
        got: list[bytes] = []
        done = threading.Event()

        def receive() -> None:
            while not done.is_set():
                with sock.recv(64, timeout=0.1) as batch:
                    got.extend(bytes(f) for f in batch)

        rx = threading.Thread(target=receive)
        rx.start()
        try:
            with Sender(bed) as sender:
                for _ in range(3):
                    time.sleep(0.2)
                    bed.set_link_state(bed.inner, up=False)
                    time.sleep(0.2)
                    # While down: nothing comes, the socket says so, sending is refused.
                    assert not sock.link_up
                    with pytest.raises(afxdp_rs.LinkDownError, match="stays usable"):
                        sock.send([bed.frame(0, 64)])
                    bed.set_link_state(bed.inner, up=True)
                    assert sock.link_up
                time.sleep(0.2)
            assert sock.link_up
            # After the link is back: nothing lost, byte for byte.
            last = burst(bed, 1_000_000, 200)
            deadline = time.monotonic() + 10
            while got[-1:] != last[-1:] and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            done.set()
            rx.join()
        st = sock.statistics()
        assert got[-200:] == last
        assert st["link_downs"] == 3 and st["link_down"] == 0
        # Every accepted frame arrived intact, or veth counted it dropped while down.
        seqs = [seq_of(f) for f in got[:-200]]
        assert all(f == bed.frame(seq_of(f), 64) for f in got)
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        dropped = bed.link_stats(bed.peer)["tx_dropped"] - peer_drops["before"]
        lost_in_xsk = st["rx_dropped"] + st["rx_ring_full"]
        # ENOBUFS: the device dropped the frame (and counted it) after taking it.
        counted_refusals = sender.refused.get(errno.ENOBUFS, 0)
        assert set(seqs) <= set(sender.accepted)
        accounted = (len(seqs), dropped, lost_in_xsk, len(sender.accepted), sender.refused)
        if counted:
            assert len(seqs) + dropped + lost_in_xsk == len(sender.accepted) + counted_refusals, (
                accounted
            )
            assert dropped > 0  # the flaps happened under traffic
        else:
            # Nothing arrived that was not accepted, nothing twice; what is missing the
            # kernel dropped without a count (the flaps happened under traffic).
            assert len(seqs) + dropped + lost_in_xsk <= len(sender.accepted) + counted_refusals, (
                accounted
            )
            assert len(seqs) < len(sender.accepted), accounted
        # The socket sends again.
        assert sock.send([bed.frame(7, 64)], timeout=1.0) == 1 and sock.flush(timeout=2.0)


def test_recv_can_raise_when_asked(bed: VethTestbed) -> None:
    with afxdp_rs.XskSocket(bed.inner, 0, link_down="raise") as sock:
        bed.set_link_state(bed.inner, up=False)
        try:
            with pytest.raises(afxdp_rs.LinkDownError, match="stays usable"):
                sock.recv(1, timeout=1.0)
        finally:
            bed.set_link_state(bed.inner, up=True)
        # Up again: an idle receive waits and returns nothing (no stale LinkDownError).
        with sock.recv(1, timeout=0.2) as idle:
            assert len(idle) == 0
        frames = burst(bed, 5, 10)
        got: list[bytes] = []
        while len(got) < 10:
            with sock.recv(16, timeout=5.0) as batch:
                assert len(batch)
                got.extend(bytes(f) for f in batch)
        assert got == frames
    with pytest.raises(afxdp_rs.ConfigError, match='link_down="later"'):
        afxdp_rs.XskSocket(bed.inner, 0, link_down="later")  # type: ignore[arg-type]


def test_asyncio_rides_through_a_flap(bed: VethTestbed) -> None:
    async def main() -> list[bytes]:
        got: list[bytes] = []
        async with AsyncXskSocket.open(bed.inner, 0) as sock:

            async def receive() -> None:
                async for batch in sock:
                    with batch:
                        got.extend(bytes(f) for f in batch)

            task = asyncio.create_task(receive())
            await asyncio.sleep(0.1)
            await asyncio.to_thread(burst, bed, 0, 50)
            await asyncio.sleep(0.2)
            await asyncio.to_thread(flap, bed, bed.inner, 0.5)
            await asyncio.sleep(0.2)
            assert not task.done(), task
            await asyncio.to_thread(burst, bed, 100, 50)
            for _ in range(500):
                if len(got) >= 100:
                    break
                await asyncio.sleep(0.01)
            task.cancel()
        return got

    got = asyncio.run(main())
    assert got == [bed.frame(i, 64) for i in range(50)] + [
        bed.frame(100 + i, 64) for i in range(50)
    ]


@contextlib.contextmanager
def afxdp_in(bed: VethTestbed, *args: str) -> Iterator[subprocess.Popen[str]]:
    """Runs the command in the test bed's namespace; a process still running when the
    block ends (a failed assertion) is killed, so nothing outlives the test."""
    p = subprocess.Popen(
        ["ip", "netns", "exec", bed.name, AFXDP, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield p
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def ended(p: subprocess.Popen[str], sig: int | None = None, timeout: float = 30) -> str:
    """Sends `sig` (if any), waits for the process to end, returns its standard output
    (standard error is left to a Lines reader)."""
    if sig is not None:
        p.send_signal(sig)
    p.wait(timeout=timeout)
    assert p.stdout is not None
    return p.stdout.read()


class Lines:
    """Collects a process's standard error line by line, in a thread, so that a test
    can wait for a notice (instead of guessing how long one takes)."""

    def __init__(self, p: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self.cond = threading.Condition()
        assert p.stderr is not None
        self.stream = p.stderr
        self.thread = threading.Thread(target=self._read)
        self.thread.start()

    def _read(self) -> None:
        for line in self.stream:
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()

    def wait_for(self, text: str, timeout: float = 20.0) -> None:
        with self.cond:
            ok = self.cond.wait_for(lambda: any(text in x for x in self.lines), timeout)
        assert ok, f"no {text!r} in: {''.join(self.lines)}"

    def text(self) -> str:
        self.thread.join(timeout=30)
        return "".join(self.lines)


SOL_PACKET, PACKET_STATISTICS = 263, 6


def packet_drops(s: socket.socket) -> int:
    """What the kernel dropped for want of room in a packet socket since it was last
    asked (struct tpacket_stats: packets, drops)."""
    return int(struct.unpack("II", s.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))[1])


def flap_seen(bed: VethTestbed, lines: Lines, name: str) -> None:
    """Down until the command says so, then up until it says so."""
    bed.set_link_state(name, up=False)
    lines.wait_for(f"link {name} is down")
    bed.set_link_state(name, up=True)
    lines.wait_for(f"link {name} is up again")


def test_forward_command_rides_through_a_flap(bed: VethTestbed) -> None:
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_AFXDP_TEST)) as out:
        out.bind(("fwd1", ETH_P_AFXDP_TEST))
        out.settimeout(5.0)
        with afxdp_in(bed, "forward", bed.inner, "fwd0", "--json") as p:
            lines = Lines(p)
            wait_ready(p, bed.inner, "fwd0")
            first = burst(bed, 0, 100)
            got = [out.recv(2048) for _ in range(100)]
            flap_seen(bed, lines, bed.inner)
            second = burst(bed, 1000, 100)
            got += [out.recv(2048) for _ in range(100)]
            # Its destination goes down: what comes meanwhile waits on fwd0's tx ring
            # and leaves when fwd0 is up again, in order.
            bed.set_link_state("fwd0", up=False)
            lines.wait_for("link fwd0 is down")
            during = burst(bed, 2000, 50)
            bed.set_link_state("fwd0", up=True)
            lines.wait_for("link fwd0 is up again")
            got += [out.recv(2048) for _ in range(50)]
            third = burst(bed, 3000, 100)
            got += [out.recv(2048) for _ in range(100)]
            stdout = ended(p, signal.SIGTERM)
    stderr = lines.text()
    assert p.returncode == 0, stderr
    assert got == first + second + during + third
    assert json.loads(stdout.splitlines()[-1])["packets"] == 350
    assert "Traceback" not in stderr


def test_capture_command_rides_through_a_flap(bed: VethTestbed, tmp_path: Path) -> None:
    pcap = tmp_path / "flap.pcap"

    def captured(n: int) -> None:
        eventually(
            lambda: pcap.stat().st_size >= 24 + n * (16 + 64),
            f"{n} packets in {pcap}",
            bound=10.0,
        )

    with afxdp_in(bed, "capture", bed.inner, "-w", str(pcap)) as p:
        lines = Lines(p)
        wait_ready(p, bed.inner)
        first = burst(bed, 0, 100)
        captured(100)
        flap_seen(bed, lines, bed.inner)
        second = burst(bed, 1000, 100)
        captured(200)
        stdout = ended(p, signal.SIGTERM)
    stderr = lines.text()
    assert p.returncode == 0, stderr
    assert PcapReader(str(pcap)).frames() == first + second
    assert "captured 200 packets" in stdout and "went down 1 time" in stdout, stdout


def test_a_removed_interface_still_ends_things() -> None:
    with VethTestbed() as bed:
        with afxdp_rs.XskSocket(bed.inner, 0, link_down="raise") as sock:
            # Seen down first, then removed: the removal is what it says.
            bed.set_link_state(bed.inner, up=False)
            assert not sock.link_up
            bed.delete_link(bed.inner)
            with pytest.raises(afxdp_rs.XdpOSError, match="removed") as e:
                sock.recv(1, timeout=1.0)
            assert not isinstance(e.value, afxdp_rs.LinkDownError)
        bed.add_veth("gone0", "gone1")
        with afxdp_in(bed, "capture", "gone0", "-w", "/dev/null") as p:
            wait_ready(p, "gone0")
            bed.delete_link("gone0")
            _, stderr = p.communicate(timeout=30)
        assert p.returncode == 1, stderr
        assert "removed" in stderr and "Traceback" not in stderr


def test_send_command_rides_through_a_flap(bed: VethTestbed, tmp_path: Path) -> None:
    """afxdp send --loop at a modest rate, the link flaps in the middle: every frame is
    sent once the link is back, in order, and the summary counts the flap. A frame the
    kernel was sending as the link went down may be dropped there (6.1 and 6.12 under
    load: the device stops running a moment before it stops being up); it must then be
    counted in the interface's tx_dropped, and the summary says so."""
    from afxdp_rs.pcap import PcapWriter

    src = tmp_path / "src.pcap"
    frames = [bed.frame(i, 64, to_inner=False) for i in range(100)]
    with PcapWriter(str(src)) as w:
        for f in frames:
            w.write(f)
    # The bed's packet socket has room for all of them (a reader in Python on a loaded
    # guest may fall behind).
    with bed.packet_socket(bed.peer) as rx:
        rx.settimeout(10.0)
        args = ("send", bed.inner, "--from", str(src), "--loop", "20", "--rate", "1000")
        with afxdp_in(bed, *args) as p:
            lines = Lines(p)
            # The first frame comes once the command has started: seconds on a slow
            # machine (20 s in a TCG guest, where its imports come over 9p).
            rx.settimeout(120.0)
            got = [rx.recv(2048)]
            rx.settimeout(10.0)
            got += [rx.recv(2048) for _ in range(199)]
            dropped0 = bed.link_stats(bed.inner).get("tx_dropped", 0)
            flap_seen(bed, lines, bed.inner)
            stdout = ended(p, timeout=120)
            # Everything it sent has arrived by now (or was dropped on the way).
            rx.settimeout(2.0)
            with contextlib.suppress(TimeoutError):
                while len(got) < 2000:
                    got.append(rx.recv(2048))
        assert packet_drops(rx) == 0
    stderr = lines.text()
    assert p.returncode == 0, stderr
    dropped = bed.link_stats(bed.inner).get("tx_dropped", 0) - dropped0
    # In order, none twice, byte for byte; what is missing the kernel counted.
    expected, at = frames * 20, 0
    for f in got:
        while at < len(expected) and expected[at] != f:
            at += 1
        assert at < len(expected), "a frame out of order, twice, or not sent"
        at += 1
    assert len(got) + dropped == 2000, (len(got), dropped)
    assert "went down 1 time" in stdout, stdout
    if dropped:
        assert f"counted {dropped} dropped meanwhile" in stdout, stdout
    else:
        assert "sent 2000 of 2000" in stdout and got == expected, stdout


class FakeClock:
    """A clock and a `Stopping` in one for the pacer: sleeping moves the time on."""

    now = 0.0
    asked = False

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_a_paced_replay_pauses_while_the_link_is_down() -> None:
    """The time a link was down moves the rest of the schedule later: after the flap the
    replay goes on at its rate, not with everything missed in one burst (which a
    receiver at that rate need not keep up with; the flap test above lost packets in
    its packet socket that way on a loaded guest)."""
    from afxdp_rs.cli import send

    clock = FakeClock()
    frames = [bytes([i]) * 60 for i in range(20)]
    plan = ([k / 10 for k in range(len(frames))], len(frames) / 10)  # 10 packets/s

    def replay(pause: bool) -> list[tuple[float, int]]:
        clock.now = 100.0
        paced = send._Paced(frames, plan, 1, clock, lambda: clock.now)  # type: ignore[arg-type]
        chunks = []
        for chunk in paced:
            chunks.append((round(clock.now - 100.0, 3), len(chunk)))
            if len(chunks) == 3:
                clock.now += 5.0  # the link was down for 5 s
                if pause:
                    paced.pause(5.0)
        assert sum(n for _, n in chunks) == len(frames)
        return chunks

    # Without the pause, the 17 frames due in those 5 s leave at once ...
    assert replay(pause=False)[3] == (5.2, 17)
    # ... with it, one at a time, 0.1 s apart, as asked.
    after = replay(pause=True)[3:]
    assert after == [(round(5.3 + k / 10, 3), 1) for k in range(17)]


def test_a_replay_waits_out_a_down_link_and_pauses_its_pace() -> None:
    """The send loop of `afxdp send`: while sending raises LinkDownError nothing is
    queued and it waits; the time it waited pauses the pacer; a deadline that passes
    meanwhile ends the wait."""
    from afxdp_rs.cli import send
    from afxdp_rs.cli.common import LinkNotices

    class Sock:
        def __init__(self, down_for: int) -> None:
            self.down_for = down_for
            self.sent: list[bytes] = []

        def send(self, packets: list[bytes], timeout: float) -> int:
            if self.down_for > 0:
                self.down_for -= 1
                raise afxdp_rs.LinkDownError("down")
            self.sent.extend(packets[:2])  # part of a chunk at a time
            return min(2, len(packets))

    clock = FakeClock()
    frames = [bytes([i]) * 60 for i in range(5)]
    paced = send._Paced(frames, ([0.0] * 5, 1.0), 1, clock, lambda: clock.now)  # type: ignore[arg-type]
    sock, links = Sock(down_for=7), LinkNotices()
    sender = send._Sender(sock, "x0", links, paced, clock, lambda: clock.now)  # type: ignore[arg-type]
    assert sender.send(frames, None) == (5, 300)
    assert sock.sent == frames and links.downs == {"x0": 1} and links.down == {"x0": False}
    # Seven refusals, 0.1 s apart: the pace moved by the 0.7 s the link was down.
    assert round(paced._paused, 3) == 0.7
    # A deadline that passes while the link is down ends the wait with what was sent.
    sock.down_for = 1000
    assert sender.send(frames, clock.now + 1.0) == (0, 0)
    assert sock.down_for > 900
