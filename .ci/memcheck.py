"""End-to-end traffic through every memory-touching path of the extension, small enough
to run under valgrind memcheck (see .ci/run): rx batches, zero-copy views, release,
deliver with cancel, l2fwd, send, send_packed, copy_into, close with live batches,
sequence_check through the Rust l2fwd loop, stop_loop."""

from __future__ import annotations

import threading
from array import array

import afxdp_rs
from afxdp_rs import tools
from afxdp_rs.testbed import VethTestbed

with VethTestbed(ephemeral=True) as tb, tb.packet_socket(tb.peer) as peer:
    peer.settimeout(20.0)
    sock = afxdp_rs.XskSocket(tb.inner, 0, frame_count=128, fill_size=64, rx_size=64)
    frames = [tb.frame(i, 60 + i) for i in range(40)]
    for f in frames:
        peer.send(f)
    got: list[bytes] = []
    while len(got) < 40:
        with sock.recv(16, timeout=20.0) as batch:
            for frame in batch:
                view = memoryview(frame)
                got.append(bytes(view))
                view.release()
    assert got == frames, "rx"
    for f in frames[:10]:
        peer.send(f)
    taken: list[bytes] = []

    def take(fr: afxdp_rs.Frame) -> bool:
        if len(taken) >= 10:
            return False
        taken.append(bytes(fr))
        return True

    while len(taken) < 10:
        sock.wait_readable(timeout=20.0)
        sock.deliver(take, 4)
    assert taken == frames[:10], "deliver"
    for f in frames[:8]:
        peer.send(f)
    fwd = 0
    while fwd < 8:
        sock.wait_readable(timeout=20.0)
        fwd += sock.l2fwd(8)
    sock.flush(timeout=20.0)
    assert sock.send(frames[:5], timeout=20.0) == 5
    data = b"".join(frames[:3])
    assert sock.send_packed(data, array("I", [len(f) for f in frames[:3]]), timeout=20.0) == 3
    sock.flush(timeout=20.0)
    peer.send(frames[0])
    batch = sock.recv(4, timeout=20.0)
    out, lens = bytearray(4096), array("I", [0] * 4)
    assert batch.copy_into(out, lens) == len(frames[0])
    sock.close()
    assert bytes(batch[0]) == frames[0], "a batch outlives its socket"
    batch.release()
    # Sequence-checked round trip through a forwarder loop (Rust loops, stop_loop).
    fwd_sock = afxdp_rs.XskSocket(tb.peer, 0, frame_count=128, fill_size=64, rx_size=64)
    seq_sock = afxdp_rs.XskSocket(tb.inner, 0, frame_count=128, fill_size=64, rx_size=64)
    # poll=True: the forwarding loop sleeps in poll(2) when idle instead of spinning,
    # so it does not take the CPU from the sender under valgrind's one-at-a-time
    # threads. Its 600 s are only a bound: stop_loop ends it, and it must still be
    # running when the check ends (a loop that ran out while packets were in flight
    # left them in its rx ring: that was the memcheck failure of the past).
    t = threading.Thread(
        target=tools.l2fwd,
        args=(
            fwd_sock,
            600.0,
        ),
        kwargs={"poll": True},
    )
    t.start()
    r = tools.sequence_check(seq_sock, tb.frame(0, 100, to_inner=False), 500, window=32, quiet=5.0)
    forwarding = t.is_alive()
    tools.stop_loop(fwd_sock)
    t.join()
    st = {n: s.statistics() for n, s in (("fwd", fwd_sock), ("seq", seq_sock))}
    links = {i: tb.link_stats(i) for i in (tb.inner, tb.peer)}
    report = {"result": r, "forwarder running at the end": forwarding, **st, "links": links}
    assert forwarding, ("the forwarding loop ended before the check", report)
    # Every byte and the order are exact. A packet may be lost only where a counter of
    # the ring or device that dropped it says so, packet for packet: the receiving
    # socket's rx ring (full) or fill ring (empty: rx_dropped) on either end, or a veth
    # that could not pass it on. Nothing may be left on a tx ring or uncompleted.
    counted = sum(st[n][k] for n in st for k in ("rx_dropped", "rx_ring_full"))
    counted += sum(links[i].get("tx_dropped", 0) for i in links)
    assert (r["out_of_order"], r["corrupted"]) == (0, 0), report
    assert r["sent"] == 500 and r["missing"] == counted, report
    for n in st:
        stuck = {k: st[n][k] for k in ("tx_ring_queued", "tx_outstanding")}
        assert stuck == {"tx_ring_queued": 0, "tx_outstanding": 0}, (n, stuck, report)
    if r["missing"]:
        print(f"memcheck: {r['missing']} lost, each counted by the kernel: {report}")
    seq_sock.close()
    fwd_sock.close()
    print("memcheck: all paths ok")
