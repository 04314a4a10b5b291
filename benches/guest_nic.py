"""AF_XDP on virtio_net inside a guest of the guest tier: zero-copy against copy mode,
and preferred busy polling against plain poll, side by side in one run.

    scripts/guest-run 6.18 --cpus 2 -- .venv/bin/python benches/guest_nic.py [--seconds 3]

The guest's NICs (scripts/guest-run): eth0 <-> eth1 on one QEMU hub.

* receive: eth1 sends 64-byte frames flat out (an AF_XDP txonly loop, copy mode) to
  eth0, where a socket bound in zero-copy or in copy mode receives and drops them
  (rxdrop, sleeping in poll(2) when nothing came); rate and the receiving thread's CPU
  per packet.
* send: eth0 sends 64-byte frames flat out in zero-copy or copy mode; what the kernel
  completed, and CPU per packet.
* round trip: eth1 (a packet socket) sends one frame and waits for it to come back;
  eth0's socket sends each frame back (l2fwd), with busy_poll=True (the kernel
  authors' napi_defer_hard_irqs=2, gro_flush_timeout=200000) or plain poll. Median and
  99th percentile round trip, and eth0's receive interrupts per packet.

Under TCG every number is the emulated CPU's: read the ratios.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import struct
import subprocess
import threading
import time
from pathlib import Path

import afxdp_rs
from afxdp_rs import tools
from afxdp_rs.types import BindMode

ETH_P_TEST = 0x88B5
MAC = {f"eth{i}": bytes([0x52, 0x54, 0, 0, 0, 0x10 + i]) for i in range(4)}


def frame(seq: int, size: int = 64, dst: str = "eth0", src: str = "eth1") -> bytes:
    head = MAC[dst] + MAC[src] + struct.pack("!HI", ETH_P_TEST, seq)
    return head + bytes(size - len(head))


def setup() -> None:
    subprocess.run(["modprobe", "virtio_net"], check=True)
    deadline = time.monotonic() + 30
    while not all(Path(f"/sys/class/net/eth{i}").exists() for i in (0, 1)):
        assert time.monotonic() < deadline, "no virtio NICs"
        time.sleep(0.05)
    for n in ("eth0", "eth1"):
        subprocess.run(["ip", "link", "set", n, "up"], check=True)
    while not all(
        Path(f"/sys/class/net/{n}/carrier").read_text().strip() == "1" for n in ("eth0", "eth1")
    ):
        time.sleep(0.05)


def rx_interrupts(nic: str) -> int:
    dev = Path(f"/sys/class/net/{nic}/device").resolve().name  # virtioN
    total = 0
    for line in Path("/proc/interrupts").read_text().splitlines():
        if f"{dev}-input" in line:
            total += sum(int(x) for x in line.split()[1:] if x.isdigit())
    return total


def receive(bind: BindMode, seconds: float) -> tuple[float, float]:
    with (
        afxdp_rs.XskSocket("eth0", 0, bind=bind) as rx,
        afxdp_rs.XskSocket("eth1", 0, bind="copy", rx_size=0) as tx,
    ):
        assert rx.zerocopy == (bind == "zerocopy")
        done = threading.Event()

        def send() -> None:
            while not done.is_set():
                tools.txonly(tx, frame(0), 0.2)

        t = threading.Thread(target=send)
        t.start()
        time.sleep(0.2)
        r = tools.rxdrop(rx, seconds, poll=True)
        done.set()
        t.join()
    return r["packets"] / r["seconds"], r["cpu_seconds"] / max(r["packets"], 1) * 1e9


def send(bind: BindMode, seconds: float) -> tuple[float, float]:
    with afxdp_rs.XskSocket("eth0", 0, bind=bind, rx_size=0) as tx:
        assert tx.zerocopy == (bind == "zerocopy")
        t0 = time.thread_time()
        r = tools.txonly(tx, frame(0, dst="eth1", src="eth0"), seconds)
        cpu = time.thread_time() - t0
    return r["packets"] / r["seconds"], cpu / max(r["packets"], 1) * 1e9


def knobs(defer: int, flush: int) -> None:
    Path("/sys/class/net/eth0/napi_defer_hard_irqs").write_text(str(defer))
    Path("/sys/class/net/eth0/gro_flush_timeout").write_text(str(flush))


def round_trip(
    busy: bool, count: int, defer: bool | None = None
) -> tuple[float, float, float, int]:
    defer = busy if defer is None else defer
    knobs(2, 200_000) if defer else knobs(0, 0)
    try:
        with (
            afxdp_rs.XskSocket("eth0", 0, busy_poll=busy, busy_poll_usecs=50) as sock,
            socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_TEST)) as peer,
        ):
            peer.bind(("eth1", ETH_P_TEST))
            peer.settimeout(5.0)
            t = threading.Thread(
                target=tools.l2fwd, args=(sock, count * 0.05 + 5.0), kwargs={"poll": True}
            )
            t.start()
            time.sleep(0.3)
            rtts = []
            irq0 = rx_interrupts("eth0")
            for s in range(count):
                f = frame(s)
                t0 = time.perf_counter_ns()
                peer.send(f)
                while True:
                    try:
                        back = peer.recv(2048)
                    except TimeoutError:
                        tools.stop_loop(sock)
                        t.join()
                        raise AssertionError(f"no reply to {s}: {sock.statistics()}") from None
                    if back[14:18] == f[14:18] and back[:6] == MAC["eth1"]:
                        break
                rtts.append(time.perf_counter_ns() - t0)
            irqs = rx_interrupts("eth0") - irq0
            tools.stop_loop(sock)
            t.join()
            fallbacks = sock.statistics()["busy_poll_tx_fallbacks"]
    finally:
        knobs(0, 0)
    rtts.sort()
    median, p99 = statistics.median(rtts) / 1e3, rtts[int(len(rtts) * 0.99)] / 1e3
    return median, p99, irqs / count, fallbacks


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pings", type=int, default=500)
    a = ap.parse_args()
    setup()
    print(f"kernel {subprocess.check_output(['uname', '-r'], text=True).strip()}")
    for rnd in range(a.rounds):
        zc = receive("zerocopy", a.seconds)
        cp = receive("copy", a.seconds)
        print(
            f"round {rnd}: receive zero-copy {zc[0] / 1e6:.3f} Mpps {zc[1]:.0f} ns cpu/pkt, "
            f"copy {cp[0] / 1e6:.3f} Mpps {cp[1]:.0f} ns cpu/pkt: rate x{zc[0] / cp[0]:.2f}, "
            f"cpu x{zc[1] / cp[1]:.2f}"
        )
        zc = send("zerocopy", a.seconds)
        cp = send("copy", a.seconds)
        print(
            f"round {rnd}: send zero-copy {zc[0] / 1e6:.3f} Mpps {zc[1]:.0f} ns cpu/pkt, "
            f"copy {cp[0] / 1e6:.3f} Mpps {cp[1]:.0f} ns cpu/pkt: rate x{zc[0] / cp[0]:.2f}, "
            f"cpu x{zc[1] / cp[1]:.2f}"
        )
        bp = round_trip(True, a.pings)
        pl = round_trip(False, a.pings)
        print(
            f"round {rnd}: round trip busy-poll median {bp[0]:.0f} us p99 {bp[1]:.0f} us "
            f"{bp[2]:.2f} irq/pkt, poll median {pl[0]:.0f} us p99 {pl[1]:.0f} us "
            f"{pl[2]:.2f} irq/pkt: median x{bp[0] / pl[0]:.2f} "
            f"(busy_poll_tx_fallbacks {bp[3]})"
        )


if __name__ == "__main__":
    main()
