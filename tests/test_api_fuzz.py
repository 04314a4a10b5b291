"""Thousands of random calls on the Python API: wrong types, negative and huge sizes,
empty and oversized packets, closed sockets, double close. Each must either work or
raise an ordinary exception (never a panic, a SystemError or a crash), and nothing may
leak."""

from __future__ import annotations

import math
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import afxdp_rs
from afxdp_rs.testbed import VethTestbed

pytestmark = pytest.mark.kernel

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, 2, 64, 2048, 4096, 2**31, 2**32, -1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.binary(max_size=3000),
    st.lists(st.binary(max_size=2000), max_size=8),
    st.lists(st.integers(), max_size=4),
)
# Waits are bounded: never None (forever) and never long.
timeouts = st.one_of(
    st.sampled_from([0, 0.001, -1, math.nan, math.inf, -math.inf]), st.text(max_size=3)
)

OPTIONS = [
    "mode",
    "bind",
    "frame_size",
    "frame_count",
    "headroom",
    "fill_size",
    "comp_size",
    "rx_size",
    "tx_size",
    "need_wakeup",
    "frames",
    "hold_fds",
]

CALLS = [
    "recv",
    "send",
    "flush",
    "wait_readable",
    "deliver",
    "l2fwd",
    "send_packed",
    "statistics",
    "fileno",
    "close",
    "batch_item",
    "batch_copy",
    "batch_release",
]


def survives(f: Any, *args: Any, **kwargs: Any) -> Any:
    """Calls f; an ordinary exception is fine, a panic or SystemError is not."""
    try:
        return f(*args, **kwargs)
    except SystemError:
        raise
    except Exception:
        return None


def test_random_construction(bed: VethTestbed) -> None:
    fds = len(os.listdir("/proc/self/fd"))

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.dictionaries(st.sampled_from(OPTIONS), junk, max_size=4), junk)
    def construct(options: dict[str, Any], queue: Any) -> None:
        sock = survives(afxdp_rs.XskSocket, bed.inner, queue, **options)
        if sock is not None:
            sock.close()
            sock.close()

    construct()
    assert len(os.listdir("/proc/self/fd")) == fds
    assert bed.xdp_state(bed.inner) == ("none", 0)


def test_random_calls(bed: VethTestbed) -> None:
    fds = len(os.listdir("/proc/self/fd"))
    peer = bed.packet_socket(bed.peer)

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(st.tuples(st.sampled_from(CALLS), junk, timeouts), min_size=1, max_size=60))
    def session(calls: list[tuple[str, Any, Any]]) -> None:
        sock = afxdp_rs.XskSocket(bed.inner, 0, frame_count=64, fill_size=32, rx_size=32)
        batches: list[Any] = []
        for i in range(8):
            peer.send(bed.frame(i, 64))
        for name, arg, timeout in calls:
            if name == "recv":
                b = survives(sock.recv, arg, timeout=timeout)
                if b is not None:
                    batches.append(b)
            elif name == "send":
                survives(sock.send, arg, timeout=timeout)
            elif name == "flush":
                survives(sock.flush, timeout=timeout)
            elif name == "wait_readable":
                survives(sock.wait_readable, timeout=timeout)
            elif name == "deliver":
                survives(sock.deliver, lambda f, a=arg: a, 4)
            elif name == "l2fwd":
                survives(sock.l2fwd, arg)
            elif name == "send_packed":
                survives(sock.send_packed, arg, arg, timeout=timeout)
            elif name == "statistics":
                survives(sock.statistics)
            elif name == "fileno":
                survives(sock.fileno)
            elif name == "close":
                sock.close()
            elif batches and name == "batch_item":
                survives(lambda a=arg: bytes(batches[-1][a]))
            elif batches and name == "batch_copy":
                survives(batches[-1].copy_into, arg, arg)
            elif batches and name == "batch_release":
                survives(batches.pop(0).release)
        sock.close()
        for b in batches:
            survives(b.release)

    session()
    peer.close()
    assert len(os.listdir("/proc/self/fd")) == fds
    assert bed.xdp_state(bed.inner) == ("none", 0)
