"""Sockets and processes: a child of multiprocessing's default start method (fork)
must not use the rings it shares with its parent, can close its copy without harming
the parent's, and can open its own socket; separate processes share one interface,
each on its own queue, through one default program."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection

import pytest
from conftest import eventually

import afxdp_rs
from afxdp_rs.testbed import VethTestbed

pytestmark = [pytest.mark.kernel, pytest.mark.bed(queues=2)]


def received(sock: afxdp_rs.XskSocket, n: int) -> list[bytes]:
    got: list[bytes] = []
    while len(got) < n:
        with sock.recv(64, timeout=5.0) as batch:
            assert len(batch), f"only {len(got)} of {n} packets arrived"
            got.extend(batch.to_list())
    return got


def child(bed: VethTestbed, sock: afxdp_rs.XskSocket, conn: Connection) -> None:
    """Runs in the forked child: every use of the parent's socket raises."""
    out: dict[str, str] = {}
    calls: dict[str, Callable[[], object]] = {
        "recv": lambda: sock.recv(1, timeout=0),
        "send": lambda: sock.send([bed.frame(0, 64)]),
        "statistics": sock.statistics,
        "flush": lambda: sock.flush(timeout=0),
        "l2fwd": sock.l2fwd,
    }
    for name, call in calls.items():
        try:
            call()
            out[name] = "no error"
        except afxdp_rs.ForkedSocketError as e:
            out[name] = str(e)
    sock.close()  # allowed: lets go of the child's copy only
    with afxdp_rs.XskSocket(bed.inner, 1) as own:
        conn.send(out)
        conn.recv()  # the parent sends now
        conn.send(len(received(own, 10)))


def test_forked_child_cannot_use_the_parents_socket(bed: VethTestbed) -> None:
    gens = [afxdp_rs.XskSocket(bed.peer, q, rx_size=0) for q in range(2)]
    sock = afxdp_rs.XskSocket(bed.inner, 0)
    parent, theirs = multiprocessing.get_context("fork").Pipe()
    proc = multiprocessing.get_context("fork").Process(target=child, args=(bed, sock, theirs))
    proc.start()
    try:
        assert parent.poll(30), "the child did not answer"
        out = parent.recv()
        for name, message in out.items():
            assert "opened before the process forked" in message, (name, message)
            assert "Open a new one in this process" in message
        frames = [bed.frame(i, 64) for i in range(10)]
        assert gens[1].send(frames, timeout=2.0) == 10
        parent.send("go")
        assert parent.poll(30)
        assert parent.recv() == 10, "the child's own socket received"
        proc.join(30)
        assert proc.exitcode == 0
        # The child closed its copy and its own socket: the parent's is untouched.
        assert gens[0].send(frames, timeout=2.0) == 10
        assert received(sock, 10) == frames
        assert bed.xdp_state(bed.inner)[1] != 0
    finally:
        if proc.is_alive():
            proc.kill()
        sock.close()
        for g in gens:
            g.close()


_OTHER_PROCESS = """
import sys, afxdp_rs
sock = afxdp_rs.XskSocket(sys.argv[1], 0)
print(sock.attach_mode, flush=True)
got = 0
while got < 10:
    with sock.recv(64, timeout=10.0) as batch:
        got += len(batch)
print(got, flush=True)
sys.stdin.read()  # until killed
"""


def test_processes_share_an_interface_and_the_program_leaves_with_the_last(
    bed: VethTestbed,
) -> None:
    """Another process uses queue 0, this one queue 1: both through the one default
    program, which stays while either lives (the other is killed with SIGKILL) and goes
    with the last."""
    gens = [afxdp_rs.XskSocket(bed.peer, q, rx_size=0) for q in range(2)]
    other = subprocess.Popen(
        [sys.executable, "-c", _OTHER_PROCESS, bed.inner],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert other.stdout is not None
        assert other.stdout.readline().strip() == "native"
        mode, prog_id = bed.xdp_state(bed.inner)
        with afxdp_rs.XskSocket(bed.inner, 1) as mine:
            assert mine.attach_mode == "native"
            assert bed.xdp_state(bed.inner) == (mode, prog_id), "joined, not replaced"
            frames = [bed.frame(i, 64) for i in range(10)]
            assert gens[0].send(frames, timeout=2.0) == 10
            assert other.stdout.readline().strip() == "10"
            assert gens[1].send(frames, timeout=2.0) == 10
            assert received(mine, 10) == frames
            os.kill(other.pid, signal.SIGKILL)
            other.wait()
            assert bed.xdp_state(bed.inner) == (mode, prog_id), "this process still holds it"
            assert gens[1].send(frames, timeout=2.0) == 10
            assert received(mine, 10) == frames
        eventually(
            lambda: bed.xdp_state(bed.inner) == ("none", 0),
            "the last user is gone: so is the program",
        )
    finally:
        if other.poll() is None:
            other.kill()
            other.wait()
        for g in gens:
            g.close()


_OPEN_AT_ONCE = """
import sys, afxdp_rs
sys.stdin.readline()  # the start signal: every process opens at the same moment
with afxdp_rs.XskSocket(sys.argv[1], int(sys.argv[2])) as s:
    print(s.attach_mode, flush=True)
    sys.stdin.readline()
"""


def test_processes_that_start_together_share_the_program(bed: VethTestbed) -> None:
    """Two processes open their sockets at the same moment, each on its own queue: one
    attaches the program, the other joins it (whichever loses the race to attach),
    however often it is tried."""
    for _ in range(5):
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _OPEN_AT_ONCE, bed.inner, str(q)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for q in range(2)
        ]
        try:
            time.sleep(0.3)  # both have imported afxdp_rs and wait on stdin
            for p in procs:
                assert p.stdin is not None
                p.stdin.write("go\n")
                p.stdin.flush()
            for p in procs:
                assert p.stdout is not None
                line = p.stdout.readline().strip()
                assert line == "native", p.communicate(timeout=10)
            outs = [p.communicate("done\n", timeout=10) for p in procs]
            assert all(p.returncode == 0 for p in procs), outs
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        assert bed.xdp_state(bed.inner) == ("none", 0)
