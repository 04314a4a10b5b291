"""The same QEMU guest's network through afxdp_rs's vhost-user backend and through QEMU's
tap backend, in one run: packets per second each way (64-byte frames) and TCP each
way, with the ratios.

    sudo .venv/bin/python benches/vm.py [--seconds 5] [--tcp-mib 32] [--accel tcg]

What is compared:

* wire -> guest: 64-byte frames sent flat out (an AF_XDP txonly loop) into the host
  end (the veth peer of the backend's interface; for tap, the tap device itself), to
  the guest's MAC with an EtherType its stack has no handler for, so each is dropped
  at once; the rate is what the guest's eth0 counted.
* guest -> wire: the guest's pktgen sends 64-byte UDP frames as fast as it can; the
  rate is what arrived on the host end, over pktgen's own sending time.
* TCP: busybox nc in the guest against a Python socket on the host, each way.

The tap backend runs with vhost=off when the host has no vhost_net module (the
output says which). Under TCG the guest's CPU is the limit of every number, so the
ratios say more than the absolute rates.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import threading
import time
import warnings
from pathlib import Path

from pyroute2 import IPRoute

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from guest import Guest, build_image  # noqa: E402

import afxdp_rs  # noqa: E402
from afxdp_rs import tools  # noqa: E402
from afxdp_rs.testbed import VethTestbed  # noqa: E402
from afxdp_rs.vhost import VhostUser, qemu_args  # noqa: E402

HOST, GUEST = "10.0.0.1", "10.0.0.2"
GUEST_MAC = "52:54:00:00:0a:02"


def link_stats(ifname: str) -> dict[str, int]:
    with IPRoute() as ipr:
        (link,) = ipr.get_links(ifname=ifname)
        return {k: int(v) for k, v in link.get_attr("IFLA_STATS64").items()}


def mac_of(ifname: str) -> str:
    with IPRoute() as ipr:
        (link,) = ipr.get_links(ifname=ifname)
        return str(link.get_attr("IFLA_ADDRESS"))


def address(ifname: str) -> None:
    with IPRoute() as ipr:
        (idx,) = ipr.link_lookup(ifname=ifname)
        ipr.addr("add", index=idx, address=HOST, prefixlen=24)
        ipr.link("set", index=idx, state="up")


def worker_cpu_seconds() -> float:
    """CPU time of the backend's queue-pair threads (vhost-user-backend names them
    vring_worker) in this process."""
    total = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                if f.read().strip() != "vring_worker":
                    continue
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            continue
    return total / os.sysconf("SC_CLK_TCK")


def guest_count(g: Guest, what: str) -> int:
    return int(g.check(f"cat /sys/class/net/eth0/statistics/{what}").strip())


def wire_to_guest(g: Guest, host_if: str, seconds: float) -> dict[str, float]:
    # To the guest, of an EtherType no protocol of its stack takes: dropped as soon as
    # it is looked at (QEMU's own virtio-net filters other MACs out before the guest).
    frame = bytes.fromhex(GUEST_MAC.replace(":", "")) + bytes.fromhex(
        mac_of(host_if).replace(":", "")
    )
    frame += b"\x88\xb5" + bytes(50)
    before = guest_count(g, "rx_packets")
    cpu = worker_cpu_seconds()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with afxdp_rs.XskSocket(host_if, 0, rx_size=0, mode="skb") as s:
            r = tools.txonly(s, frame, seconds)
    time.sleep(0.5)
    got = guest_count(g, "rx_packets") - before
    cpu = worker_cpu_seconds() - cpu
    return {"offered": r["packets"], "arrived": got, "pps": got / r["seconds"], "cpu": cpu}


def guest_to_wire(g: Guest, host_if: str, count: int) -> dict[str, float]:
    dst = mac_of(host_if)
    setup = [
        "modprobe pktgen",
        "echo rem_device_all > /proc/net/pktgen/kpktgend_0",
        "echo add_device eth0 > /proc/net/pktgen/kpktgend_0",
        f"echo count {count} > /proc/net/pktgen/eth0",
        "echo pkt_size 60 > /proc/net/pktgen/eth0",
        "echo delay 0 > /proc/net/pktgen/eth0",
        f"echo dst {HOST} > /proc/net/pktgen/eth0",
        f"echo dst_mac {dst} > /proc/net/pktgen/eth0",
        "echo udp_dst_min 9 > /proc/net/pktgen/eth0",
        "echo udp_dst_max 9 > /proc/net/pktgen/eth0",
    ]
    g.check("; ".join(setup))
    before = link_stats(host_if)["rx_packets"]
    cpu = worker_cpu_seconds()
    g.check("echo start > /proc/net/pktgen/pgctrl", timeout=600)
    cpu = worker_cpu_seconds() - cpu
    result = g.check("cat /proc/net/pktgen/eth0")
    time.sleep(0.5)
    got = link_stats(host_if)["rx_packets"] - before
    # "Result: OK: 1234567(c...) usec, 200000 (60byte,0frags)"
    usec = int(result.split("Result: OK: ")[1].split("(")[0])
    return {"offered": count, "arrived": got, "pps": got / (usec / 1e6), "cpu": cpu}


def tcp(g: Guest, mib: int) -> dict[str, float]:
    size = mib << 20
    srv = socket.create_server((HOST, 5001))
    took: dict[str, float] = {}

    def take() -> None:
        conn, _ = srv.accept()
        start, n = time.perf_counter(), 0
        with conn:
            while chunk := conn.recv(1 << 20):
                n += len(chunk)
        took["up"] = time.perf_counter() - start
        took["up_bytes"] = n

    t = threading.Thread(target=take)
    t.start()
    g.check(f"dd if=/dev/zero bs=65536 count={size >> 16} 2>/dev/null | nc {HOST} 5001", 600)
    t.join()
    srv.close()
    g.check("(nc -l -p 5002 > /dev/null &)")
    time.sleep(0.5)
    data = bytes(1 << 20)
    with socket.create_connection((GUEST, 5002), timeout=60) as c:
        start = time.perf_counter()
        for _ in range(mib):
            c.sendall(data)
        c.shutdown(socket.SHUT_WR)
        while c.recv(4096):  # the guest's nc closes once it has read everything
            pass
        took["down"] = time.perf_counter() - start
    return {
        "guest->host Gbit/s": took["up_bytes"] * 8 / took["up"] / 1e9,
        "host->guest Gbit/s": size * 8 / took["down"] / 1e9,
    }


def run_case(name: str, image: Path, accel: str, args: argparse.Namespace) -> dict[str, float]:
    with VethTestbed(ephemeral=True) as tb:
        netdev, host_if, backend = make_case(name, tb)
        with Guest(image, netdev, cmdline_extra=f"afxdp.ip={GUEST}/24", accel=accel) as g:
            g.wait_ready(120)
            if name == "tap":
                address(host_if)
            g.check(f"ping -c 2 -W 2 {HOST}", 30)
            out: dict[str, float] = {}
            w2g = wire_to_guest(g, host_if, args.seconds)
            out["wire->guest Mpps"] = w2g["pps"] / 1e6
            out["wire->guest offered"] = w2g["offered"]
            out["wire->guest backend ns/pkt"] = w2g["cpu"] * 1e9 / max(w2g["arrived"], 1)
            g2w = guest_to_wire(g, host_if, args.pktgen_count)
            out["guest->wire Mpps"] = g2w["pps"] / 1e6
            out["guest->wire lost"] = g2w["offered"] - g2w["arrived"]
            out["guest->wire backend ns/pkt"] = g2w["cpu"] * 1e9 / max(g2w["arrived"], 1)
            out.update(tcp(g, args.tcp_mib))
        if backend is not None:
            out["backend losses"] = sum(
                q["kernel"]["rx_dropped"] + q["kernel"]["rx_ring_full"]
                for q in backend.statistics()
            )
            backend.stop()
    return out


def make_case(name: str, tb: VethTestbed) -> tuple[list[str], str, VhostUser | None]:
    if name == "afxdp":
        address(tb.peer)
        path = Path(f"/tmp/afxdp-vm-bench-{os.getpid()}.sock")
        dev = VhostUser(tb.inner, path)
        netdev = qemu_args(path, memory=None, mac=GUEST_MAC, kvm=False)
        return netdev, tb.peer, dev
    vhost = "on" if os.path.exists("/dev/vhost-net") else "off"
    netdev = [
        "-netdev",
        f"tap,id=n0,ifname=tap0,script=no,downscript=no,vhost={vhost}",
        "-device",
        f"virtio-net-pci,netdev=n0,mac={GUEST_MAC},romfile=,vectors=0",
    ]
    return netdev, "tap0", None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="wire->guest duration")
    ap.add_argument("--pktgen-count", type=int, default=300_000, help="guest->wire frames")
    ap.add_argument("--tcp-mib", type=int, default=32)
    ap.add_argument("--accel", default="tcg")
    args = ap.parse_args()
    image = build_image()
    vhost_net = os.path.exists("/dev/vhost-net")
    results = {}
    for name in ("afxdp", "tap"):
        results[name] = run_case(name, image, args.accel, args)
        print(name, results[name], flush=True)
    tap_name = f"tap (vhost={'on' if vhost_net else 'off'})"
    print(f"\n{'':24}{'afxdp_rs vhost-user':>22}{tap_name:>22}{'ratio':>10}")
    for key in ("wire->guest Mpps", "guest->wire Mpps", "guest->host Gbit/s", "host->guest Gbit/s"):
        a, t = results["afxdp"][key], results["tap"][key]
        print(f"{key:24}{a:>22.3f}{t:>22.3f}{a / t if t else float('nan'):>10.2f}")
    a = results["afxdp"]
    for way in ("wire->guest", "guest->wire"):
        ns = a[f"{way} backend ns/pkt"]
        print(
            f"backend CPU {way}: {ns:,.0f} ns per packet (its queue-pair thread, with the "
            f"kernel work its system calls do), {1e3 / ns if ns else float('nan'):.2f} Mpps "
            "per core were the guest faster"
        )


if __name__ == "__main__":
    main()
