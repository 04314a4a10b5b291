"""Long runs with sequence numbers: packets go out of one AF_XDP socket, through an
l2fwd loop on the other end of the veth pair (a second AF_XDP socket that swaps the
MAC addresses and sends each frame back), and into the first socket again, where every
byte and the order are checked (`afxdp_rs.tools.sequence_check`, in Rust, so the check keeps
up with the link).

Every packet either comes back or is counted by the kernel: a sequence number that
never arrives must match one drop in the sockets' XDP_STATISTICS (rx_dropped,
rx_ring_full) or the interfaces' tx_dropped. Nothing may come back reordered,
duplicated or changed.

With AFXDP_SOAK=1 (as in CI) the flat-out native run carries 20 million packets;
otherwise 500,000.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest

import afxdp_rs
from afxdp_rs import tools
from afxdp_rs.testbed import VethTestbed
from afxdp_rs.types import XdpMode

pytestmark = [pytest.mark.kernel, pytest.mark.bed(queues=2)]

SOAK = os.environ.get("AFXDP_SOAK") == "1"
MODES = ["native", "skb"]


class Forwarder:
    """An l2fwd loop (in Rust, GIL released) on the peer's queue, in its own thread."""

    def __init__(self, bed: VethTestbed, queue: int, mode: XdpMode) -> None:
        self.sock = afxdp_rs.XskSocket(bed.peer, queue, mode=mode, bind="copy")
        self.result: dict[str, Any] = {}
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"l2fwd-q{queue}")
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result.update(tools.l2fwd(self.sock, 3600.0, 64))
        except BaseException as e:  # reported by stop()
            self.error = e

    def stop(self) -> dict[str, Any]:
        """Ends the loop; returns the socket's statistics (the socket stays open)."""
        tools.stop_loop(self.sock)
        self.thread.join(10.0)
        assert not self.thread.is_alive(), "the l2fwd loop did not stop"
        if self.error is not None:
            raise self.error
        return self.sock.statistics()

    def close(self) -> None:
        self.sock.close()
        self.thread.join(10.0)


def counted_drops(bed: VethTestbed, socks: list[dict[str, Any]], links0: dict[str, Any]) -> int:
    """Packets the kernel reported dropping: in the AF_XDP sockets (no free fill frame,
    rx ring full) and in the veth driver (tx_dropped of either end). A socket's drops
    also show in its interface's rx_dropped, which is therefore not added."""
    drops = int(sum(s["rx_dropped"] + s["rx_ring_full"] for s in socks))
    for name in (bed.inner, bed.peer):
        drops += bed.link_stats(name)["tx_dropped"] - links0[name]["tx_dropped"]
    return drops


def round_trip(
    bed: VethTestbed, mode: XdpMode, count: int, size: int, window: int, queue: int = 0
) -> tuple[dict[str, Any], int, dict[str, Any], dict[str, Any]]:
    """Sends `count` numbered packets from the inner end through the forwarder and back;
    returns (the check's result, drops the kernel counted, sender stats, forwarder stats)."""
    links0 = {name: bed.link_stats(name) for name in (bed.inner, bed.peer)}
    template = bed.frame(0, size, to_inner=False)
    fwd = Forwarder(bed, queue, mode)
    try:
        with afxdp_rs.XskSocket(bed.inner, queue, mode=mode, bind="copy") as sock:
            result = tools.sequence_check(sock, template, count, window=window, quiet=1.0)
            sender = sock.statistics()
            forwarder = fwd.stop()
            drops = counted_drops(bed, [sender, forwarder], links0)
    finally:
        fwd.close()
    return result, drops, sender, forwarder


def check_accounting(
    result: dict[str, Any], drops: int, sender: dict[str, Any], forwarder: dict[str, Any]
) -> None:
    assert result["out_of_order"] == 0, result
    assert result["corrupted"] == 0, result
    assert result["received"] + result["missing"] == result["sent"], result
    # Zero unexplained loss: every missing sequence number is a drop the kernel counted.
    assert result["missing"] == drops, (result, drops, sender, forwarder)
    for stats in (sender, forwarder):
        for counter in ("tx_invalid_descs", "rx_invalid_descs", "invalid_completions"):
            assert stats[counter] == 0, (counter, stats)
        assert stats["invalid_rx_descs"] == 0, stats
    # The forwarder sent back what it got; the sender got it or counted its loss.
    assert forwarder["tx_completed"] == forwarder["rx_packets"]
    assert (
        forwarder["tx_packets"]
        == result["received"] + sender["rx_dropped"] + sender["rx_ring_full"]
    ), (result, sender, forwarder)


@pytest.mark.parametrize("mode", MODES)
def test_flat_out_every_packet_back_or_counted(bed: VethTestbed, mode: XdpMode) -> None:
    """Sends as fast as the sender can: the forwarder cannot keep up, so packets are
    dropped, and each one must be accounted for."""
    count = 20_000_000 if SOAK and mode == "native" else 500_000
    result, drops, sender, forwarder = round_trip(bed, mode, count, 64, window=0)
    assert result["sent"] == count
    check_accounting(result, drops, sender, forwarder)
    assert result["received"] > 0


@pytest.mark.parametrize("mode", MODES)
def test_flow_controlled_run_loses_nothing(bed: VethTestbed, mode: XdpMode) -> None:
    """With at most 512 packets in flight nobody runs out of frames: all come back."""
    count = 2_000_000 if SOAK else 100_000
    result, drops, sender, forwarder = round_trip(bed, mode, count, 1514, window=512)
    check_accounting(result, drops, sender, forwarder)
    assert result["max_in_flight"] <= 512
    assert (result["received"], result["missing"]) == (count, 0), result


def test_two_queues_each_in_order(bed: VethTestbed) -> None:
    """Two queues at once (native: veth maps tx queue q to the peer's rx queue q):
    order holds within each queue, and each queue's loss is accounted for."""
    count = 200_000
    results: dict[int, tuple[Any, ...]] = {}
    errors: list[BaseException] = []

    def run(q: int) -> None:
        try:
            template = bed.frame(q, 128, to_inner=False)
            with afxdp_rs.XskSocket(bed.inner, q, mode="native", bind="copy") as sock:
                r = tools.sequence_check(sock, template, count, window=1024, quiet=1.0)
                results[q] = (r, sock.statistics())
        except BaseException as e:
            errors.append(e)

    fwds = [Forwarder(bed, q, "native") for q in (0, 1)]
    try:
        threads = [threading.Thread(target=run, args=(q,)) for q in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60.0)
        fstats = [f.stop() for f in fwds]
    finally:
        for f in fwds:
            f.close()
    assert not errors, errors
    for q in (0, 1):
        r, s = results[q]
        assert r["out_of_order"] == 0 and r["corrupted"] == 0, (q, r)
        assert r["received"] + r["missing"] == count, (q, r)
        lost_here = s["rx_dropped"] + s["rx_ring_full"] + fstats[q]["rx_dropped"]
        lost_here += fstats[q]["rx_ring_full"]
        assert r["missing"] == lost_here, (q, r, s, fstats[q])
        # Each forwarder saw only its own queue's packets.
        assert fstats[q]["rx_packets"] == r["received"] + s["rx_dropped"] + s["rx_ring_full"]


def test_no_answer_ends_the_run(bed: VethTestbed) -> None:
    """Nothing sends the packets back: the run ends `quiet` seconds after the window
    filled (or after the last send), and everything sent is reported missing."""
    template = bed.frame(0, 64, to_inner=False)
    with afxdp_rs.XskSocket(bed.inner, 0, mode="native") as sock:
        r = tools.sequence_check(sock, template, 1_000_000, window=64, quiet=0.2)
        assert (r["sent"], r["received"], r["missing"]) == (64, 0, 64), r
        r = tools.sequence_check(sock, template, 1000, quiet=0.2)
        assert (r["sent"], r["received"], r["missing"]) == (1000, 0, 1000), r
        with pytest.raises(afxdp_rs.PacketSizeError, match="at least 50"):
            tools.sequence_check(sock, template[:49], 10)
        with pytest.raises(afxdp_rs.ConfigError, match="batch=0"):
            tools.sequence_check(sock, template, 10, batch=0)
