"""A real QEMU guest whose NIC is served by afxdp_rs's vhost-user backend: the guest's
kernel stack talks through AF_XDP sockets on one end of a veth pair to a kernel stack
on the other end (ping, TCP each way with sha256), with two queue pairs, across a
guest reboot, a backend restart (in-process, as client, and after SIGKILL), with
two VMs on two queues of one interface served by two processes, and with one queue
pair flooded or starved by its guest while the other is measured.

The guest runs under TCG (KVM does not work on this machine kind) with its NIC on
legacy interrupts (``vectors=0``): QEMU 7.2 crashes when a vhost-user device uses
MSI-X without KVM. Host-to-guest traffic that must reach a given queue is sent from
that queue of the far end with an AF_XDP socket (a veth delivers a packet on the rx
queue numbered like the tx queue it was sent on), never left to the kernel's choice.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import eventually, require_tool
from guest import Guest, build_image
from packets import frame
from pyroute2 import IPRoute

import afxdp_rs
from afxdp_rs.testbed import VethTestbed
from afxdp_rs.vhost import VhostUser, qemu_args

# Two queues on xdp0/xdp1 (10.0.1.0/24) for the multi-queue and two-VM cases; a
# one-queue pair vm0/vm1 (10.0.0.0/24) for the rest, where the kernel's replies may go
# anywhere because there is only one queue.
pytestmark = [pytest.mark.kernel, pytest.mark.bed(queues=2, veths=[("vm0", "vm1")])]

ONE = ("vm0", "vm1", "10.0.0.1")
TWO = ("xdp0", "xdp1", "10.0.1.1")
MAC_A = "52:54:00:00:0a:02"
MAC_B = "52:54:00:00:0b:03"
DRIVER_ERRORS = (
    "tx_drop_bad_chain",
    "tx_drop_too_large",
    "tx_drop_port_refused",
    "rx_bad_chain",
    "rx_drop_too_large",
    "ring_errors",
)


@pytest.fixture(scope="session")
def image() -> Path:
    """The guest (built by scripts/setup.sh; a no-op then). Asked for before `net`, so
    that a build that must download runs outside the test bed's namespace."""
    require_tool("qemu-system-x86_64", "the vhost-user tests boot a QEMU guest")
    return build_image()


@pytest.fixture(scope="module")
def net(bed: VethTestbed) -> VethTestbed:
    """The far ends get their addresses: the host the guests talk to."""
    with IPRoute() as ipr:
        for _, far, address in (ONE, TWO):
            (idx,) = ipr.link_lookup(ifname=far)
            ipr.addr("add", index=idx, address=address, prefixlen=24)
    return bed


@pytest.fixture
def sock_path(tmp_path: Path) -> Path:
    return tmp_path / "vm.sock"


def boot(
    image: Path,
    path: Path,
    ip: str,
    mac: str = MAC_A,
    queues: int = 1,
    client: bool = False,
    name: str = "afxdp-vm",
) -> Guest:
    args = qemu_args(path, queues=queues, memory=None, mac=mac, client=client, kvm=False)
    g = Guest(
        image,
        args,
        cmdline_extra=f"afxdp.ip={ip}/24",
        name=name,
        smp=queues,
        # One host thread for all vCPUs: the 2-CPU guest costs what a 1-CPU one does.
        accel="tcg,thread=single" if queues > 1 else "tcg",
    )
    try:
        g.wait_ready(90)
    except BaseException:
        g.close()
        raise
    return g


def ping(g: Guest, host: str, count: int = 10) -> None:
    out = g.check(f"ping -c {count} -i 0.2 -W 2 {host}", timeout=60)
    assert f"{count} packets received, 0% packet loss" in out, out


def guest_to_host(g: Guest, host: str, size: int = 1 << 20, port: int = 5001) -> None:
    """TCP from the guest: what the host reads hashes like what the guest sent."""
    srv = socket.create_server((host, port))
    srv.settimeout(60)
    got: dict[str, object] = {}

    def take() -> None:
        conn, _ = srv.accept()
        h, n = hashlib.sha256(), 0
        with conn:
            conn.settimeout(60)
            while chunk := conn.recv(1 << 16):
                h.update(chunk)
                n += len(chunk)
        got.update(sha=h.hexdigest(), n=n)

    t = threading.Thread(target=take)
    t.start()
    try:
        out = g.check(
            f"dd if=/dev/urandom of=/tmp/out bs=1024 count={size // 1024} 2>/dev/null && "
            f"nc {host} {port} < /tmp/out && sha256sum /tmp/out",
            timeout=120,
        )
    finally:
        t.join(60)
        srv.close()
    assert got == {"sha": out.split()[0], "n": size}


def host_to_guest(g: Guest, ip: str, size: int = 1 << 20, port: int = 5002) -> None:
    """TCP to the guest: what the guest wrote to disk hashes like what the host sent."""
    g.check(f"rm -f /tmp/in; (nc -l -p {port} > /tmp/in &)")
    data = os.urandom(size)
    deadline = time.monotonic() + 20
    while True:
        try:
            conn = socket.create_connection((ip, port), timeout=10)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    with conn:
        conn.sendall(data)
    out = g.check(
        f"while [ $(wc -c < /tmp/in) -lt {size} ]; do sleep 0.1; done; sha256sum /tmp/in",
        timeout=120,
    )
    assert out.split()[0] == hashlib.sha256(data).hexdigest()


def clean(stats: list[dict[str, object]]) -> None:
    """Nothing refused on the device side (the guest posts good descriptors)."""
    for q in stats:
        assert all(q[k] == 0 for k in DRIVER_ERRORS), q


def guest_snmp(g: Guest, proto: str) -> dict[str, int]:
    """The guest's protocol counters (its /proc/net/snmp)."""
    rows = [line.split() for line in g.check("cat /proc/net/snmp").splitlines()]
    found = [r for r in rows if r and r[0] == f"{proto}:"]
    return dict(zip(found[0][1:], map(int, found[1][1:]), strict=True))


def guest_udp(g: Guest) -> dict[str, int]:
    return guest_snmp(g, "Udp")


def mac_of(ifname: str) -> bytes:
    with IPRoute() as ipr:
        (link,) = ipr.get_links(ifname=ifname)
        return bytes.fromhex(link.get_attr("IFLA_ADDRESS").replace(":", ""))


def send_from(far: str, queue: int, frames: list[bytes]) -> None:
    """Sends from `queue` of the far end, so the frames arrive on the same queue of
    our end."""
    with afxdp_rs.XskSocket(far, queue, rx_size=0) as s:
        assert s.send(frames, timeout=5.0) == len(frames)
        s.flush(timeout=5.0)


def send_to_guest(far: str, queue: int, mac: str, ip: str, host: str, count: int) -> None:
    """`count` UDP datagrams to the guest through `queue`: half with complete
    checksums, half left partial as an offloading sender leaves them, which the
    backend must complete."""
    src, dst = mac_of(far), bytes.fromhex(mac.replace(":", ""))
    send_from(
        far,
        queue,
        [
            frame(
                dst,
                src,
                host,
                ip,
                "udp",
                i.to_bytes(8, "big") * 8,
                "partial" if i % 2 else "complete",
            )
            for i in range(count)
        ],
    )


def introduce(far: str, queue: int, mac: str, ip: str, host: str) -> None:
    """An ARP request from the host to the guest through `queue`: the guest learns the
    host's address from it, so that its own packets need no ARP reply (which the kernel
    would send on a queue of its choosing)."""
    src, dst = mac_of(far), bytes.fromhex(mac.replace(":", ""))
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)
    arp += src + socket.inet_aton(host) + bytes(6) + socket.inet_aton(ip)
    send_from(far, queue, [dst + src + b"\x08\x06" + arp + bytes(18)])


def test_ping_and_tcp_each_way(image: Path, net: VethTestbed, sock_path: Path) -> None:
    ours, far, host = ONE
    # The far end offloads its checksums: its TCP segments reach the guest (which is
    # offered no checksum offload) only if the backend completes them.
    k = subprocess.run(["ethtool", "-k", far], capture_output=True, text=True, check=True)
    assert "tx-checksum-ip-generic: on" in k.stdout
    with VhostUser(ours, sock_path) as dev, boot(image, sock_path, "10.0.0.2") as g:
        assert dev.connected and dev.connections == 1
        ping(g, host)
        guest_to_host(g, host)
        host_to_guest(g, "10.0.0.2")
        stats = dev.statistics()
    (q,) = stats
    clean(stats)
    assert q["tx_packets"] > 700 and q["rx_packets"] > 700, q
    assert q["tx_bytes"] > 1 << 20 and q["rx_bytes"] > 1 << 20, q
    assert not sock_path.exists(), "the socket file is removed on stop"


def test_two_queue_pairs_both_carry_traffic(image: Path, net: VethTestbed, sock_path: Path) -> None:
    ours, far, host = TWO
    ip = "10.0.1.2"
    with VhostUser(ours, sock_path, queues=2) as dev, boot(image, sock_path, ip, queues=2) as g:
        # Two CPUs, two queue pairs: the guest sends from CPU i on tx queue i.
        assert g.check("cat /sys/class/net/eth0/queues/tx-0/xps_cpus").strip() == "1"
        assert g.check("cat /sys/class/net/eth0/queues/tx-1/xps_cpus").strip() == "2"
        before = dev.statistics()
        g.check(f"taskset 1 ping -c 5 -i 0.2 -W 2 {host}; taskset 2 ping -c 5 -i 0.2 -W 2 {host}")
        mid = dev.statistics()
        for b, m in zip(before, mid, strict=True):
            assert m["tx_packets"] - b["tx_packets"] >= 5, (b, m)
        # Datagrams sent to each queue reach the guest's stack, checksums verified.
        udp0 = guest_udp(g)
        for queue in (0, 1):
            send_to_guest(far, queue, MAC_A, ip, host, 50)
        eventually(
            lambda: guest_udp(g)["NoPorts"] - udp0["NoPorts"] >= 100,
            "the guest to take 100 datagrams",
            bound=30.0,
            every=0.1,
        )
        udp = guest_udp(g)
        assert udp["NoPorts"] - udp0["NoPorts"] == 100
        assert udp["InCsumErrors"] == udp0["InCsumErrors"]
        after = dev.statistics()
        for m, a in zip(mid, after, strict=True):
            assert a["rx_packets"] - m["rx_packets"] >= 50, (m, a)
        guest_to_host(g, host)
    clean(after)


def test_jumbo_frames_each_way(image: Path, net: VethTestbed, sock_path: Path) -> None:
    """MTU 9000 on both ends: 8,000-byte pings and TCP go through whole, as single
    frames (nobody fragments or reassembles): a guest frame larger than a UMEM frame
    leaves in several, one arriving in several fills several mergeable guest buffers."""
    ours, far, host = ONE
    for ifname in (ours, far):
        net.set_mtu(ifname, 9000)
    try:
        ip0 = snmp("Ip")
        with VhostUser(ours, sock_path) as dev, boot(image, sock_path, "10.0.0.2") as g:
            g.check("ip link set dev eth0 mtu 9000")
            out = g.check(f"ping -c 5 -i 0.2 -W 2 -s 8000 {host}", timeout=60)
            assert "5 packets received" in out and "8008 bytes from" in out, out
            guest_to_host(g, host)
            host_to_guest(g, "10.0.0.2")
            guest_ip = guest_snmp(g, "Ip")
            stats = dev.statistics()
        clean(stats)
        ip = snmp("Ip")
        for counters in (
            {k: ip[k] - ip0[k] for k in ("ReasmReqds", "FragCreates")},
            {k: guest_ip[k] for k in ("ReasmReqds", "FragCreates")},
        ):
            assert counters == {"ReasmReqds": 0, "FragCreates": 0}, counters
    finally:
        for ifname in (ours, far):
            net.set_mtu(ifname, 1500)


def test_guest_reboot_resumes(image: Path, net: VethTestbed, sock_path: Path) -> None:
    ours, far, host = ONE
    with VhostUser(ours, sock_path) as dev, boot(image, sock_path, "10.0.0.2") as g:
        ping(g, host, 3)
        g.reboot(120)
        ping(g, host)
        host_to_guest(g, "10.0.0.2", 256 << 10)
        assert dev.connections == 1, dev.events()
        clean(dev.statistics())


def test_backend_restart_resumes(image: Path, net: VethTestbed, sock_path: Path) -> None:
    """QEMU listens (server=on); the backend connects, is stopped while the guest runs,
    and a new one connects: traffic goes on."""
    ours, far, host = ONE
    first = VhostUser(ours, sock_path, client=True)
    with boot(image, sock_path, "10.0.0.2", client=True) as g:
        try:
            assert first.wait_connected(30), first.events()
            ping(g, host, 3)
        finally:
            first.stop()
        with VhostUser(ours, sock_path, client=True) as second:
            assert second.wait_connected(30), second.events()
            ping(g, host)
            guest_to_host(g, host, 256 << 10)
            clean(second.statistics())


def cli(*args: str) -> subprocess.Popen[str]:
    """``afxdp vhost-user`` in a child process (in this thread's network namespace)."""
    return subprocess.Popen(
        [sys.executable, "-m", "afxdp_rs", "vhost-user", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_listening(p: subprocess.Popen[str], path: Path) -> None:
    def up() -> bool:
        if p.poll() is not None:
            raise AssertionError(f"afxdp vhost-user exited {p.returncode}: {p.communicate()}")
        return path.exists()

    eventually(up, f"a socket at {path}", bound=30.0, every=0.1)


def test_sigkill_leaves_no_program_and_a_restart_resumes(
    image: Path, net: VethTestbed, sock_path: Path
) -> None:
    ours, far, host = ONE
    p = cli(ours, "--socket", str(sock_path))
    try:
        wait_listening(p, sock_path)
        with boot(image, sock_path, "10.0.0.2") as g:
            ping(g, host, 3)
            assert net.xdp_state(ours)[1] != 0
            p.send_signal(signal.SIGKILL)
            p.wait(10)
            # The program went with the process (a BPF link); the socket file stays.
            eventually(
                lambda: net.xdp_state(ours) == ("none", 0), "the XDP program to go", 5.0, 0.1
            )
            assert sock_path.exists()
            # A new backend takes the stale path over; QEMU reconnects by itself.
            with VhostUser(ours, sock_path) as dev:
                assert dev.wait_connected(30), dev.events()
                ping(g, host)
                host_to_guest(g, "10.0.0.2", 256 << 10)
    finally:
        if p.poll() is None:
            p.kill()
        p.communicate()


def test_two_vms_on_two_queues_of_one_interface(
    image: Path, net: VethTestbed, tmp_path: Path
) -> None:
    """Two processes serve queue 0 and queue 1 of xdp0 (one XDP program, joined by the
    second); each VM gets what is sent to its queue and nothing else."""
    ours, far, host = TWO
    paths = [tmp_path / "a.sock", tmp_path / "b.sock"]
    procs = [cli(ours, "--socket", str(paths[q]), "--start-queue", str(q)) for q in (0, 1)]
    try:
        for p, path in zip(procs, paths, strict=True):
            wait_listening(p, path)
        with (
            boot(image, paths[0], "10.0.1.2", MAC_A, name="vm-a") as a,
            boot(image, paths[1], "10.0.1.3", MAC_B, name="vm-b") as b,
        ):
            before = [guest_udp(g) for g in (a, b)]
            send_to_guest(far, 0, MAC_A, "10.0.1.2", host, 40)
            send_to_guest(far, 1, MAC_B, "10.0.1.3", host, 60)
            eventually(
                lambda: guest_udp(a)["NoPorts"] - before[0]["NoPorts"] >= 40,
                "40 datagrams",
                bound=30.0,
                every=0.1,
            )
            eventually(
                lambda: guest_udp(b)["NoPorts"] - before[1]["NoPorts"] >= 60,
                "60 datagrams",
                bound=30.0,
                every=0.1,
            )
            time.sleep(0.5)
            after = [guest_udp(g) for g in (a, b)]
            assert after[0]["NoPorts"] - before[0]["NoPorts"] == 40
            assert after[1]["NoPorts"] - before[1]["NoPorts"] == 60
            # Each VM's packets leave through its own process (their replies may come
            # back on either queue: only the requests are counted).
            introduce(far, 0, MAC_A, "10.0.1.2", host)
            introduce(far, 1, MAC_B, "10.0.1.3", host)
            snmp0 = net_icmp()
            for g in (a, b):
                g.run(f"ping -c 5 -i 0.2 -W 1 {host}", timeout=30)
            assert net_icmp()["InEchos"] - snmp0["InEchos"] == 10
        for p in procs:
            p.send_signal(signal.SIGTERM)
        outs = [p.communicate(timeout=20) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert "lost 0" in out, out
        assert "guest -> xdp0" in out, out
    assert net.xdp_state(ours) == ("none", 0)


def snmp(proto: str) -> dict[str, int]:
    """This namespace's protocol counters (the far ends' stack)."""
    with open("/proc/thread-self/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith(f"{proto}:")]
    return dict(zip(rows[0][1:], map(int, rows[1][1:]), strict=True))


def net_icmp() -> dict[str, int]:
    return snmp("Icmp")


@pytest.fixture(autouse=True)
def _no_stray_program(net: VethTestbed) -> Iterator[None]:
    yield
    for ours in (ONE[0], TWO[0]):
        assert net.xdp_state(ours) == ("none", 0), f"an XDP program stayed on {ours}"


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_many_connections_leak_nothing(net: VethTestbed, sock_path: Path) -> None:
    """Frontends that connect and go at once: each is served and ended, and neither a
    descriptor nor a thread stays behind."""
    with VhostUser(ONE[0], sock_path) as dev:
        fds, threads = open_fds(), len(os.listdir("/proc/self/task"))
        for _ in range(100):
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(sock_path))
        eventually(
            lambda: dev.events(199) == ["frontend disconnected (connection 100)"],
            "100 connections",
            bound=30.0,
            every=0.1,
        )
        assert dev.connections == 100 and not dev.connected
        assert open_fds() == fds
        assert len(os.listdir("/proc/self/task")) == threads


def test_bad_settings_are_named(net: VethTestbed, tmp_path: Path) -> None:
    ours = ONE[0]
    cases = [
        (tmp_path / "missing" / "vm.sock", {}, afxdp_rs.ConfigError, "does not exist"),
        (tmp_path, {}, afxdp_rs.ConfigError, "not a socket"),
        (tmp_path / "vm.sock", {"queues": 0}, afxdp_rs.ConfigError, "queues=0"),
        (tmp_path / "vm.sock", {"mac": "52:54"}, afxdp_rs.ConfigError, 'mac="52:54"'),
        (tmp_path / "vm.sock", {"queue_size": 100}, afxdp_rs.ConfigError, "queue_size=100"),
        (tmp_path / "vm.sock", {"start_queue": 3}, afxdp_rs.QueueError, "queue 3"),
    ]
    for path, kw, error, words in cases:
        with pytest.raises(error, match=words):
            VhostUser(ours, path, **kw)  # type: ignore[arg-type]
    with VhostUser(ours, tmp_path / "vm.sock"):
        with pytest.raises(afxdp_rs.BusyError, match="in use"):
            VhostUser(ours, tmp_path / "vm.sock")
    # The command line: one line and exit status 2 (a bad setting), no traceback.
    p = subprocess.run(
        [sys.executable, "-m", "afxdp_rs", "vhost-user", ours, "--socket", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert p.returncode == 2
    assert "not a socket" in p.stderr and "Traceback" not in p.stderr


# What the backend needs, and nothing else: attaching the XDP program (CAP_NET_ADMIN,
# CAP_BPF, and CAP_PERFMON: without it the verifier refuses the program's packet-pointer
# arithmetic), AF_XDP sockets (CAP_NET_RAW), and pinning its UMEM beyond RLIMIT_MEMLOCK
# (CAP_IPC_LOCK; or a memlock limit as large as the UMEM).
NEEDED_CAPS = "+net_admin,+net_raw,+ipc_lock,+bpf,+perfmon"


def with_only(caps: str) -> list[str]:
    """A command prefix: only `caps`, and no way to gain more. The user stays uid 0
    only because the interpreter lives in root's home; without CAP_DAC_OVERRIDE and
    the rest, uid 0 opens nothing it does not own."""
    return [
        "setpriv",
        f"--inh-caps=-all,{caps}",
        f"--ambient-caps=-all,{caps}",
        f"--bounding-set=-all,{caps}",
        "--no-new-privs",
    ]


def test_runs_with_only_the_capabilities_it_needs(
    image: Path, net: VethTestbed, sock_path: Path
) -> None:
    """The README's privileges: afxdp vhost-user with CAP_NET_ADMIN, CAP_NET_RAW,
    CAP_IPC_LOCK, CAP_BPF and CAP_PERFMON only carries a guest's ping and TCP; with one of them
    missing it refuses in one line naming what it needs."""
    ours, far, host = ONE
    args = [sys.executable, "-m", "afxdp_rs", "vhost-user", ours, "--socket", str(sock_path)]
    p = subprocess.Popen(
        [*with_only(NEEDED_CAPS), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_listening(p, sock_path)
        status = Path(f"/proc/{p.pid}/status").read_text()
        eff = next(line for line in status.splitlines() if line.startswith("CapEff:"))
        # CAP_NET_ADMIN (12), CAP_NET_RAW (13), CAP_IPC_LOCK (14), CAP_PERFMON (38),
        # CAP_BPF (39).
        want = (1 << 12) | (1 << 13) | (1 << 14) | (1 << 38) | (1 << 39)
        assert int(eff.split()[1], 16) == want, eff
        with boot(image, sock_path, "10.0.0.2") as g:
            ping(g, host)
            host_to_guest(g, "10.0.0.2", 256 << 10)
    finally:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
        p.communicate()
    for missing in ("net_raw", "bpf", "perfmon", "ipc_lock"):
        caps = ",".join(c for c in NEEDED_CAPS.split(",") if c != f"+{missing}")
        r = subprocess.run([*with_only(caps), *args], capture_output=True, text=True, timeout=60)
        assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "CAP_" in r.stderr or "MEMLOCK" in r.stderr, r.stderr


def arrived(q: dict[str, Any], since: dict[str, Any]) -> tuple[int, int]:
    """What came for a queue pair since `since` (both from `statistics()`): delivered
    to the guest, and dropped and counted by the kernel (its rx ring full, or its fill
    ring empty)."""
    k, m = q["kernel"], since["kernel"]
    dropped = k["rx_ring_full"] - m["rx_ring_full"] + k["rx_dropped"] - m["rx_dropped"]
    return int(q["rx_packets"]) - int(since["rx_packets"]), int(dropped)


def test_a_starved_or_flooded_queue_pair_holds_only_its_own(
    image: Path, net: VethTestbed, sock_path: Path
) -> None:
    """Limits a guest cannot exceed. One queue pair flooded without end: the other
    still carries its traffic meanwhile, and the control thread answers. A guest that
    stops returning receive buffers (its link down: its driver no longer takes used
    buffers nor posts new ones): what comes for it waits in its socket's rx ring, at
    most a ring's worth, and everything beyond is dropped by the kernel and counted;
    the backend holds nothing else. Every frame sent is then accounted for exactly."""
    ours, far, host = TWO
    ip = "10.0.1.2"
    src, dst = mac_of(far), bytes.fromhex(MAC_A.replace(":", ""))
    with VhostUser(ours, sock_path, queues=2) as dev, boot(image, sock_path, ip, queues=2) as g:
        # The guest knows the host's address for good: no ARP of its own, and so no
        # reply to one, lands on a pair while its frames are being counted.
        g.check(f"arp -s {host} {src.hex(':')}")
        # Pair 0 flooded with frames for another MAC (the guest's stack drops them
        # unseen by its UDP counters) until told to stop.
        stop = threading.Event()
        flooded = [0]

        def flood() -> None:
            junk = [frame(bytes.fromhex("020000000099"), src, host, ip, "udp", bytes(64))] * 64
            with afxdp_rs.XskSocket(far, 0, rx_size=0) as s:
                while not stop.is_set():
                    flooded[0] += s.send(junk, timeout=1.0)
                s.flush(timeout=5.0)

        before, far_before = dev.statistics(), net.link_stats(far)
        udp0 = guest_udp(g)
        t = threading.Thread(target=flood)
        t.start()
        try:
            eventually(
                lambda: dev.statistics()[0]["rx_packets"] - before[0]["rx_packets"] > 1000,
                "the flood to reach the guest",
                bound=60.0,
                every=0.1,
            )
            # Meanwhile, pair 1: every datagram arrives while pair 0 is still flooded.
            send_to_guest(far, 1, MAC_A, ip, host, 50)
            eventually(
                lambda: guest_udp(g)["NoPorts"] - udp0["NoPorts"] >= 50,
                "50 datagrams on pair 1 during the flood of pair 0",
                bound=60.0,
                every=0.1,
            )
            assert not stop.is_set() and t.is_alive()
        finally:
            stop.set()
            t.join(30)
        # Every flood frame has left pair 0's ring (to the guest, or dropped and
        # counted) before anything is counted for the second part.
        far_lost = net.link_stats(far)["tx_dropped"] - far_before["tx_dropped"]

        def flood_done() -> bool:
            return sum(arrived(dev.statistics()[0], before[0])) + far_lost >= flooded[0]

        eventually(flood_done, "the flood to leave pair 0's ring", bound=60.0, every=0.1)
        assert guest_udp(g)["NoPorts"] - udp0["NoPorts"] == 50
        clean(dev.statistics())

        # The guest stops returning buffers; 5,000 frames come for it on pair 0, more
        # than its posted buffers (QEMU's rx queue: 256) and the socket's rx ring
        # (2,048) hold. (The test bed has IPv6 off: no neighbour discovery of the host's
        # own lands on a pair while it is counted.)
        g.check("ip link set eth0 down")
        mid, far0 = dev.statistics()[0], net.link_stats(far)
        count = 5000
        frames = [frame(dst, src, host, ip, "udp", i.to_bytes(8, "big")) for i in range(count)]
        send_from(far, 0, frames)

        lost_on_veth = net.link_stats(far)["tx_dropped"] - far0["tx_dropped"]
        eventually(
            lambda: sum(arrived(dev.statistics()[0], mid)) + 2048 + lost_on_veth >= count,
            "the kernel to drop what the ring cannot hold",
            bound=60.0,
            every=0.1,
        )
        delivered, dropped = arrived(dev.statistics()[0], mid)
        assert dropped > 0 and delivered <= 256, (delivered, dropped)
        waiting = count - lost_on_veth - delivered - dropped
        assert 0 <= waiting <= 2048, (delivered, dropped, lost_on_veth)
        # The control thread answers, and pair 1 is unharmed.
        assert dev.connected and dev.statistics()[1]["ring_errors"] == 0
        # Back: what waited in the ring reaches the guest; every frame is accounted for.
        g.check("ip link set eth0 up")
        eventually(
            lambda: sum(arrived(dev.statistics()[0], mid)) + lost_on_veth >= count,
            "the ring to drain into the guest",
            bound=60.0,
            every=0.1,
        )
        delivered, dropped = arrived(dev.statistics()[0], mid)
        assert delivered + dropped + lost_on_veth == count, (delivered, dropped, lost_on_veth)
        clean(dev.statistics())
        ping(g, host, count=3)
