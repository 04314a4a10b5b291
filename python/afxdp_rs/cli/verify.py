"""``afxdp verify``: numbered packets out and back, every byte checked."""

from __future__ import annotations

import contextlib
import functools
import threading

import click
from rich.table import Table

from afxdp_rs import tools
from afxdp_rs._afxdp import XskSocket
from afxdp_rs.cli.common import (
    MODES,
    Stopping,
    bed_or_none,
    err,
    json_option,
    need_root,
    print_json,
    show,
    warned,
)
from afxdp_rs.types import XdpMode


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
    "--window",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="at most this many packets in flight (0: as fast as possible)",
)
@click.option("-w", "old_window", type=click.IntRange(min=0), hidden=True)
@click.option("--dst", default="ff:ff:ff:ff:ff:ff", help="destination MAC (with IFNAME)")
@click.option("--no-swap", is_flag=True, help="the far side returns frames unchanged")
@click.option("-m", "--mode", type=MODES, default="auto", show_default=True)
@json_option
def verify(
    ifname: str | None,
    queue: int,
    count: int,
    size: int,
    window: int,
    old_window: int | None,
    dst: str,
    no_swap: bool,
    mode: XdpMode,
    as_json: bool,
) -> None:
    """Sends COUNT numbered packets out of IFNAME and checks every one that comes back
    from a forwarder on the far side (which swaps the MAC addresses, as an L2 forwarder
    does, unless --no-swap): each byte, and that numbers only go up (no reordering, no
    duplicates). Without IFNAME: on its own veth test bed, through an l2fwd loop on the
    peer. Every loss is matched against the kernel's drop counters. Exits with 1 on a
    reordered or changed packet, a loss no counter explains, or when nothing comes back.
    Ctrl-C or SIGTERM stops and prints the results so far."""
    need_root()
    if old_window is not None:
        err.print("[dim]note: -w is now --window (-w writes a file, as in capture)[/]")
        window = old_window
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
                fwd_thread = threading.Thread(
                    target=tools.l2fwd,
                    args=(
                        fwd,
                        3600.0,
                    ),
                )
                fwd_thread.start()
                stack.callback(fwd_thread.join)
                stack.callback(functools.partial(tools.stop_loop, fwd))
            sock = stack.enter_context(warned(tb, lambda: XskSocket(name, queue, mode=mode)))
            err.print(f"[dim]sending {count:,} numbered packets of {size} bytes out of {name}[/]")
            # In a thread, so that Ctrl-C or SIGTERM ends the run with its results.
            out: list[dict[str, float]] = []
            failed: list[BaseException] = []

            def check() -> None:
                try:
                    out.append(
                        tools.sequence_check(
                            sock, template, count, window=window, swapped=not no_swap
                        )
                    )
                except BaseException as e:
                    failed.append(e)

            runner = threading.Thread(target=check, name="afxdp-verify")
            runner.start()
            with Stopping() as stop:
                while runner.is_alive():
                    runner.join(0.1)
                    if stop.asked:
                        tools.stop_loop(sock)
                interrupted = stop.asked
            if failed:
                raise failed[0]
            r = out[0]
            stats = sock.statistics()
            # Drops the kernel counted (a socket's drops also show in its interface's
            # rx_dropped, which is therefore not added).
            counted = stats["rx_dropped"] + stats["rx_ring_full"]
            if tb is not None and fwd is not None and fwd_thread is not None:
                tools.stop_loop(fwd)
                fwd_thread.join()
                fstats = fwd.statistics()
                counted += fstats["rx_dropped"] + fstats["rx_ring_full"]
                for n in (tb.inner, tb.peer):
                    counted += tb.link_stats(n)["tx_dropped"] - links0[n]["tx_dropped"]
    missing = int(r["missing"])
    unexplained = max(0, missing - counted)
    bad = int(r["out_of_order"] + r["corrupted"])
    nothing_back = r["received"] == 0 and r["sent"] > 0
    if not interrupted:
        bad += 1 if nothing_back else unexplained
    if as_json:
        print_json(
            {k: int(v) if k != "seconds" else v for k, v in r.items()}
            | {
                "interface": name,
                "queue": queue,
                "kernel_counted": counted,
                "unexplained": unexplained,
                "stopped": interrupted,
                "ok": not bad,
            }
        )
        if bad:
            raise SystemExit(1)
        return
    table = Table(title=f"verify {name}:{queue}")
    for col in ("sent", "received", "missing", "out of order", "corrupted", "Mpps"):
        table.add_column(col, justify="right")
    mpps = r["received"] / r["seconds"] / 1e6 if r["seconds"] else 0.0
    table.add_row(
        *(f"{int(r[k]):,}" for k in ("sent", "received", "missing", "out_of_order", "corrupted")),
        f"{mpps:.3f}",
    )
    show(table)
    if tb is not None:
        where = "AF_XDP rx_dropped + rx_ring_full on both sockets, veth tx_dropped"
    else:
        where = "rx_dropped + rx_ring_full of this socket"
    click.echo(
        f"lost {missing:,}; the kernel counted {counted:,} drops ({where}); "
        f"unexplained: {unexplained:,}"
    )
    if interrupted:
        # Packets still on their way when the run was stopped count as missing: the
        # loss of a stopped run is not judged.
        click.echo("stopped (Ctrl-C or SIGTERM) before the end: the loss is not judged")
    elif nothing_back:
        click.echo(
            f"nothing came back: is a forwarder running on the far side of {name} "
            "(one that swaps MAC addresses, or --no-swap)?"
        )
    if bad:
        raise SystemExit(1)
