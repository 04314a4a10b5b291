"""``afxdp verify``: numbered packets out and back, every byte checked."""

from __future__ import annotations

import contextlib
import threading

import click
from rich.console import Console
from rich.table import Table

from afxdp_rs._afxdp import XskSocket
from afxdp_rs.cli.common import (
    MODES,
    bed_or_none,
    err,
    need_root,
    warned,
)


def _mac_of(ifname: str) -> bytes:
    try:
        with open(f"/sys/class/net/{ifname}/address") as f:
            return bytes.fromhex(f.read().strip().replace(":", ""))
    except OSError:
        return bytes.fromhex("020000000099")


@click.command()
@click.argument("ifname", required=False)
@click.option("-q", "--queue", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("-c", "--count", type=click.IntRange(min=1), default=1_000_000, show_default=True)
@click.option("-s", "--size", type=click.IntRange(50, 1514), default=64, show_default=True)
@click.option(
    "-w",
    "--window",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="at most this many packets in flight (0: as fast as possible)",
)
@click.option("--dst", default="ff:ff:ff:ff:ff:ff", help="destination MAC (with IFNAME)")
@click.option("--no-swap", is_flag=True, help="the far side returns frames unchanged")
@click.option("-m", "--mode", type=MODES, default="auto", show_default=True)
def verify(
    ifname: str | None,
    queue: int,
    count: int,
    size: int,
    window: int,
    dst: str,
    no_swap: bool,
    mode: str,
) -> None:
    """Sends COUNT numbered packets out of IFNAME and checks every one that comes back
    from a forwarder on the far side (which swaps the MAC addresses, as an L2 forwarder
    does, unless --no-swap): each byte, and that numbers only go up (no reordering, no
    duplicates). Without IFNAME: on its own veth test bed, through an l2fwd loop on the
    peer, and every loss is matched against the kernel's drop counters. Exits with 1 on
    a reordered or changed packet, or a loss nothing counted."""
    need_root()
    with bed_or_none(ifname) as tb:
        if tb is not None:
            name = tb.inner
            template = tb.frame(0, size, to_inner=False)
            links0 = {n: tb.link_stats(n) for n in (tb.inner, tb.peer)}
        else:
            assert ifname is not None
            name = ifname
            try:
                mac = bytes.fromhex(dst.replace(":", ""))
            except ValueError:
                mac = b""
            if len(mac) != 6:
                raise click.BadParameter(f"{dst!r} is not a MAC address", param_hint="--dst")
            head = mac + _mac_of(ifname) + b"\x88\xb5"
            template = head + bytes(size - len(head))
        with contextlib.ExitStack() as stack:
            fwd: XskSocket | None = None
            fwd_thread: threading.Thread | None = None
            if tb is not None:
                fwd = stack.enter_context(XskSocket(tb.peer, queue, mode=mode))
                fwd_thread = threading.Thread(target=fwd.rust_l2fwd, args=(3600.0,))
                fwd_thread.start()
                stack.callback(fwd_thread.join)
                stack.callback(fwd.stop_loop)
            sock = stack.enter_context(warned(tb, lambda: XskSocket(name, queue, mode=mode)))
            err.print(f"[dim]sending {count:,} numbered packets of {size} bytes out of {name}[/]")
            r = sock.sequence_check(template, count, window=window, swapped=not no_swap)
            stats = sock.statistics()
            # Drops the kernel counted (a socket's drops also show in its interface's
            # rx_dropped, which is therefore not added).
            counted = stats["rx_dropped"] + stats["rx_ring_full"]
            if tb is not None and fwd is not None and fwd_thread is not None:
                fwd.stop_loop()
                fwd_thread.join()
                fstats = fwd.statistics()
                counted += fstats["rx_dropped"] + fstats["rx_ring_full"]
                for n in (tb.inner, tb.peer):
                    counted += tb.link_stats(n)["tx_dropped"] - links0[n]["tx_dropped"]
    table = Table(title=f"verify {name}:{queue}")
    for col in ("sent", "received", "missing", "out of order", "corrupted", "Mpps"):
        table.add_column(col, justify="right")
    mpps = r["received"] / r["seconds"] / 1e6 if r["seconds"] else 0.0
    table.add_row(
        *(f"{int(r[k]):,}" for k in ("sent", "received", "missing", "out_of_order", "corrupted")),
        f"{mpps:.3f}",
    )
    Console().print(table)
    bad = int(r["out_of_order"] + r["corrupted"])
    if tb is not None:
        unexplained = int(r["missing"]) - counted
        click.echo(
            f"lost {int(r['missing']):,}; the kernel counted {counted:,} drops "
            f"(AF_XDP rx_dropped + rx_ring_full on both sockets, veth tx_dropped); "
            f"unexplained: {unexplained:,}"
        )
        bad += abs(unexplained)
    else:
        click.echo(
            f"lost {int(r['missing']):,}; this socket's kernel counters show {counted:,} "
            "drops (rx_dropped + rx_ring_full); the rest was lost on the way"
        )
    if bad:
        raise SystemExit(1)
