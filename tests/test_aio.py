"""asyncio: an echo service answering 100,000 packets with none lost, backpressure
from a pausing consumer, plain await/async-for use, waiters woken by close() and by
faults (interface deleted, program detached), and a writer that does not spin; under
the default event loop and uvloop."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
import subprocess
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop
from conftest import require_tool

import afxdp_rs
from afxdp_rs.aio import AsyncXskSocket
from afxdp_rs.testbed import VethTestbed

pytestmark = pytest.mark.kernel

LOOPS = ["asyncio", "uvloop"]


def run(loop_kind: str, main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    if loop_kind == "uvloop":
        uvloop.run(main())
    else:
        asyncio.run(main())


def swap_macs(data: bytes) -> bytes:
    return data[6:12] + data[0:6] + data[12:]


def seq_of(data: bytes) -> int:
    return int(struct.unpack_from("!I", data, 14)[0])


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_echo_service_answers_100k(bed: VethTestbed, loop_kind: str) -> None:
    """The inner end echoes (MAC swap) through the consumer interface with
    backpressure; the peer sends 100,000 packets in windows and checks every answer."""
    total, window = 100_000, 500
    peer = afxdp_rs.XskSocket(bed.peer, 0, mode="native")
    problems: list[str] = []
    answered = [0]

    def client() -> None:
        try:
            for start in range(0, total, window):
                frames = [bed.frame(s, 64 + s % 64) for s in range(start, start + window)]
                assert peer.send(frames, timeout=5.0) == window
                got: list[bytes] = []
                while len(got) < window:
                    with peer.recv(256, timeout=5.0) as batch:
                        if len(batch) == 0:
                            problems.append(f"no answer for window {start}: {len(got)}")
                            return
                        got.extend(batch.to_list())
                expect = [swap_macs(f) for f in frames]
                if got != expect:
                    problems.append(f"window {start} answered wrongly")
                    return
                answered[0] += window
        except Exception as e:  # reported by the test below
            problems.append(repr(e))

    async def main() -> None:
        async with AsyncXskSocket.open(bed.inner, 0, mode="native") as sock:
            pending: list[bytes] = []
            wake = asyncio.Event()

            def consume(frame: afxdp_rs.Frame) -> bool:
                if len(pending) >= 256:
                    return False  # full: keep the rest in the ring
                pending.append(swap_macs(bytes(frame)))
                wake.set()
                return True

            sock.start_reading(consume)
            t = threading.Thread(target=client)
            t.start()
            while t.is_alive() or pending:
                try:
                    await asyncio.wait_for(wake.wait(), 0.2)
                except TimeoutError:
                    continue
                wake.clear()
                out, pending[:] = list(pending), []
                if out:
                    await sock.send(out)
                    sock.resume_reading()
            t.join()
            stats = sock.sock.statistics()
            assert stats["rx_dropped"] == stats["rx_ring_full"] == 0, stats

    try:
        run(loop_kind, main)
    finally:
        peer.close()
    assert problems == []
    assert answered[0] == total


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_backpressure_cancels_and_resumes(bed: VethTestbed, loop_kind: str) -> None:
    """A consumer that pauses after 10 packets gets the other 40 later, in order."""

    async def main() -> None:
        async with AsyncXskSocket.open(bed.inner, 0) as sock:
            taken: list[int] = []
            accepting = [True]

            def consume(frame: afxdp_rs.Frame) -> bool:
                if not accepting[0]:
                    return False
                taken.append(seq_of(bytes(frame)))
                if len(taken) == 10:
                    accepting[0] = False
                return True

            with bed.packet_socket(bed.peer) as peer:
                for s in range(50):
                    peer.send(bed.frame(s, 64))
            sock.start_reading(consume)
            for _ in range(100):
                if sock.paused:
                    break
                await asyncio.sleep(0.01)
            assert sock.paused and taken == list(range(10))
            await asyncio.sleep(0.1)  # paused: nothing more is delivered
            assert taken == list(range(10))
            accepting[0] = True
            sock.resume_reading()
            for _ in range(100):
                if len(taken) == 50:
                    break
                await asyncio.sleep(0.01)
            assert taken == list(range(50)), "cancelled packets come back, in order"
            stats = sock.sock.statistics()
            assert stats["rx_dropped"] == stats["rx_ring_full"] == 0

    run(loop_kind, main)


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_await_recv_send_and_async_for(bed: VethTestbed, loop_kind: str) -> None:
    async def main() -> None:
        async with AsyncXskSocket.open(bed.inner, 0) as sock:
            with bed.packet_socket(bed.peer) as peer:
                peer.setblocking(False)
                loop = asyncio.get_running_loop()
                # Packets arrive while recv() waits on the event loop.
                loop.call_later(0.05, lambda: [peer.send(bed.frame(s, 80)) for s in range(5)])
                got: list[int] = []
                async for batch in sock:
                    got.extend(seq_of(d) for d in batch.to_list())
                    batch.release()
                    if len(got) >= 5:
                        break
                assert got == list(range(5))
                out = [bed.frame(s, 70, to_inner=False) for s in range(3000)]
                assert await sock.send(out) == 3000  # more than the pool: waits for room
                await sock.flush()
                assert sock.sock.tx_outstanding == 0
                assert sock.sock.statistics()["tx_completed"] == 3000

    run(loop_kind, main)


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_failing_consumer_stops_reading_instead_of_spinning(
    bed: VethTestbed, loop_kind: str
) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        reported: list[BaseException] = []
        loop.set_exception_handler(lambda _loop, ctx: reported.append(ctx["exception"]))
        async with AsyncXskSocket.open(bed.inner, 0) as sock:
            calls = [0]

            def consume(frame: afxdp_rs.Frame) -> bool:
                calls[0] += 1
                raise RuntimeError("consumer bug")

            sock.start_reading(consume)
            with bed.packet_socket(bed.peer) as peer:
                peer.send(bed.frame(1, 64))
            await asyncio.sleep(0.3)
            assert calls[0] == 1, "called once, not again and again"
            assert [str(e) for e in reported] == ["consumer bug"]
            # The packet it failed on is still there for the next reader.
            batch = await asyncio.wait_for(sock.recv(), 2.0)
            assert [seq_of(d) for d in batch.to_list()] == [1]
            batch.release()

    run(loop_kind, main)


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_close_wakes_waiters_with_socket_closed(bed: VethTestbed, loop_kind: str) -> None:
    """A task waiting in recv() when another task closes the socket gets
    SocketClosedError (not CancelledError); every call after close raises it too."""

    async def main() -> None:
        sock = AsyncXskSocket.open(bed.inner, 0)
        waiter = asyncio.ensure_future(sock.recv())
        await asyncio.sleep(0.05)
        sock.close()
        with pytest.raises(afxdp_rs.SocketClosedError, match="closed while"):
            await asyncio.wait_for(waiter, 1.0)
        with pytest.raises(afxdp_rs.SocketClosedError):
            await asyncio.wait_for(sock.recv(), 1.0)
        with pytest.raises(afxdp_rs.SocketClosedError):
            await asyncio.wait_for(sock.send([bed.frame(1, 64)]), 1.0)
        with pytest.raises(afxdp_rs.SocketClosedError):
            await asyncio.wait_for(sock.flush(), 1.0)
        with pytest.raises(afxdp_rs.SocketClosedError):
            sock.start_reading(lambda frame: True)
        sock.close()  # twice is fine

    run(loop_kind, main)


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_deleted_interface_wakes_a_waiting_recv(bed: VethTestbed, loop_kind: str) -> None:
    """The interface goes away while a task awaits recv(): the descriptor never becomes
    readable, so only the periodic probe can tell; the task gets the error in time."""
    bed.add_veth("aio0", "aio1")

    async def main() -> None:
        async with AsyncXskSocket.open("aio0", 0) as sock:
            waiter = asyncio.ensure_future(sock.recv())
            await asyncio.sleep(0.05)
            # pyroute2 runs an event loop of its own: call it from a thread.
            await asyncio.to_thread(bed.delete_link, "aio0")
            with pytest.raises(afxdp_rs.XdpOSError, match="stopped working"):
                await asyncio.wait_for(waiter, 3.0)

    try:
        run(loop_kind, main)
    finally:
        if "aio0" in os.listdir("/sys/class/net"):
            bed.delete_link("aio0")


def test_detached_program_wakes_a_waiting_recv(bed: VethTestbed) -> None:
    tool = require_tool("bpftool", "to detach the program as another tool would")

    async def main() -> None:
        async with AsyncXskSocket.open(bed.inner, 0, mode="native") as sock:
            waiter = asyncio.ensure_future(sock.recv())
            await asyncio.sleep(0.05)
            _, prog_id = await asyncio.to_thread(bed.xdp_state, bed.inner)
            links = json.loads(subprocess.check_output([tool, "-j", "link", "show"]))
            (link,) = [x for x in links if x.get("prog_id") == prog_id]
            subprocess.check_call([tool, "link", "detach", "id", str(link["id"])])
            with pytest.raises(afxdp_rs.ProgramDetachedError):
                await asyncio.wait_for(waiter, 3.0)

    asyncio.run(main())
    assert bed.xdp_state(bed.inner) == ("none", 0)


class StuckSocket:
    """Stands in for an XskSocket whose kernel cannot send: the descriptor (one end of
    a socketpair) is always writable, yet flush never makes progress. This checks the
    event-loop logic only; the kernel paths are tested above."""

    def __init__(self) -> None:
        self.pair = socket.socketpair()
        self.flushes = 0
        self.closed = False
        self.tx_outstanding = 5
        self.tx_needs_wakeup = True

    def fileno(self) -> int:
        return self.pair[0].fileno()

    def flush(self, timeout: float | None = None) -> bool:
        self.flushes += 1
        return False

    def wait_readable(self, timeout: float | None = None) -> bool:
        return False

    def close(self) -> None:
        self.closed = True
        for s in self.pair:
            s.close()


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_writer_does_not_spin_while_the_kernel_cannot_send(loop_kind: str) -> None:
    async def main() -> None:
        stuck = StuckSocket()
        sock = AsyncXskSocket(stuck)  # type: ignore[arg-type]
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(sock.flush(), 0.3)
        # Spinning calls flush on every loop turn (tens of thousands in 0.3 s); backing
        # off from 0.5 ms to 10 ms calls it a few dozen times.
        assert stuck.flushes < 200, stuck.flushes
        sock.close()

    run(loop_kind, main)
