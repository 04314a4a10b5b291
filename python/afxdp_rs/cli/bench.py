"""``afxdp bench``: packets per second of the workloads."""

from __future__ import annotations

import click
from rich.table import Table

from afxdp_rs.cli.common import (
    Stopping,
    err,
    json_option,
    need_root,
    print_json,
    show,
)
from afxdp_rs.types import BindMode, XdpMode


@click.command()
@click.argument(
    "workload", type=click.Choice(["rxdrop", "txonly", "l2fwd", "forward", "tcp", "drain"])
)
@click.option("-i", "--interface", "ifname", help="interface (default: own veth test bed)")
@click.option("--peer", help="interface the generator sends from (rxdrop, l2fwd)")
@click.option("-q", "--queue", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("-N", "--native", "mode", flag_value="native", help="native XDP mode")
@click.option("-S", "--skb", "mode", flag_value="skb", help="skb (generic) XDP mode")
@click.option("-c", "--copy", "bind", flag_value="copy", help="force copy mode")
@click.option("-z", "--zero-copy", "bind", flag_value="zerocopy", help="force zero-copy")
@click.option("-b", "--batch", type=click.IntRange(1, 2048), default=64, show_default=True)
@click.option("-f", "--frame-size", type=click.Choice(["2048", "4096"]), default="4096")
@click.option(
    "-s",
    "--size",
    type=click.IntRange(18, 9014),
    default=64,
    show_default=True,
    help="packet size; above 1514 the test bed gets a jumbo MTU (multi-buffer)",
)
@click.option("-d", "--duration", type=click.FloatRange(0.1, 3600), default=2.0, show_default=True)
@click.option("-p", "--poll", "wait", flag_value="poll", help="wait in poll(2) instead of spinning")
@click.option(
    "-B",
    "--busy-poll",
    "wait",
    flag_value="busy-poll",
    help="spin on a socket with preferred busy polling (the kernel polls the device "
    "in the receiver's system calls; needs a NAPI ID, which veth lacks)",
)
@click.option(
    "--linger-us",
    type=click.IntRange(0, 100_000),
    default=0,
    show_default=True,
    help="after a batch that was not full, wait this long for more (all paths)",
)
@click.option(
    "--compare",
    is_flag=True,
    help="also run the Rust loop and AF_PACKET (rxdrop: and the drain cost)",
)
@click.option(
    "--queues",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="rxdrop on this many queues at once (test bed only)",
)
@json_option
def bench(
    workload: str,
    ifname: str | None,
    peer: str | None,
    queue: int,
    mode: XdpMode | None,
    bind: BindMode | None,
    batch: int,
    frame_size: str,
    size: int,
    duration: float,
    wait: str | None,
    linger_us: int,
    compare: bool,
    queues: int,
    as_json: bool,
) -> None:
    """Measure rxdrop, txonly, l2fwd, forward (both ways between two interfaces), tcp
    (iperf3 between two stacks through the forwarder) or drain (the Python API's cost
    per packet on a full rx ring): packets/s, loss and CPU time per packet."""
    need_root()
    from afxdp_rs.bench import run
    from afxdp_rs.benchkit import PATHS, Options, Result

    opts = Options(
        workload=workload,
        ifname=ifname,
        peer=peer,
        queue=queue,
        mode=mode or "auto",
        bind=bind or "auto",
        batch=batch,
        frame_size=int(frame_size),
        size=size,
        duration=duration,
        wait=wait or "spin",
        linger=linger_us / 1e6,
        queues=queues,
        paths=PATHS if compare else ("python",),
        drain=compare and ifname is None,
    )
    table = Table(
        title=f"{workload}, {size}-byte packets, batch {batch}, "
        f"{opts.wait} mode" + (f", linger {linger_us} us" if linger_us else "")
    )
    for col in ("path", "Mpps", "Gbit/s", "offered", "arrived", "lost", "cpu ns/pkt", "kernel"):
        table.add_column(col, justify="right")

    class _Stopped(Exception):
        pass

    done: list[Result] = []

    def report(r: Result) -> None:
        err.print(f"[dim]{r.path}: {r.pps / 1e6:.3f} Mpps[/]")
        done.append(r)
        if stop.asked:
            raise _Stopped

    # Ctrl-C or SIGTERM: the path running now ends after its duration, then the table
    # shows what was measured.
    with Stopping() as stop:
        try:
            run(opts, report)
        except _Stopped:
            err.print("[yellow]stopped (Ctrl-C or SIGTERM): the paths measured so far[/]")
    if as_json:
        print_json(
            {
                "workload": workload,
                "size": size,
                "batch": batch,
                "wait": opts.wait,
                "linger_us": linger_us,
                "stopped": stop.asked,
                "results": [
                    {
                        "path": r.path,
                        "packets": r.packets,
                        "seconds": r.seconds,
                        "packets_per_second": r.pps,
                        "offered": r.offered,
                        "arrived": r.arrived,
                        "lost": r.lost,
                        "cpu_ns_per_packet": r.cpu_ns_per_packet if r.packets else None,
                        "detail": r.detail,
                    }
                    for r in done
                ],
            }
        )
        return
    for r in done:
        detail = ", ".join(f"{k}={v}" for k, v in r.detail.items() if v) or "-"
        table.add_row(
            r.path,
            f"{r.pps / 1e6:.3f}",
            f"{r.pps * size * 8 / 1e9:.2f}",
            f"{r.offered:,}",
            f"{r.arrived:,}",
            f"{r.lost:,}",
            f"{r.cpu_ns_per_packet:,.0f}",
            detail,
        )
    show(table)
