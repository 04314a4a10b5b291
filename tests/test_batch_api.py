"""Batch helpers that keep per-packet work out of Python: zero-copy L2 forwarding with a
MAC swap, sending from one contiguous buffer, copying a batch into one buffer, recv
linger; and the benchmark command (functional only: speed is measured by benchmarks)."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from array import array

import pytest

import afxdp_rs
from afxdp_rs.testbed import VethTestbed

pytestmark = pytest.mark.kernel


def incoming(sock: socket.socket, n: int) -> list[bytes]:
    got: list[bytes] = []
    while len(got) < n:
        data, addr = sock.recvfrom(4096)
        if addr[2] != socket.PACKET_OUTGOING:
            got.append(data)
    return got


def test_l2fwd_swaps_macs_without_copying(bed: VethTestbed) -> None:
    frames = [bed.frame(i, 64 + i) for i in range(300)]
    with afxdp_rs.XskSocket(bed.inner, 0) as sock, bed.packet_socket(bed.peer) as peer:
        peer.settimeout(5.0)
        for f in frames:
            peer.send(f)
        forwarded = 0
        for _ in range(1000):
            forwarded += sock.l2fwd(64)
            if forwarded == 300:
                break
            sock.wait_readable(timeout=0.1)
        assert forwarded == 300
        assert sock.flush(timeout=2.0)
        assert incoming(peer, 300) == [f[6:12] + f[0:6] + f[12:] for f in frames]
        st = sock.statistics()
        assert st["rx_packets"] == st["tx_packets"] == st["tx_completed"] == 300
        assert st["free_frames"] + 2048 == 4096, "every frame came back"


def test_send_packed_and_copy_into(bed: VethTestbed) -> None:
    frames = [bed.frame(i, 60 + 10 * i, to_inner=False) for i in range(5)]
    with afxdp_rs.XskSocket(bed.inner, 0) as sock, bed.packet_socket(bed.peer) as peer:
        peer.settimeout(2.0)
        data = b"".join(frames)
        lengths = array("I", [len(f) for f in frames])
        assert sock.send_packed(data, lengths, timeout=1.0) == 5
        assert sock.flush(timeout=1.0)
        assert incoming(peer, 5) == frames
        with pytest.raises(afxdp_rs.ConfigError, match="lengths add up to"):
            sock.send_packed(data[:-1], lengths)
        with pytest.raises(TypeError, match="uint32"):
            sock.send_packed(data, array("H", [60]))

        back = [bed.frame(i, 70 + i) for i in range(4)]
        for f in back:
            peer.send(f)
        with sock.recv(4, timeout=2.0, linger=0.01) as batch:
            assert len(batch) == 4
            out = bytearray(1000)
            lens = array("I", [0] * 4)
            assert batch.copy_into(out, lens) == sum(len(f) for f in back)
            assert list(lens) == [len(f) for f in back]
            assert bytes(out[: sum(lens)]) == b"".join(back)
            with pytest.raises(afxdp_rs.ConfigError, match="copy_into needs"):
                batch.copy_into(bytearray(10), lens)
            with pytest.raises(TypeError, match="writable"):
                batch.copy_into(bytes(1000), lens)


@pytest.mark.parametrize("workload", ["rxdrop", "txonly", "l2fwd"])
def test_bench_command_runs_every_path(workload: str) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "afxdp_rs", "bench", workload, "--compare", "-d", "0.3"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    # Plain columns when standard output is not a terminal.
    assert "│" not in r.stdout
    rows = re.findall(r"^\s*(python|rust|af_packet)\s+([\d.]+)\s", r.stdout, re.M)
    assert [p for p, _ in rows] == ["python", "rust", "af_packet"], r.stdout
    assert all(float(mpps) > 0 for _, mpps in rows), r.stdout


def test_bench_busy_poll_mode_and_drain_cost() -> None:
    def bench(*args: str) -> tuple[str, str]:
        r = subprocess.run(
            [sys.executable, "-m", "afxdp_rs", "bench", *args, "-d", "0.3"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert r.returncode == 0, r.stderr
        return r.stdout, r.stderr

    out, err = bench("rxdrop", "--busy-poll")
    assert "busy-poll mode" in out, out
    # veth gives the socket no NAPI ID: said when the socket opens (one line, in the
    # command line's words), and in the table.
    assert "afxdp: warning: busy polling (-B) on xdp0 has no effect" in err, err
    assert "busy_poll=inactive" in out, out
    out, _ = bench("drain", "--json")
    results = json.loads(out)["results"]
    assert [r["path"] for r in results] == [
        "drain recv+release",
        "drain recv+iterate+release",
        "drain vector: field+bincount",
    ], out
    assert all(r["packets"] > 0 and r["packets_per_second"] > 0 for r in results), out
