"""The command line: each subcommand on its own test bed (as a new user runs it) and on
given interfaces; pcap files that tcpdump reads back."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import wait_ready

import afxdp_rs
from afxdp_rs import probe, tools
from afxdp_rs.cli import main
from afxdp_rs.pcap import PcapReader, PcapWriter
from afxdp_rs.testbed import VethTestbed

pytestmark = [pytest.mark.kernel, pytest.mark.bed(veths=[("fwd0", "fwd1")])]


def afxdp(*args: str) -> subprocess.CompletedProcess[str]:
    """Runs the command line in a fresh process (outside the test's namespace)."""
    return subprocess.run(
        [sys.executable, "-m", "afxdp_rs", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def tcpdump_read(path: Path) -> tuple[int, int]:
    """(packets, bytes) as tcpdump reads the file."""
    out = subprocess.run(
        ["tcpdump", "-r", str(path), "-n", "-e"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = [line for line in out.splitlines() if line and not line[0].isspace()]
    sizes = [int(m.group(1)) for line in lines if (m := re.search(r"length (\d+)", line))]
    assert len(sizes) == len(lines), out[:500]
    return len(lines), sum(sizes)


def test_capture_on_its_own_test_bed(tmp_path: Path) -> None:
    pcap = tmp_path / "own.pcap"
    r = afxdp("capture", "-c", "300", "-w", str(pcap))
    assert r.returncode == 0, r.stderr
    assert "captured 300 packets (19200 bytes)" in r.stdout
    assert tcpdump_read(pcap) == (300, 300 * 64)
    expect = [VethTestbed().frame(i, 64) for i in range(300)]
    assert PcapReader(str(pcap)).frames() == expect


def test_capture_on_an_interface(bed: VethTestbed, tmp_path: Path) -> None:
    pcap = tmp_path / "if.pcap"
    frames = [bed.frame(i, 60 + i) for i in range(100)]

    def inject() -> None:
        with bed.packet_socket(bed.peer) as peer:
            wait_ready(os.getpid(), bed.inner)
            for f in frames:
                peer.send(f)

    t = threading.Thread(target=inject)
    t.start()
    assert main(["capture", bed.inner, "-c", "100", "-d", "10", "-w", str(pcap)]) == 0
    t.join()
    assert PcapReader(str(pcap)).frames() == frames
    assert tcpdump_read(pcap) == (100, sum(len(f) for f in frames))


def test_capture_every_queue_with_a_filter_and_per_packet_times(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """-q all on a 2-queue interface, jumbo frames among them, --filter taking only
    one EtherType; each packet has the time it arrived (tcpdump reads the file)."""
    pcap = tmp_path / "all.pcap"
    with VethTestbed(queues=2, mtu=9000) as bed:
        gens = [afxdp_rs.XskSocket(bed.peer, q, rx_size=0) for q in range(2)]
        wanted = [bed.frame(i, 9014 if i % 3 == 0 else 64 + i) for i in range(20)]
        other = bed.frame(99, 64)[:12] + b"\x88\xb6" + bed.frame(99, 64)[14:]
        t0 = time.time()

        def inject() -> None:
            wait_ready(os.getpid(), bed.inner)
            for i, f in enumerate(wanted):
                gens[i % 2].send([f, other], timeout=2.0)
                time.sleep(0.005)

        t = threading.Thread(target=inject)
        t.start()
        code = main(
            [
                "capture",
                bed.inner,
                "-q",
                "all",
                "-f",
                "ether proto 0x88b5",
                "-c",
                "20",
                "-d",
                "20",
                "-w",
                str(pcap),
            ]
        )
        t.join()
        assert code == 0
        for g in gens:
            g.close()
        assert (
            main(
                [
                    "capture",
                    bed.inner,
                    "-q",
                    "1",
                    "-c",
                    "1",
                    "-d",
                    "0.2",
                    "-w",
                    str(tmp_path / "one.pcap"),
                ]
            )
            == 0
        )
    assert "has 2 rx queues and this listens on 1 only" in capsys.readouterr().err
    records = list(PcapReader(str(pcap)).records())
    assert sorted(r[1] for r in records) == sorted(wanted), "all of them, and only them"
    times = [r[0] for r in records]
    assert len(set(times)) == len(times), "a time per packet, not per batch"
    assert all(t0 < t < time.time() for t in times)
    assert tcpdump_read(pcap) == (20, sum(map(len, wanted)))


def test_send_on_its_own_test_bed(tmp_path: Path) -> None:
    pcap = tmp_path / "replay.pcap"
    with PcapWriter(str(pcap)) as w:
        for i in range(50):
            w.write(VethTestbed().frame(i, 100))
    r = afxdp("send", "--from", str(pcap), "--loop", "4", "--rate", "20000")
    assert r.returncode == 0, r.stderr
    assert "sent 200 of 200 packets" in r.stdout and "xdp1 received 200" in r.stdout


def test_send_replays_byte_exact(bed: VethTestbed, tmp_path: Path) -> None:
    pcap = tmp_path / "replay.pcap"
    frames = [bed.frame(i, 64 + i, to_inner=False) for i in range(40)]
    with PcapWriter(str(pcap)) as w:
        for f in frames:
            w.write(f)
    with bed.packet_socket(bed.peer) as sink:
        sink.settimeout(2.0)
        assert main(["send", bed.inner, "--from", str(pcap), "--loop", "2"]) == 0
        got: list[bytes] = []
        while len(got) < 80:
            data, addr = sink.recvfrom(4096)
            if addr[2] != 4:  # not our own outgoing
                got.append(data)
    assert got == frames * 2


def test_forward_on_its_own_test_bed() -> None:
    r = afxdp("forward", "-c", "500")
    assert r.returncode == 0, r.stderr
    assert "forwarded 500 packets" in r.stdout and "fwd1 received 500" in r.stdout


def test_forward_between_interfaces(bed: VethTestbed) -> None:
    frames = [bed.frame(i, 80) for i in range(200)]
    with bed.packet_socket("fwd1") as sink:
        sink.settimeout(5.0)
        t = threading.Thread(target=main, args=(["forward", bed.inner, "fwd0", "-c", "200"],))
        t.start()
        with bed.packet_socket(bed.peer) as src:
            wait_ready(os.getpid(), bed.inner, "fwd0")
            for f in frames:
                src.send(f)
        got: list[bytes] = []
        while len(got) < 200:
            data, addr = sink.recvfrom(4096)
            if addr[2] != 4:
                got.append(data)
        t.join(timeout=10)
    assert got == frames


def test_info(bed: VethTestbed, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", bed.inner]) == 0
    out = capsys.readouterr().out
    assert re.search(r"driver\s+veth", out)
    assert re.search(r"native xdp\s+yes", out)
    assert re.search(r"zero-copy\s+no", out)
    # What the netdev netlink family says, and what the defaults choose there.
    assert re.search(r"xdp features\s+basic, redirect, .*rx-sg", out), out
    assert re.search(r"defaults: bind\s+copy: the driver does not offer zero-copy", out), out
    assert re.search(r"defaults: multi-buffer\s+off: the MTU \(1500\) fits a frame", out), out
    r = afxdp("info", bed.inner, "--json")
    assert r.returncode == 0, r.stderr
    i = json.loads(r.stdout)
    # Two sources agree: libbpf's bpf_xdp_query and the netdev family read directly.
    bits = sum(b for b, n in probe.XDP_FEATURES.items() if n in i["kernel"]["xdp_features"])
    assert bits == i["xdp_features"], i
    # veth has no zero-copy: the kernel does not report its zero-copy segment limit.
    assert i["kernel"]["xdp_zc_max_segs"] is None, i
    assert [m for m in i["kernel"]["missing"] if "xdp_zc_max_segs" in m], i
    rx = [q for q in i["kernel"]["queues"] if q["type"] == "rx"]
    assert [q["id"] for q in rx] == list(range(i["rx_queues"])), i
    r = afxdp("info", "nosuchif0")
    assert r.returncode == 2
    assert r.stderr.startswith("afxdp: ") and "nosuchif0" in r.stderr


def test_bad_arguments_are_reported() -> None:
    r = afxdp("capture", "-c", "0", "-w", "/tmp/x.pcap")
    assert r.returncode == 2 and "--count" in r.stderr
    r = afxdp("forward", "onlyone")
    assert r.returncode == 2 and "both interfaces" in r.stderr
    r = afxdp("verify", "lo", "--dst", "zz")
    assert r.returncode == 2 and "--dst" in r.stderr and "'zz'" in r.stderr
    r = afxdp("verify", "-s", "20")
    assert r.returncode == 2 and "--size" in r.stderr


def test_verify_on_its_own_test_bed() -> None:
    r = afxdp("verify", "-c", "100000")
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"^\s*100,000\s", r.stdout, re.M), r.stdout
    assert "unexplained: 0" in r.stdout
    r = afxdp("verify", "-c", "20000", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    result = json.loads(r.stdout)
    assert result["sent"] == 20000 and result["ok"] is True
    assert result["received"] + result["missing"] == 20000
    assert result["unexplained"] == 0 and result["corrupted"] == result["out_of_order"] == 0
    r = afxdp("verify", "-c", "50000", "-s", "1514", "--window", "256")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "lost 0;" in r.stdout


def test_verify_through_a_forwarder_on_an_interface(
    bed: VethTestbed, capsys: pytest.CaptureFixture[str]
) -> None:
    import afxdp_rs

    with afxdp_rs.XskSocket(bed.peer, 0) as fwd:
        t = threading.Thread(
            target=tools.l2fwd,
            args=(
                fwd,
                60.0,
            ),
        )
        t.start()
        try:
            main(["verify", bed.inner, "-c", "20000", "--window", "256"])
        finally:
            tools.stop_loop(fwd)
            t.join()
    out = capsys.readouterr().out
    assert re.search(r"^\s*20,000\s+20,000\s+0\s+0\s+0\s", out, re.M), out
