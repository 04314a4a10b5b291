"""Preferred busy polling (busy_poll=True): the socket options reach the kernel, packets
flow and arrive byte for byte in native and skb mode, the library says where the
kernel cannot busy-poll (veth and skb mode give the socket no NAPI ID), and every
refusal is a specific error."""

from __future__ import annotations

import ctypes
import subprocess
import sys
import textwrap

import pytest

import afxdp_rs
from afxdp_rs.testbed import VethTestbed
from afxdp_rs.types import XdpMode

pytestmark = pytest.mark.kernel

SOL_SOCKET = 1
SO_BUSY_POLL = 46
SO_PREFER_BUSY_POLL = 69
_libc = ctypes.CDLL(None, use_errno=True)


def socket_int(fd: int, name: int) -> int:
    value, size = ctypes.c_int(-1), ctypes.c_uint(4)
    rc = _libc.getsockopt(fd, SOL_SOCKET, name, ctypes.byref(value), ctypes.byref(size))
    assert rc == 0, ctypes.get_errno()
    return value.value


@pytest.mark.parametrize("mode", ["native", "skb"])
def test_busy_poll_receives_every_byte(bed: VethTestbed, mode: XdpMode) -> None:
    with afxdp_rs.XskSocket(
        bed.inner, 0, mode=mode, busy_poll=True, busy_poll_usecs=50, busy_poll_budget=32
    ) as sock:
        assert sock.busy_poll
        fd = sock.fileno()
        assert socket_int(fd, SO_PREFER_BUSY_POLL) == 1
        assert socket_int(fd, SO_BUSY_POLL) == 50
        # SO_BUSY_POLL_BUDGET cannot be read back (getsockopt does not know it); a
        # value the kernel refuses would have failed the open.
        # Both modes on veth: no NAPI ID, so the kernel cannot busy-poll; said at once.
        assert any("busy_poll on xdp0 has no effect" in w for w in sock.warnings)
        frames = [bed.frame(i, 60 + i % 900) for i in range(500)]
        with bed.packet_socket(bed.peer) as peer:
            got: list[bytes] = []
            for i in range(0, len(frames), 50):
                for f in frames[i : i + 50]:
                    peer.send(f)
                while len(got) < i + 50:
                    with sock.recv(64, timeout=5.0) as batch:
                        assert len(batch), f"nothing after {len(got)} packets"
                        got.extend(bytes(f) for f in batch)
        assert got == frames
        st = sock.statistics()
        assert st["rx_packets"] == 500 and st["rx_dropped"] == 0
        # Every empty look made the system call in which the kernel would poll.
        assert st["rx_wakeups"] > 0
        # What the warning said, now measured: the kernel gave the socket no NAPI ID.
        assert sock.napi_id == 0


def test_without_busy_poll_the_options_stay_off(bed: VethTestbed) -> None:
    with afxdp_rs.XskSocket(bed.inner, 0) as sock:
        assert not sock.busy_poll
        assert socket_int(sock.fileno(), SO_PREFER_BUSY_POLL) == 0
        assert not any("busy_poll" in w for w in sock.warnings)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"busy_poll_usecs": 0}, "busy_poll_usecs=0: use a time from 1"),
        ({"busy_poll_budget": 0}, "busy_poll_budget=0: use a packet count from 1 to 65535"),
        ({"busy_poll_budget": 70_000}, "busy_poll_budget=70000"),
        ({"busy_poll_usecs": -5}, "busy_poll_usecs=-5 is out of range"),
    ],
)
def test_bad_busy_poll_values_are_named(
    bed: VethTestbed, kwargs: dict[str, int], match: str
) -> None:
    with pytest.raises(afxdp_rs.ConfigError, match=match):
        afxdp_rs.XskSocket(bed.inner, 0, busy_poll=True, **kwargs)  # type: ignore[arg-type]


CHILD = textwrap.dedent(
    """
    import socket, sys, afxdp_rs
    own = socket.socket(44, socket.SOCK_RAW, 0)  # AF_XDP: CAP_NET_RAW is enough
    try:
        afxdp_rs.XskSocket(sys.argv[1], 0, inhibit=True, sock_fd=own.fileno(), busy_poll=True)
    except afxdp_rs.AfXdpError as e:
        print(type(e).__name__, e)
    """
)


def test_busy_poll_without_cap_net_admin_is_refused(bed: VethTestbed) -> None:
    """With CAP_NET_RAW alone a process can open an AF_XDP socket, but the kernel lets
    only CAP_NET_ADMIN turn on preferred busy polling: the error says so."""
    out = subprocess.run(
        [
            "setpriv",
            "--inh-caps=-all",
            "--bounding-set=-all,+net_raw",
            sys.executable,
            "-c",
            CHILD,
            bed.inner,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert out.startswith("PrivilegeError "), out
    assert "setting SO_PREFER_BUSY_POLL=1 needs CAP_NET_ADMIN" in out, out


def test_a_busy_polling_forwarder_forwards_every_byte(bed: VethTestbed) -> None:
    """Forwarder(busy_poll=True): each side's socket busy-polls (the options reach the
    kernel and it says veth has no NAPI ID), an idle pair spins on the receive calls
    instead of sleeping, and every frame arrives on the other side intact."""
    bed.add_veth("bp0", "bp1")
    with (
        bed.packet_socket("bp1") as out,
        afxdp_rs.Forwarder(bed.inner, "bp0", busy_poll=True, busy_poll_usecs=50) as fwd,
    ):
        assert any("busy_poll on" in w and "no effect" in w for w in fwd.warnings), fwd.warnings
        out.settimeout(10.0)
        frames = [bed.frame(i, 60 + i % 700) for i in range(300)]
        with bed.packet_socket(bed.peer) as peer:
            got: list[bytes] = []
            for i in range(0, len(frames), 30):
                for f in frames[i : i + 30]:
                    peer.send(f)
                while len(got) < i + 30:
                    got.append(out.recv(4096))
        assert got == frames
        (there,) = [d for d in fwd.statistics() if d["from"] == bed.inner]
        assert there["packets"] == 300
        assert fwd.running
