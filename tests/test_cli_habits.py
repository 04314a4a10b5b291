"""The command line as users meet it, through the installed ``afxdp`` command: mistakes
end in one line and a documented exit code (never a traceback), SIGTERM and Ctrl-C
leave complete files and a summary, pcap goes through a pipe into tcpdump, verify
says when nothing came back, info lists the host's interfaces, the helper's socket is
private."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import eventually

import afxdp_rs
from afxdp_rs.pcap import PcapReader
from afxdp_rs.testbed import VethTestbed

pytestmark = pytest.mark.kernel

AFXDP = shutil.which("afxdp", path=os.path.dirname(sys.executable)) or "afxdp"


def afxdp(*args: str, netns: str | None = None) -> subprocess.CompletedProcess[str]:
    prefix = ["ip", "netns", "exec", netns] if netns else []
    return subprocess.run(
        [*prefix, AFXDP, *args], capture_output=True, text=True, timeout=90, check=False
    )


def one_line_error(r: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_ordinary_mistakes_are_one_line(tmp_path: Path) -> None:
    one_line_error(afxdp("send", "--from", str(tmp_path / "missing.pcap")), 2, "missing.pcap")
    one_line_error(afxdp("capture", "-c", "5", "-w", str(tmp_path)), 2, str(tmp_path), "director")
    one_line_error(
        afxdp("capture", "-c", "5", "-w", "/nonexistent/d/x.pcap"), 2, "/nonexistent/d/x.pcap"
    )
    one_line_error(afxdp("bench", "rxdrop", "-i", "lo", "-d", "0.2"), 2, "--peer")
    one_line_error(afxdp("info", "nosuchif0"), 2, "nosuchif0")
    one_line_error(afxdp("helper", "lo", "--socket", "/tmp/x", "--socket-mode", "9z"), 2, "9z")
    unwritable = tmp_path / "ro"
    unwritable.mkdir()
    unwritable.chmod(0o500)
    # Root writes anywhere; as a user without CAP_DAC_OVERRIDE the directory refuses.
    r = subprocess.run(
        [
            "setpriv",
            "--inh-caps=-all",
            "--bounding-set=-all,+net_admin,+net_raw,+bpf,+sys_admin,+ipc_lock",
            AFXDP,
            "capture",
            "-c",
            "5",
            "-w",
            str(unwritable / "x.pcap"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    one_line_error(r, 2, "x.pcap", "ermission")


def wait_for_packets(path: Path, at_least: int = 100) -> None:
    eventually(
        lambda: path.exists() and path.stat().st_size > 24 + at_least * (16 + 64),
        f"{at_least} packets in {path}",
        bound=15.0,
        every=0.05,
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_capture_leaves_a_complete_file(tmp_path: Path, sig: int) -> None:
    pcap = tmp_path / "cut.pcap"
    p = subprocess.Popen(
        [AFXDP, "capture", "-d", "60", "-w", str(pcap)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_packets(pcap)
        p.send_signal(sig)
        out, errs = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, errs
    assert "Traceback" not in errs, errs
    m = re.search(r"captured (\d+) packets", out)
    assert m, out
    tcpdump = subprocess.run(
        ["tcpdump", "-r", str(pcap), "-n"], capture_output=True, text=True, check=True
    )
    assert "truncated" not in tcpdump.stderr, tcpdump.stderr
    lines = [x for x in tcpdump.stdout.splitlines() if x and not x[0].isspace()]
    assert len(lines) == int(m.group(1)) == len(PcapReader(str(pcap)).frames())


def test_capture_to_a_pipe_into_tcpdump() -> None:
    shell = f"{AFXDP} capture -c 200 -w - | tcpdump -r - -n"
    r = subprocess.run(["sh", "-c", shell], capture_output=True, text=True, timeout=60, check=True)
    lines = [x for x in r.stdout.splitlines() if x and not x[0].isspace()]
    assert len(lines) == 200, r.stdout[-500:] + r.stderr
    assert "captured 200 packets" in r.stderr and "to standard output" in r.stderr


def test_capture_snaplen(tmp_path: Path) -> None:
    pcap = tmp_path / "snap.pcap"
    r = afxdp("capture", "-c", "20", "--snaplen", "40", "-w", str(pcap))
    assert r.returncode == 0, r.stderr
    out = subprocess.run(
        ["tcpdump", "-r", str(pcap), "-n", "-e"], capture_output=True, text=True, check=True
    ).stdout
    assert out.count("length 64") == 20, out
    assert all(len(f) == 40 for f in PcapReader(str(pcap)).frames())


def test_send_reports_the_rate_it_reached(tmp_path: Path) -> None:
    pcap = tmp_path / "src.pcap"
    assert afxdp("capture", "-c", "100", "-w", str(pcap)).returncode == 0
    r = afxdp("send", "--from", str(pcap), "--loop", "20")
    assert r.returncode == 0, r.stderr
    m = re.search(r"sent 2000 of 2000 packets .* in ([\d.e-]+) s \(([\d,]+) pkt/s\)", r.stdout)
    assert m, r.stdout
    seconds, rate = float(m.group(1)), int(m.group(2).replace(",", ""))
    assert seconds > 0 and abs(rate - 2000 / seconds) <= 0.01 * rate, r.stdout


@pytest.mark.bed()
def test_verify_fails_when_nothing_comes_back(bed: VethTestbed) -> None:
    """Nobody forwards on the far side: every packet is lost, no counter explains it."""
    r = afxdp("verify", bed.inner, "-c", "256", netns=bed.name)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "nothing came back" in r.stdout
    assert "Traceback" not in r.stderr


def test_verify_stopped_prints_its_results() -> None:
    p = subprocess.Popen(
        [AFXDP, "verify", "-c", "100000000", "--window", "64"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert p.stderr is not None
        # Wait until it sends (its first line on stderr), then a little.
        for line in p.stderr:
            if "numbered packets" in line:
                break
        time.sleep(1.0)
        p.send_signal(signal.SIGTERM)
        out, errs = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, out + errs
    assert "stopped (Ctrl-C or SIGTERM)" in out
    assert re.search(r"lost [\d,]+; the kernel counted", out), out
    assert "Traceback" not in errs


def test_verify_old_window_flag_still_works() -> None:
    r = afxdp("verify", "-c", "2000", "-w", "64")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "-w is now --window" in r.stderr


def test_info_lists_the_interfaces_of_the_namespace() -> None:
    r = afxdp("info")
    assert r.returncode == 0, r.stderr
    names = [n for _, n in socket.if_nameindex()]
    for n in names:
        assert re.search(rf"^\s*{re.escape(n)}\s", r.stdout, re.M), r.stdout
    r = afxdp("info", "--json")
    assert {i["ifname"] for i in json.loads(r.stdout)} == set(names)
    r = afxdp("info", "lo")
    assert re.search(r"queues\s+unknown", r.stdout) and "None" not in r.stdout, r.stdout


@pytest.mark.bed()
def test_helper_socket_is_private(bed: VethTestbed, tmp_path: Path) -> None:
    path = tmp_path / "helper.sock"
    modes: list[int] = []
    done = threading.Event()

    def watch() -> None:
        # Until the command has ended, however long it takes to start; the socket is
        # there for the 3 s the helper waits for a worker.
        while not done.is_set():
            if path.exists():
                modes.append(stat.S_IMODE(path.stat().st_mode))
                return
            time.sleep(0.01)

    t = threading.Thread(target=watch)
    t.start()
    try:
        r = afxdp("helper", bed.inner, "--socket", str(path), "--timeout", "3", netns=bed.name)
    finally:
        done.set()
        t.join()
    assert modes == [0o600], modes
    assert r.returncode != 0 and "Traceback" not in r.stderr  # nobody came: timed out


def test_json_results(tmp_path: Path) -> None:
    pcap = tmp_path / "j.pcap"
    r = afxdp("capture", "-c", "50", "-w", str(pcap), "--json")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.splitlines()[-1])
    assert got["packets"] == 50 and got["bytes"] == 50 * 64 and got["kernel_dropped"] == 0
    r = afxdp("send", "--from", str(pcap), "--json")
    assert r.returncode == 0, r.stderr
    sent = json.loads(r.stdout.splitlines()[-1])
    assert sent["sent"] == sent["total"] == 50 and sent["peer_received"] == 50
    one_line_error(afxdp("capture", "-c", "5", "-w", "-", "--json"), 2, "--json")


def test_forward_on_its_test_bed_runs_for_its_duration() -> None:
    """With -d and no count, the test bed's traffic goes on for the whole run."""
    r = afxdp("forward", "-d", "1.5", "--json")
    assert r.returncode == 0, r.stderr
    # JSON lines: one per second of the run (standard output is a pipe), then the result.
    *intervals, last = (json.loads(line) for line in r.stdout.splitlines())
    assert intervals and all("interval" in i for i in intervals), r.stdout
    out = last
    assert out["seconds"] >= 1.5
    assert out["packets"] > 1000, out  # it used to stop at 1,000 and idle
    assert out["test_bed_received"] == out["packets"], out


FOREIGN_XDP = """
__attribute__((section("xdp"), used)) int not_ours(void *ctx) { return 2; }
char _license[] __attribute__((section("license"), used)) = "GPL";
"""


@pytest.mark.bed()
def test_status_and_detach(bed: VethTestbed, tmp_path: Path) -> None:
    with afxdp_rs.XskSocket(bed.inner, 0) as sock:
        r = afxdp("status", bed.inner, "--json", netns=bed.name)
        assert r.returncode == 0, r.stderr
        st = json.loads(r.stdout)
        assert st["ours"] and st["name"].startswith("afxdp_redir") and st["prog_id"] > 0
        assert st["link_id"] is not None
        assert [os.getpid(), Path("/proc/self/comm").read_text().strip()] in st["holders"]
        r = afxdp("status", bed.inner, netns=bed.name)
        assert f"pid {os.getpid()}" in r.stdout and "afxdp_rs's" in r.stdout, r.stdout
        r = afxdp("detach", bed.inner, netns=bed.name)
        assert r.returncode == 0, r.stderr
        assert "detached afxdp_rs's program" in r.stdout and f"pid {os.getpid()}" in r.stdout
        assert afxdp_rs.interface_info(bed.inner)["xdp_prog_id"] == 0
        # The socket that used it says what happened when it waits.
        with pytest.raises(afxdp_rs.ProgramDetachedError):
            sock.recv(1, timeout=1.0)
    r = afxdp("detach", bed.inner, netns=bed.name)
    one_line_error(r, 2, "no XDP program attached")
    # Someone else's program is never removed.
    src, obj = tmp_path / "foreign.c", tmp_path / "foreign.o"
    src.write_text(FOREIGN_XDP)
    subprocess.run(["clang", "-O2", "-target", "bpf", "-c", str(src), "-o", str(obj)], check=True)
    ip = ["ip", "-n", bed.name, "link", "set", "dev", bed.inner]
    subprocess.run([*ip, "xdpgeneric", "obj", str(obj), "sec", "xdp"], check=True)
    try:
        one_line_error(afxdp("detach", bed.inner, netns=bed.name), 1, "not_ours", "not afxdp_rs's")
        assert afxdp_rs.interface_info(bed.inner)["xdp_prog_id"] != 0
        r = afxdp("status", bed.inner, netns=bed.name)
        assert "not afxdp_rs's" in r.stdout and "netlink" in r.stdout, r.stdout
    finally:
        subprocess.run([*ip, "xdpgeneric", "off"], check=True)
