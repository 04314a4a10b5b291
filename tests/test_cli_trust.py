"""The command line a tcpdump, tcpreplay and Wireshark user can trust, through the
installed ``afxdp``: nothing at a path is deleted, nothing is taken from the host
silently, a detached program ends a command, pipes get packets as they come, stopping
is quick and truthful however often the signal comes, warnings are one line, files
open in tcpdump and tshark (pcap and pcapng), and tcpdump's and tcpreplay's habits
work."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import eventually, require_tool, wait_ready
from pyroute2 import IPRoute
from test_cli_habits import AFXDP, afxdp, one_line_error

from afxdp_rs.pcap import PcapReader, PcapWriter
from afxdp_rs.testbed import VethTestbed

pytestmark = [pytest.mark.kernel, pytest.mark.bed()]


def popen(bed: VethTestbed, *args: str) -> subprocess.Popen[str]:
    """Starts a command under test in the test bed's namespace."""
    return subprocess.Popen(
        ["ip", "netns", "exec", bed.name, AFXDP, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(p: subprocess.Popen[str], sig: int | None = signal.SIGTERM) -> tuple[str, str]:
    """Signals a command under test (None: lets it end) and returns its output."""
    try:
        if sig is not None:
            p.send_signal(sig)
        return p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()


def tcpdump_lines(path: Path) -> list[str]:
    r = subprocess.run(["tcpdump", "-r", str(path), "-n"], capture_output=True, text=True)
    assert r.returncode == 0 and "truncated" not in r.stderr, r.stderr
    return [x for x in r.stdout.splitlines() if x and not x[0].isspace()]


def send_frames(bed: VethTestbed, seqs: range, size: int = 64) -> list[bytes]:
    frames = [bed.frame(s, size) for s in seqs]
    with bed.packet_socket(bed.peer) as peer:
        for f in frames:
            peer.send(f)
    return frames


# -- 1. nothing at a path is deleted or taken over -----------------------------------


def test_helper_leaves_a_file_at_its_path_alone(bed: VethTestbed, tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.write_text("precious")
    r = afxdp("helper", bed.inner, "--socket", str(path), "--timeout", "1", netns=bed.name)
    one_line_error(r, 2, str(path), "not a socket", "nothing is deleted")
    assert path.read_text() == "precious"


def test_helper_never_takes_over_a_live_socket(bed: VethTestbed, tmp_path: Path) -> None:
    path = tmp_path / "live.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as other:
        other.bind(str(path))
        other.listen(1)
        r = afxdp("helper", bed.inner, "--socket", str(path), "--timeout", "1", netns=bed.name)
        one_line_error(r, 2, str(path), "in use")
        # Still the other's: a client reaches it.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
            c.connect(str(path))
            conn, _ = other.accept()
            conn.close()


def test_helper_replaces_only_a_stale_socket(bed: VethTestbed, tmp_path: Path) -> None:
    path = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()  # the file stays, nobody listens: a leftover of a killed helper
    r = afxdp("helper", bed.inner, "--socket", str(path), "--timeout", "1", netns=bed.name)
    # It got as far as waiting for a worker on that path, then gave up and cleaned up.
    one_line_error(r, 1, "no worker connected", str(path))
    assert not path.exists()


def test_helper_refuses_queues_the_interface_lacks(bed: VethTestbed, tmp_path: Path) -> None:
    path = tmp_path / "h.sock"
    r = afxdp("helper", bed.inner, "--socket", str(path), "--queues", "5", netns=bed.name)
    one_line_error(r, 2, "queues 0..4", "1 rx queue", "(0..0)")
    assert not path.exists(), "nothing was handed over, nothing was listening"
    assert afxdp("status", bed.inner, netns=bed.name).stdout.count("none") == 1


def test_vhost_user_leaves_a_file_at_its_path_alone(bed: VethTestbed, tmp_path: Path) -> None:
    path = tmp_path / "vm.sock"
    path.write_text("precious")
    r = afxdp("vhost-user", bed.inner, "--socket", str(path), "-d", "1", netns=bed.name)
    one_line_error(r, 2, "not a socket", "nothing is deleted")
    assert path.read_text() == "precious"


# -- 2. a capture never takes a host's traffic silently ------------------------------


@pytest.fixture
def addressed(bed: VethTestbed) -> Iterator[str]:
    """The test bed's inner veth with an address, as an interface a host uses."""
    with IPRoute() as ipr:
        (idx,) = ipr.link_lookup(ifname=bed.inner)
        ipr.addr("add", index=idx, address="192.0.2.1", prefixlen=24)
    try:
        yield bed.inner
    finally:
        with IPRoute() as ipr:
            ipr.addr("del", index=idx, address="192.0.2.1", prefixlen=24)


def test_capture_refuses_to_take_all_of_a_used_interface(
    bed: VethTestbed, addressed: str, tmp_path: Path
) -> None:
    out = tmp_path / "x.pcap"
    r = afxdp("capture", addressed, "-c", "1", "-w", str(out), netns=bed.name)
    one_line_error(r, 2, "192.0.2.1/24", "--take-all", "filter")
    assert not out.exists() or out.stat().st_size <= 24
    assert afxdp_prog_id(bed) == 0, "nothing was attached"


def test_capture_takes_all_of_a_used_interface_when_told(
    bed: VethTestbed, addressed: str, tmp_path: Path
) -> None:
    out = tmp_path / "all.pcap"
    p = popen(bed, "capture", addressed, "--take-all", "-c", "5", "-w", str(out))
    wait_ready(p, addressed)
    frames = send_frames(bed, range(5))
    stdout, stderr = finish(p, None)
    assert p.returncode == 0, stderr
    assert "afxdp: warning: --take-all" in stderr and "192.0.2.1/24" in stderr
    assert PcapReader(str(out)).frames() == frames


def test_a_filtered_capture_on_a_used_interface_says_what_it_takes(
    bed: VethTestbed, addressed: str, tmp_path: Path
) -> None:
    out = tmp_path / "f.pcap"
    p = popen(
        bed, "capture", "-i", addressed, "ether", "proto", "0x88b5", "-c", "3", "-w", str(out)
    )
    wait_ready(p, addressed)
    frames = send_frames(bed, range(3))
    _, stderr = finish(p, None)
    assert p.returncode == 0, stderr
    assert "packets matching 'ether proto 0x88b5' are taken" in stderr
    assert PcapReader(str(out)).frames() == frames


def afxdp_prog_id(bed: VethTestbed) -> int:
    import afxdp_rs

    return int(afxdp_rs.interface_info(bed.inner)["xdp_prog_id"])


# -- 3. a detached program ends a long-running command -------------------------------


@pytest.mark.parametrize("command", ["capture", "vhost-user"])
def test_a_detached_program_ends_the_command(
    bed: VethTestbed, tmp_path: Path, command: str
) -> None:
    if command == "capture":
        args = ["capture", bed.inner, "-w", str(tmp_path / "d.pcap")]
    else:
        args = ["vhost-user", bed.inner, "--socket", str(tmp_path / "vm.sock")]
    p = popen(bed, *args)
    wait_ready(p, bed.inner)
    r = afxdp("detach", bed.inner, netns=bed.name)
    assert r.returncode == 0, r.stderr
    eventually(lambda: p.poll() is not None, f"{command} ending after the detach", bound=30)
    _, stderr = finish(p, None)
    assert p.returncode == 1, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("afxdp: ") and "detached" in last, stderr
    assert "Traceback" not in stderr


# -- 4. a pipe gets packets as they come ---------------------------------------------


def test_capture_to_a_pipe_hands_on_each_batch(bed: VethTestbed) -> None:
    p = subprocess.Popen(
        ["ip", "netns", "exec", bed.name, AFXDP, "capture", bed.inner, "-w", "-"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert p.stdout is not None
    try:
        wait_ready(p.pid, bed.inner)
        fd = p.stdout.fileno()
        got = b""
        for seq in range(5):
            (frame,) = send_frames(bed, range(seq, seq + 1))
            want = 24 + (seq + 1) * (16 + len(frame))
            # The record arrives while capture runs on, before the next is sent.
            while len(got) < want:
                chunk = os.read(fd, 65536)
                assert chunk, "the pipe closed"
                got += chunk
            assert got.endswith(frame)
        p.send_signal(signal.SIGTERM)
        _, errs = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 0, errs
    assert b"captured 5 packets" in errs


def test_a_file_holds_each_packet_while_capture_runs(bed: VethTestbed, tmp_path: Path) -> None:
    """Readers of a growing file (tail -f | tcpdump) see each packet as it comes: with
    -U at once; without it, at the latest when the capture is idle."""
    out = tmp_path / "u.pcap"
    p = popen(bed, "capture", bed.inner, "-U", "-w", str(out))
    try:
        wait_ready(p, bed.inner)
        for seq in range(3):
            send_frames(bed, range(seq, seq + 1))
            size = 24 + (seq + 1) * (16 + 64)

            def holds(size: int = size) -> bool:
                return out.stat().st_size == size

            eventually(holds, f"packet {seq} in the file", bound=30)
    finally:
        _, stderr = finish(p)
    assert p.returncode == 0, stderr
    assert len(tcpdump_lines(out)) == 3


# -- 5. stopping is quick and truthful ------------------------------------------------


def test_a_slow_send_stops_at_once(bed: VethTestbed, tmp_path: Path) -> None:
    src = tmp_path / "two.pcap"
    with PcapWriter(str(src)) as w:
        for s in range(2):
            w.write(bed.frame(s, 64))
    # 0.05 packets/s: the second packet is due 20 s after the first.
    p = popen(bed, "send", bed.inner, "--from", str(src), "--rate", "0.05")
    with bed.packet_socket(bed.peer) as peer:
        peer.settimeout(30)
        peer.recv(2048)  # the first one arrived: the command waits for the second
    started = time.monotonic()
    stdout, stderr = finish(p)
    assert time.monotonic() - started < 15, "it waited for the second packet's time"
    assert p.returncode == 0, stderr
    assert "sent 1 of 2 packets" in stdout, stdout


@pytest.mark.parametrize("signals", [1, 2, 5])
def test_a_long_send_stops_with_its_true_summary(
    bed: VethTestbed, tmp_path: Path, signals: int
) -> None:
    src = tmp_path / "loop.pcap"
    with PcapWriter(str(src)) as w:
        for s in range(8):
            w.write(bed.frame(s, 64))

    def arrived() -> int:
        # What the veth passed to its peer, or dropped (counted as its tx_dropped).
        peer, inner = bed.link_stats(bed.peer), bed.link_stats(bed.inner)
        return peer["rx_packets"] + inner["tx_dropped"]

    before = arrived()
    launched = time.monotonic()
    p = popen(bed, "send", bed.inner, "--from", str(src), "--loop", "100000000", "--json")
    eventually(lambda: arrived() > before + 1000, "sending")
    signalled = time.monotonic()
    # GNU timeout signals the process, then its group; an impatient user signals
    # again while the command is stopping, or printing its summary.
    for k in range(signals):
        if p.poll() is not None:
            break
        p.send_signal(signal.SIGTERM)
        if k:
            time.sleep(0.05)
    stdout, stderr = finish(p, None)
    ended = time.monotonic()
    assert p.returncode == 0, stderr
    # Stopping took seconds at most: before, it went through 100 million empty loops
    # (about 20 s) and its rate counted that time.
    assert ended - signalled < 10, ended - signalled
    result = json.loads(stdout.splitlines()[-1])
    assert result["sent"] == arrived() - before, result
    assert 0 < result["seconds"] <= ended - launched


def test_helper_stopped_while_waiting_says_so(bed: VethTestbed, tmp_path: Path) -> None:
    path = tmp_path / "w.sock"
    p = popen(bed, "helper", bed.inner, "--socket", str(path))
    eventually(path.exists, "the helper listening", bound=60)
    stdout, stderr = finish(p)
    assert p.returncode == 0, stderr
    assert "nothing was handed over" in stdout
    assert not path.exists()


# -- 6. warnings as the command line prints them --------------------------------------


def test_warnings_are_one_line_in_the_command_lines_words(bed: VethTestbed, tmp_path: Path) -> None:
    # The bed's veths have the default offloads: a socket on them warns.
    path = tmp_path / "h.sock"
    r = afxdp("helper", bed.inner, "--socket", str(path), "--timeout", "1", netns=bed.name)
    p = popen(bed, "capture", bed.inner, "-c", "1", "-w", str(tmp_path / "w.pcap"))
    wait_ready(p, bed.inner)
    send_frames(bed, range(1))
    _, stderr = finish(p, None)
    assert "afxdp: warning:" in stderr, stderr
    for text in (r.stderr, stderr):
        assert "AfXdpWarning" not in text and ".py:" not in text, text
        assert "complete_checksums=True" not in text and "fix_offloads" not in text, text
    assert "--no-checksums" in stderr or "--fix-offloads" in stderr, stderr


def test_the_test_bed_commands_do_not_warn_about_their_own_veths() -> None:
    for args in (["demo", "-n", "2000"], ["verify", "-c", "500"], ["capture", "-c", "5"]):
        r = afxdp(*args)
        assert r.returncode == 0, r.stderr
        assert "warning" not in r.stderr and "AfXdpWarning" not in r.stderr, (args, r.stderr)


# -- 7. one prefix, the documented exit codes -----------------------------------------


def test_bad_capture_files_are_usage_errors(tmp_path: Path) -> None:
    header_only = tmp_path / "empty.pcap"
    PcapWriter(str(header_only)).close()
    one_line_error(afxdp("send", "--from", str(header_only)), 2, "holds no packets")
    empty = tmp_path / "zero"
    empty.write_bytes(b"")
    one_line_error(afxdp("send", "--from", str(empty)), 2, "not a capture file", "0 bytes")
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is text\n" * 5)
    one_line_error(afxdp("send", "--from", str(text)), 2, "neither pcap nor pcapng")
    for r in (afxdp("send", "--from", str(text)), afxdp("capture", "-r", str(empty))):
        assert r.stderr.startswith("afxdp: "), r.stderr


def test_without_root_the_prefix_is_the_same(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from afxdp_rs.cli import main

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main(["info"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("afxdp: ") and "root" in err and "Error:" not in err


def test_a_reader_that_goes_away_ends_capture_with_0(bed: VethTestbed) -> None:
    p = popen(bed, "capture", bed.inner)
    assert p.stdout is not None
    wait_ready(p, bed.inner)
    sender = threading.Thread(target=lambda: send_frames(bed, range(50)))
    sender.start()
    line = p.stdout.readline()  # one packet line, like tcpdump ... | head -1
    sender.join()
    assert "ethertype 0x88b5" in line, line
    p.stdout.close()
    send_frames(bed, range(50, 400))  # more lines go to a pipe nobody reads
    eventually(lambda: p.poll() is not None, "capture ending after its reader went", bound=30)
    stderr = p.stderr.read() if p.stderr else ""
    assert p.returncode == 0, stderr
    assert "Traceback" not in stderr


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_a_full_disk_ends_capture_on_a_whole_packet(small_fs: Path) -> None:
    out = small_fs / "full.pcap"
    r = afxdp("capture", "-c", "100000", "-w", str(out))
    assert r.returncode == 1, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("afxdp: ") and str(out) in line and "no space" in line, r.stderr
    m = re.search(r"holds (\d+) whole packets", line)
    assert m, line
    assert len(tcpdump_lines(out)) == int(m.group(1)) > 100
    assert len(PcapReader(str(out)).frames()) == int(m.group(1))


# -- 8. tcpdump's and tcpreplay's habits ------------------------------------------------


def test_packet_lines_read_a_file_and_pcapng(bed: VethTestbed, tmp_path: Path) -> None:
    tshark = require_tool("tshark", "to read pcapng files")
    editcap = require_tool("editcap", "to convert capture files")
    out = tmp_path / "c.pcapng"
    p = popen(bed, "capture", "-i", bed.inner, "-c", "20", "-w", str(out))
    wait_ready(p, bed.inner)
    frames = send_frames(bed, range(20), size=100)
    _, stderr = finish(p, None)
    assert p.returncode == 0, stderr
    # Wireshark's tools read what was written, every byte.
    r = subprocess.run(
        [tshark, "-r", str(out), "-T", "fields", "-e", "frame.len", "-e", "data.data"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = [line.split("\t") for line in r.stdout.splitlines()]
    assert [int(n) for n, _ in rows] == [100] * 20
    assert [bytes.fromhex(d.replace(":", "")) for _, d in rows] == [f[14:] for f in frames]
    # -r prints it (one line per packet, as tcpdump -r); -r -w converts it to pcap.
    r = afxdp("capture", "-r", str(out))
    assert len(r.stdout.splitlines()) == 20 and "length 86" in r.stdout, r.stdout
    classic = tmp_path / "c.pcap"
    afxdp("capture", "-r", str(out), "-w", str(classic))
    assert len(tcpdump_lines(classic)) == 20
    # A pcapng from editcap replays byte-exact, also from standard input.
    ng = tmp_path / "e.pcapng"
    subprocess.run([editcap, "-F", "pcapng", str(classic), str(ng)], check=True)
    with bed.packet_socket(bed.peer) as peer:
        peer.settimeout(10)
        r = afxdp("send", bed.inner, "--from", str(ng), netns=bed.name)
        assert r.returncode == 0 and "sent 20 of 20" in r.stdout, r.stderr
        got = [peer.recv(2048) for _ in range(20)]
        assert sorted(got) == sorted(frames)
        with open(ng, "rb") as f:
            r = subprocess.run(
                ["ip", "netns", "exec", bed.name, AFXDP, "send", "-i", bed.inner, "--from", "-"],
                stdin=f,
                capture_output=True,
                text=True,
                timeout=60,
            )
        assert r.returncode == 0 and "sent 20 of 20" in r.stdout, r.stderr


def test_rotation_by_size_in_a_ring(bed: VethTestbed, tmp_path: Path) -> None:
    base = tmp_path / "ring.pcap"
    # About 0.01 MB per file: 10,000 bytes hold 100 records of 100 bytes (80 payload).
    p = popen(bed, "capture", bed.inner, "-C", "0.01", "-W", "3", "-c", "500", "-w", str(base))
    wait_ready(p, bed.inner)
    send_frames(bed, range(500), size=84)
    _, stderr = finish(p, None)
    assert p.returncode == 0, stderr
    names = sorted(x.name for x in tmp_path.iterdir())
    assert names == ["ring.pcap0", "ring.pcap1", "ring.pcap2"], names
    counts = [len(tcpdump_lines(tmp_path / n)) for n in names]
    assert all(0 < c <= 100 for c in counts), counts


def test_rotation_by_time_stops_after_its_files(bed: VethTestbed, tmp_path: Path) -> None:
    pattern = tmp_path / "t-%s.pcap"
    # One file a second, named by the time in seconds (strftime's %s): two names.
    r = afxdp("capture", bed.inner, "-G", "1", "-W", "2", "-w", str(pattern), netns=bed.name)
    assert r.returncode == 0, r.stderr
    files = sorted(tmp_path.glob("t-*.pcap"))
    assert len(files) == 2, files
    for f in files:
        assert tcpdump_lines(f) == []  # no traffic, but each file opens


def _gaps(frames_at: list[float]) -> list[float]:
    return [b - a for a, b in zip(frames_at, frames_at[1:], strict=False)]


def test_replay_at_the_recorded_timing_and_faster(bed: VethTestbed, tmp_path: Path) -> None:
    src = tmp_path / "timed.pcap"
    with PcapWriter(str(src)) as w:
        for s in range(5):
            w.write(bed.frame(s, 64), ts=1000.0 + s * 0.4)  # 1.6 s as recorded
    for args, span in ((["--timing"], 1.6), (["-x", "4"], 0.4)):
        r = afxdp("send", bed.inner, "--from", str(src), "--json", *args, netns=bed.name)
        assert r.returncode == 0, r.stderr
        result = json.loads(r.stdout.splitlines()[-1])
        assert result["sent"] == 5
        # It cannot be faster than the schedule (the bound above is not checked: it
        # depends on the machine).
        assert result["seconds"] >= span, (args, result)


def test_mbps_and_duration(bed: VethTestbed, tmp_path: Path) -> None:
    src = tmp_path / "m.pcap"
    with PcapWriter(str(src)) as w:
        for s in range(10):
            w.write(bed.frame(s, 1000))
    # 10 frames of 8,000 bits at 0.08 Mbit/s: 1 s per pass; stopped after 1.5 s.
    r = afxdp(
        "send",
        bed.inner,
        "--from",
        str(src),
        "-M",
        "0.08",
        "-l",
        "100",
        "--duration",
        "1.5",
        "--json",
        netns=bed.name,
    )
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout.splitlines()[-1])
    assert result["seconds"] >= 1.5
    # At most what the schedule allows in the time it ran (one pass a second).
    assert 10 <= result["sent"] <= 10 * (int(result["seconds"]) + 1), result


def test_interval_lines_when_stdout_is_not_a_terminal(bed: VethTestbed, tmp_path: Path) -> None:
    src = tmp_path / "i.pcap"
    with PcapWriter(str(src)) as w:
        w.write(bed.frame(0, 64))
    r = afxdp(
        "send",
        bed.inner,
        "--from",
        str(src),
        "--rate",
        "20",
        "-l",
        "50",
        "--interval",
        "0.5",
        netns=bed.name,
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    intervals = [x for x in lines if re.match(r"^\s*[\d.]+ s\s+[\d,]+ packets", x)]
    assert len(intervals) >= 3 and lines[-1].startswith("sent 50 of 50"), r.stdout


def test_status_shows_which_queue_takes_what(bed: VethTestbed) -> None:
    import afxdp_rs

    with afxdp_rs.XskSocket(bed.inner, 0, match="udp and dst port 53"):
        r = afxdp("status", bed.inner, "--json", netns=bed.name)
        assert r.returncode == 0, r.stderr
        (q,) = json.loads(r.stdout)["queues"]
        assert q["queue"] == 0 and "udp" in q["takes"] and "53" in q["takes"], q
        r = afxdp("status", bed.inner, netns=bed.name)
        assert re.search(r"rx queue 0\s+packets matching .*53", r.stdout), r.stdout
    with afxdp_rs.XskSocket(bed.inner, 0):
        r = afxdp("status", bed.inner, netns=bed.name)
        assert re.search(r"rx queue 0\s+every packet", r.stdout), r.stdout
