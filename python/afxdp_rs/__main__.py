"""Command line: ``python -m afxdp_rs`` (or ``afxdp``)."""

from __future__ import annotations

import argparse
import os
import sys


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="afxdp", description="AF_XDP sockets for Python: tools and demo"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="receive and send packets on a private veth test bed and print packets/s",
    )
    demo.add_argument("-n", "--packets", type=_positive, default=300_000)
    demo.add_argument("-s", "--size", type=int, default=64, help="packet size in bytes")
    demo.add_argument("-b", "--batch", type=_positive, default=64)
    demo.add_argument("-m", "--mode", choices=["auto", "native", "skb"], default="auto")
    helper = sub.add_parser(
        "helper",
        help="privileged helper: attach the XDP program, create the sockets and hand them "
        "to an unprivileged worker over a Unix socket",
    )
    helper.add_argument("ifname")
    helper.add_argument("--socket", required=True, help="path of the Unix socket to serve on")
    helper.add_argument("-q", "--queues", type=_positive, default=1)
    helper.add_argument("--start-queue", type=int, default=0)
    helper.add_argument("-m", "--mode", choices=["auto", "native", "skb"], default="auto")
    helper.add_argument(
        "--timeout", type=float, default=None, help="seconds to wait for the worker"
    )
    args = parser.parse_args(argv)

    if args.command == "helper":
        from afxdp_rs import privileged

        privileged.serve(
            args.socket,
            args.ifname,
            args.queues,
            args.start_queue,
            args.mode,
            timeout=args.timeout,
        )
        print(f"handed {args.queues} socket(s) of {args.ifname} over on {args.socket}")
        return 0

    if args.command == "demo":
        if not 18 <= args.size <= 1514:
            parser.error(f"--size {args.size}: use 18 to 1514 bytes")
        if os.geteuid() != 0:
            print(
                "afxdp demo needs root (network namespaces, XDP programs, AF_XDP sockets): "
                "run it with sudo",
                file=sys.stderr,
            )
            return 2
        from afxdp_rs import demo as demo_mod

        return demo_mod.run(args.packets, args.size, args.batch, args.mode)
    return 2


if __name__ == "__main__":
    sys.exit(main())
