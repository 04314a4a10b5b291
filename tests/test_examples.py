"""Every example in examples/ runs, as a user would run it, against veth interfaces."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import start_helper, wait_ready, without_privileges
from packets import frame

from afxdp_rs.pcap import PcapReader
from afxdp_rs.testbed import VethTestbed

pytestmark = [pytest.mark.kernel, pytest.mark.bed(veths=[("fwd0", "fwd1")])]

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def start(name: str, *args: str, prefix: tuple[str, ...] = ()) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*prefix, sys.executable, str(EXAMPLES / name), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 30) -> str:
    out, errs = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, errs
    return out


def inject(bed: VethTestbed, frames: list[bytes], ifname: str | None = None) -> None:
    with bed.packet_socket(ifname or bed.peer) as s:
        for f in frames:
            s.send(f)


def receive(sock_if: str, bed: VethTestbed, n: int) -> list[bytes]:
    got: list[bytes] = []
    with bed.packet_socket(sock_if) as s:
        s.settimeout(10)
        while len(got) < n:
            data, addr = s.recvfrom(4096)
            if addr[2] != 4:  # not our own outgoing packets
                got.append(data)
    return got


def test_capture_pcap(bed: VethTestbed, tmp_path: Path) -> None:
    path = tmp_path / "ex.pcap"
    proc = start("capture_pcap.py", bed.inner, str(path), "100")
    wait_ready(proc, bed.inner)
    frames = [bed.frame(i, 60 + i) for i in range(100)]
    inject(bed, frames)
    assert "captured 100 packets" in finish(proc)
    assert PcapReader(str(path)).frames() == frames


def test_port_histogram(bed: VethTestbed) -> None:
    proc = start("port_histogram.py", bed.inner, "300")
    wait_ready(proc, bed.inner)
    dst, src = (
        bytes.fromhex(bed.inner_mac.replace(":", "")),
        bytes.fromhex(bed.peer_mac.replace(":", "")),
    )
    frames = [
        frame(
            dst, src, "10.0.0.2", "10.0.0.1", "udp", bytes(18), ports=(1000, 53 if i % 3 else 443)
        )
        for i in range(300)
    ]
    inject(bed, frames)
    out = finish(proc)
    assert "counted 300 packets" in out
    assert "port 53: 200" in out and "port 443: 100" in out


def test_generator(bed: VethTestbed) -> None:
    sink = bed.packet_socket(bed.peer)
    sink.settimeout(10)
    proc = start("generator.py", bed.inner, "1000", bed.peer_mac)
    got: list[bytes] = []
    while len(got) < 1000:
        data, addr = sink.recvfrom(4096)
        if addr[2] != 4:
            got.append(data)
    sink.close()
    assert "sent 1000 packets" in finish(proc)
    assert [int.from_bytes(d[14:18], "big") for d in got] == list(range(1000))
    assert all(len(d) == 64 and d[:6] == bytes.fromhex("020000000002") for d in got)


def test_l2fwd(bed: VethTestbed) -> None:
    frames = [bed.frame(i, 90) for i in range(200)]
    out: list[bytes] = []
    t = threading.Thread(target=lambda: out.extend(receive("fwd1", bed, 200)))
    t.start()
    proc = start("l2fwd.py", bed.inner, "fwd0", "200")
    wait_ready(proc, "fwd0", bed.inner)
    inject(bed, frames)
    assert "forwarded 200 packets" in finish(proc)
    t.join(timeout=10)
    assert out == frames


def test_asyncio_echo(bed: VethTestbed) -> None:
    frames = [bed.frame(i, 64) for i in range(100)]
    echoes: list[bytes] = []
    t = threading.Thread(target=lambda: echoes.extend(receive(bed.peer, bed, 100)))
    t.start()
    proc = start("asyncio_echo.py", bed.inner, "100")
    wait_ready(proc, bed.inner)
    inject(bed, frames)
    assert "answered 100 packets" in finish(proc)
    t.join(timeout=10)
    assert echoes == [f[6:12] + f[0:6] + f[12:] for f in frames]


def test_unprivileged_worker(bed: VethTestbed) -> None:
    path = f"/tmp/afxdp-example-{os.getpid()}.sock"
    helper = start_helper(path, bed.inner, 1)
    no_caps = tuple(without_privileges(4 << 20))
    proc = start("unprivileged_worker.py", path, "100", prefix=no_caps)
    helper.join(timeout=20)
    # Until the worker has bound its socket the program passes packets to the stack:
    # send in rounds until it has its 100.
    for round_ in range(50):
        inject(bed, [bed.frame(round_ * 1000 + i, 64) for i in range(100)])
        try:
            out = finish(proc, timeout=0.2)
            break
        except subprocess.TimeoutExpired:
            continue
    else:
        proc.kill()
        raise AssertionError("the worker received too little")
    assert "received" in out and "queues [0]" in out
    assert int(out.split()[1]) >= 100
