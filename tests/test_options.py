"""Every option of QEMU's AF_XDP backend, end to end on a 4-queue veth pair: queues and
start-queue (own and shared UMEM), inhibit with an external XSKMAP (fd and pinned path)
or handed-over sockets, unprivileged use, lifecycle, and every kernel counter."""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest
from conftest import eventually, start_helper, without_privileges

import afxdp_rs
from afxdp_rs import privileged, tools
from afxdp_rs.testbed import ETH_P_AFXDP_TEST, VethTestbed
from afxdp_rs.types import XdpMode

QUEUES = 4
pytestmark = [pytest.mark.kernel, pytest.mark.bed(queues=QUEUES)]


@pytest.fixture(scope="module")
def generators(bed: VethTestbed) -> Iterator[list[afxdp_rs.XskSocket]]:
    """A send-only AF_XDP socket on each queue of the peer: what one sends on tx queue
    k arrives on rx queue k of the inner end."""
    gens = [afxdp_rs.XskSocket(bed.peer, q, rx_size=0) for q in range(QUEUES)]
    yield gens
    for g in gens:
        g.close()


def tagged(bed: VethTestbed, queue: int, i: int) -> bytes:
    return bed.frame(queue * 100_000 + i, 60 + i % 200)


def origin(data: bytes) -> int:
    """The peer tx queue a test frame was sent on."""
    assert struct.unpack_from("!H", data, 12)[0] == ETH_P_AFXDP_TEST, data[:14].hex()
    return int(struct.unpack_from("!I", data, 14)[0]) // 100_000


def send_from(gens: list[afxdp_rs.XskSocket], bed: VethTestbed, queue: int, n: int) -> None:
    frames = [tagged(bed, queue, i) for i in range(n)]
    assert gens[queue].send(frames, timeout=2.0) == n
    assert gens[queue].flush(timeout=2.0)


def drain(sock: afxdp_rs.XskSocket, want: int | None, timeout: float = 0.3) -> list[bytes]:
    """Receives until `want` packets came, or until nothing comes for `timeout` s."""
    got: list[bytes] = []
    while want is None or len(got) < want:
        with sock.recv(256, timeout=timeout) as batch:
            if len(batch) == 0:
                break
            got.extend(batch.to_list())
    return got


@pytest.mark.parametrize("shared", [False, True], ids=["own-umem", "shared-umem"])
def test_each_queue_gets_its_own_traffic(
    bed: VethTestbed, generators: list[afxdp_rs.XskSocket], shared: bool
) -> None:
    n = 300
    socks = afxdp_rs.open_queues(
        bed.inner, QUEUES, 0, shared_umem=shared, frame_count=1024, mode="native"
    )
    try:
        assert [s.queue for s in socks] == [0, 1, 2, 3]
        ranges = [s.frames for s in socks]
        if shared:
            assert ranges == [(0, 1024), (1024, 2048), (2048, 3072), (3072, 4096)]
        else:
            assert ranges == [(0, 1024)] * QUEUES
        for q in range(QUEUES):
            send_from(generators, bed, q, n)
        for q, sock in enumerate(socks):
            got = drain(sock, n)
            assert {origin(d) for d in got} == {q}, f"queue {q} got foreign traffic"
            assert got == [tagged(bed, q, i) for i in range(n)]
        for sock in socks:
            assert drain(sock, None, timeout=0.05) == [], "nothing more on any queue"
            stats = sock.statistics()
            assert stats["rx_dropped"] == stats["rx_ring_full"] == 0
    finally:
        for s in socks:
            s.close()
    assert bed.xdp_state(bed.inner) == ("none", 0)


def test_start_queue_leaves_other_queues_to_the_stack(
    bed: VethTestbed, generators: list[afxdp_rs.XskSocket]
) -> None:
    socks = afxdp_rs.open_queues(bed.inner, queues=2, start_queue=2, mode="native")
    try:
        assert [s.queue for s in socks] == [2, 3]
        before = bed.link_stats(bed.inner)["rx_packets"]
        for q in range(QUEUES):
            send_from(generators, bed, q, 50)
        for sock in socks:
            got = drain(sock, 50)
            assert [origin(d) for d in got] == [sock.queue] * 50
            assert drain(sock, None, timeout=0.05) == []
        # Queues 0 and 1 have no socket: the program passed their packets to the stack.
        assert bed.link_stats(bed.inner)["rx_packets"] - before >= 100
    finally:
        for s in socks:
            s.close()


def test_open_queues_cleans_up_on_error(bed: VethTestbed) -> None:
    # A range past the interface's queues is refused before anything opens.
    with pytest.raises(afxdp_rs.QueueError, match=r"queues 2\.\.4 of .*4 rx queues.*at most 2"):
        afxdp_rs.open_queues(bed.inner, queues=3, start_queue=2)
    assert bed.xdp_state(bed.inner) == ("none", 0), "nothing was attached"
    with pytest.raises(afxdp_rs.ConfigError, match="queues=0"):
        afxdp_rs.open_queues(bed.inner, queues=0)
    # A failure on the way (queue 3 is taken) closes the sockets opened before it.
    with afxdp_rs.XskSocket(bed.inner, 3):
        with pytest.raises(afxdp_rs.BusyError):
            afxdp_rs.open_queues(bed.inner, queues=2, start_queue=2)
        with afxdp_rs.XskSocket(bed.inner, 2) as again:
            assert again.queue == 2, "queue 2's socket was closed"


def test_shared_umem_frames_must_not_overlap(bed: VethTestbed) -> None:
    with afxdp_rs.XskSocket(bed.inner, 0, frame_count=1024, frames=(0, 512)) as owner:
        with pytest.raises(afxdp_rs.ConfigError, match=r"frames=\(256, 768\) overlaps"):
            afxdp_rs.XskSocket(bed.inner, 1, shared_umem=owner, frames=(256, 768))
        with pytest.raises(afxdp_rs.ConfigError, match=r"frames=\(512, 2048\)"):
            afxdp_rs.XskSocket(bed.inner, 1, shared_umem=owner, frames=(512, 2048))
        with afxdp_rs.XskSocket(bed.inner, 1, shared_umem=owner, frames=(512, 1024)) as s:
            assert s.frames == (512, 1024)
        # Closing gave the range back.
        afxdp_rs.XskSocket(bed.inner, 1, shared_umem=owner, frames=(512, 1024)).close()


def test_frames_of_a_live_batch_stay_reserved(
    bed: VethTestbed, generators: list[afxdp_rs.XskSocket]
) -> None:
    """A closed socket's frames go to no other socket while a batch still reads them."""
    with afxdp_rs.XskSocket(bed.inner, 0, frame_count=1024, frames=(0, 512)) as owner:
        second = afxdp_rs.XskSocket(bed.inner, 1, shared_umem=owner, frames=(512, 1024))
        send_from(generators, bed, 1, 5)
        batch = second.recv(8, timeout=2.0)
        assert len(batch) == 5
        second.close()
        with pytest.raises(afxdp_rs.ConfigError, match="overlaps"):
            afxdp_rs.XskSocket(bed.inner, 1, shared_umem=owner, frames=(512, 1024))
        assert batch.to_list() == [tagged(bed, 1, i) for i in range(5)]
        batch.release()
        del batch
        afxdp_rs.XskSocket(bed.inner, 1, shared_umem=owner, frames=(512, 1024)).close()


def test_rx_never_starves_tx(bed: VethTestbed, generators: list[afxdp_rs.XskSocket]) -> None:
    """With as many frames as the fill ring holds, some stay for sending."""
    with afxdp_rs.XskSocket(
        bed.inner, 0, frame_count=64, fill_size=64, rx_size=64, tx_size=64, comp_size=64
    ) as sock:
        assert sock.statistics()["free_frames"] == 32, "half kept back for tx"
        assert sock.send([bed.frame(i, 64, to_inner=False) for i in range(200)], timeout=5) == 200
        assert sock.flush(timeout=5.0)
        # Only 32 frames are on the fill ring: of a burst of 40, what finds no frame is
        # dropped and counted, none silently.
        send_from(generators, bed, 0, 40)
        got = drain(sock, 40)
        st = sock.statistics()
        assert len(got) >= 32
        assert len(got) + st["rx_dropped"] == 40, st
        assert st["rx_dropped"] == st["rx_fill_ring_empty_descs"], st


@pytest.mark.parametrize("mode", ["native", "skb", "auto"])
def test_mode_and_copy_reporting(bed: VethTestbed, mode: XdpMode) -> None:
    with afxdp_rs.XskSocket(bed.inner, 0, mode=mode, bind="copy") as sock:
        expected = "native" if mode == "auto" else mode  # veth takes native XDP
        assert sock.attach_mode == expected
        assert bed.xdp_state(bed.inner)[0] == expected
        assert sock.zerocopy is False


def test_inhibit_with_xsks_map_fd(bed: VethTestbed, generators: list[afxdp_rs.XskSocket]) -> None:
    """Someone else attached the program; we only insert our socket in its XSKMAP."""
    with afxdp_rs.XdpProgram(bed.inner, "skb") as prog:
        state = bed.xdp_state(bed.inner)
        assert state == ("skb", prog.prog_id)
        sock = afxdp_rs.XskSocket(bed.inner, 0, inhibit=True, xsks_map_fd=prog.xsks_map_fd)
        assert sock.attach_mode is None  # we attached nothing
        send_from(generators, bed, 0, 20)
        assert [origin(d) for d in drain(sock, 20)] == [0] * 20
        sock.close()
        assert bed.xdp_state(bed.inner) == state, "closing our socket leaves their program"
    assert bed.xdp_state(bed.inner) == ("none", 0)


@pytest.fixture(scope="module")
def bpffs() -> Iterator[str]:
    """A bpf filesystem to pin maps in (mounted here if the machine has none)."""
    path = "/sys/fs/bpf"
    mounted = subprocess.run(["mountpoint", "-q", path], check=False).returncode == 0
    if not mounted:
        subprocess.run(["mount", "-t", "bpf", "bpf", path], check=True)
    yield path
    if not mounted:
        subprocess.run(["umount", path], check=True)


def test_inhibit_with_pinned_xsks_map(
    bed: VethTestbed, generators: list[afxdp_rs.XskSocket], bpffs: str
) -> None:
    pin = f"{bpffs}/afxdp-test-{os.getpid()}-xsks"
    with afxdp_rs.XdpProgram(bed.inner, "native") as prog:
        prog.pin_map(pin)
        try:
            with afxdp_rs.XskSocket(bed.inner, 1, inhibit=True, xsks_map_path=pin) as sock:
                send_from(generators, bed, 1, 20)
                assert [origin(d) for d in drain(sock, 20)] == [1] * 20
        finally:
            os.unlink(pin)
        assert bed.xdp_state(bed.inner)[1] == prog.prog_id


def test_inhibit_misuse(bed: VethTestbed, tmp_path: object) -> None:
    with pytest.raises(afxdp_rs.ConfigError, match="inhibit=True loads no XDP program"):
        afxdp_rs.XskSocket(bed.inner, 0, inhibit=True)
    with pytest.raises(afxdp_rs.ConfigError, match="pass inhibit=True"):
        afxdp_rs.XskSocket(bed.inner, 0, xsks_map_fd=0)
    with (
        open(os.devnull) as f,
        pytest.raises(afxdp_rs.ConfigError, match=rf"xsks_map_fd={f.fileno()} is not an XSKMAP"),
    ):
        afxdp_rs.XskSocket(bed.inner, 0, inhibit=True, xsks_map_fd=f.fileno())
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
        pytest.raises(afxdp_rs.ConfigError, match=r"sock_fd=\d+ is not an AF_XDP socket"),
    ):
        afxdp_rs.XskSocket(bed.inner, 0, inhibit=True, sock_fd=udp.fileno())
    with pytest.raises(afxdp_rs.ConfigError, match="xsks_map_path=.*cannot be opened"):
        afxdp_rs.XskSocket(bed.inner, 0, inhibit=True, xsks_map_path="/nonexistent/map")
    with pytest.raises(afxdp_rs.ConfigError, match="sock_fd=999999 is not an open"):
        afxdp_rs.XskSocket(bed.inner, 0, inhibit=True, sock_fd=999999)


def test_sock_fds_handover_in_process(
    bed: VethTestbed, generators: list[afxdp_rs.XskSocket], tmp_path: object
) -> None:
    """The helper serves on a Unix socket; the worker (here: this process) receives."""
    path = f"/tmp/afxdp-test-{os.getpid()}.sock"
    helper = start_helper(path, bed.inner, 2, start_queue=1)
    handover = privileged.receive(path)
    helper.join(timeout=10)
    assert not helper.is_alive()
    assert handover.queues == [1, 2] and handover.mode == "native"
    # The helper has closed everything it had: only our descriptors keep the program.
    assert bed.xdp_state(bed.inner) == ("native", handover.prog_id)
    socks = handover.open_sockets(frame_count=512)
    try:
        for sock in socks:
            send_from(generators, bed, sock.queue, 30)
            assert [origin(d) for d in drain(sock, 30)] == [sock.queue] * 30
        socks[0].close()
        assert bed.xdp_state(bed.inner)[1] == handover.prog_id, "one socket still holds it"
    finally:
        for s in socks:
            s.close()
    assert bed.xdp_state(bed.inner) == ("none", 0), "the last socket took the program away"


WORKER = textwrap.dedent(
    """
    import json, sys
    import afxdp_rs
    from afxdp_rs import privileged

    def caps(field):
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1], 16)

    ifname, path = sys.argv[1], sys.argv[2]
    out = {"CapEff": caps("CapEff"), "CapBnd": caps("CapBnd")}
    try:
        afxdp_rs.XskSocket(ifname, 0)
    except afxdp_rs.PrivilegeError as e:
        out["own_socket"] = str(e)
    handover = privileged.receive(path)
    try:
        handover.open_sockets()  # 16 MiB of UMEM: over the limit
    except afxdp_rs.MemlockError as e:
        out["memlock"] = str(e)
    socks = handover.open_sockets(frame_count=256, frame_size=2048, fill_size=128,
                                  comp_size=128, rx_size=128, tx_size=128)
    print(json.dumps(out), flush=True)
    sock = socks[0]
    got = []
    while len(got) < 50:
        with sock.recv(64, timeout=5.0) as batch:
            if len(batch) == 0:
                break
            got.extend(batch.to_list())
    # Echo every packet back with the MAC addresses swapped.
    replies = [d[6:12] + d[0:6] + d[12:] for d in got]
    sent = sock.send(replies, timeout=5.0)
    sock.flush(timeout=5.0)
    print(json.dumps({"received": len(got), "sent": sent,
                      "stats": sock.statistics()}), flush=True)
    """
)


def test_unprivileged_worker() -> None:
    """A child without any capability, with 1 MiB of locked memory, receives and sends
    on sockets a privileged helper handed over.

    On a one-queue pair of its own: the peer sends with AF_PACKET, and which tx queue
    the kernel picks for that (and so which rx queue the frames reach) differs between
    machines."""
    with VethTestbed() as bed:
        _unprivileged_worker(bed)


def _unprivileged_worker(bed: VethTestbed) -> None:
    path = f"/tmp/afxdp-test-{os.getpid()}-unpriv.sock"
    helper = start_helper(path, bed.inner, 1)
    limit = 1 << 20
    child = subprocess.Popen(
        [
            *without_privileges(limit),
            sys.executable,
            "-c",
            WORKER,
            bed.inner,
            path,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line, child.stderr.read() if child.stderr else ""
        first = json.loads(line)
        assert first["CapEff"] == 0 and first["CapBnd"] == 0, first
        assert "CAP_NET_RAW" in first["own_socket"]
        assert "16777216 bytes" in first["memlock"] and "ulimit -l" in first["memlock"]
        with bed.packet_socket(bed.peer) as peer:
            peer.settimeout(5.0)
            frames = [bed.frame(i, 64 + i) for i in range(50)]
            for f in frames:
                peer.send(f)
            echoed: list[bytes] = []
            while len(echoed) < 50:
                data, addr = peer.recvfrom(4096)
                if addr[2] != socket.PACKET_OUTGOING:
                    echoed.append(data)
        assert echoed == [f[6:12] + f[0:6] + f[12:] for f in frames]
        second = json.loads(child.stdout.readline())
        assert second["received"] == 50 and second["sent"] == 50, second
        assert child.wait(timeout=10) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        helper.join(timeout=20)
    eventually(
        lambda: bed.xdp_state(bed.inner) == ("none", 0), "the worker is gone: so is the program"
    )


def test_program_stays_until_the_last_socket_closes(
    bed: VethTestbed, generators: list[afxdp_rs.XskSocket]
) -> None:
    a = afxdp_rs.XskSocket(bed.inner, 0)
    b = afxdp_rs.XskSocket(bed.inner, 1)
    prog_id = bed.xdp_state(bed.inner)[1]
    a.close()
    assert bed.xdp_state(bed.inner)[1] == prog_id
    send_from(generators, bed, 1, 10)
    assert len(drain(b, 10)) == 10
    b.close()
    assert bed.xdp_state(bed.inner) == ("none", 0)


def test_reopen_same_queue_right_after_close(
    bed: VethTestbed, generators: list[afxdp_rs.XskSocket]
) -> None:
    """The kernel tears sockets down asynchronously; reopening retries EBUSY briefly."""
    for i in range(20):
        with afxdp_rs.XskSocket(bed.inner, 2) as sock:
            send_from(generators, bed, 2, 1)
            assert [origin(d) for d in drain(sock, 1)] == [2], f"round {i}"


def test_queue_in_use_is_reported(bed: VethTestbed) -> None:
    with afxdp_rs.XskSocket(bed.inner, 3):
        # A second socket on the same queue: bind is retried briefly, then refused.
        with pytest.raises(afxdp_rs.BusyError, match="queue 3 is in use") as info:
            afxdp_rs.XskSocket(bed.inner, 3, load_program=False)
        assert info.value.errno == 16  # EBUSY


def test_statistics_counters(bed: VethTestbed, generators: list[afxdp_rs.XskSocket]) -> None:
    """Each XDP_STATISTICS counter, provoked."""
    # rx_ring_full: a small rx ring nobody drains.
    with afxdp_rs.XskSocket(bed.inner, 0, rx_size=64, fill_size=256, frame_count=512) as s:
        send_from(generators, bed, 0, 200)
        st = s.statistics()
        assert st["rx_ring_full"] == 136 and st["rx_dropped"] == 0, st
        assert len(drain(s, 64)) == 64
    # rx_fill_ring_empty_descs and rx_dropped: every frame held in a batch, none to fill.
    with afxdp_rs.XskSocket(
        bed.inner, 0, frame_count=64, fill_size=64, rx_size=64, comp_size=64, tx_size=0
    ) as s:
        send_from(generators, bed, 0, 64)
        held = s.recv(64, timeout=2.0)
        assert len(held) == 64
        send_from(generators, bed, 0, 30)
        st = s.statistics()
        assert st["rx_dropped"] == 30 and st["rx_fill_ring_empty_descs"] == 30, st
        held.release()
        # rx_invalid_descs: the kernel never finds an rx descriptor invalid (a bad
        # fill-ring address is skipped without being counted here): stays 0.
        tools.post_fill_unchecked(s, 1 << 40)
        send_from(generators, bed, 0, 10)
        assert s.statistics()["rx_invalid_descs"] == 0
    # tx_invalid_descs: descriptors that bypass the library's checks.
    with afxdp_rs.XskSocket(bed.inner, 0) as s:
        tools.post_tx_unchecked(s, 1 << 40, 64)  # outside the UMEM
        last_frame = (4096 - 1) * s.frame_size  # free: nothing was sent yet
        tools.post_tx_unchecked(s, last_frame, 5000)  # longer than a frame
        st = s.statistics()
        assert st["tx_invalid_descs"] == 2, st
        # The address outside the UMEM is never taken into the pool. The frame of the
        # too-long one: Linux 6.18.44 hands it back on the completion ring (once), and
        # it is free again; Debian's 6.18.15 (copy mode) keeps it, and it stays
        # outstanding. Either way every frame is accounted for.
        if st["tx_outstanding"] == 0:
            assert st["invalid_completions"] == 1, st
            assert st["free_frames"] + 2048 == 4096, st
        else:
            assert st["tx_outstanding"] == 1, st
            assert st["free_frames"] + 1 + 2048 == 4096, st
    with afxdp_rs.XskSocket(bed.inner, 0) as s:
        # Through the API nothing invalid reaches the kernel.
        assert s.send([bed.frame(i, 64) for i in range(100)], timeout=1.0) == 100
        assert s.flush(timeout=1.0)
        st = s.statistics()
        assert st["tx_invalid_descs"] == 0, st
        # tx_ring_empty_descs: woken to send, the kernel drained the ring and then
        # found it empty.
        assert st["tx_ring_empty_descs"] >= 1, st
