"""A veth test bed in a network namespace, built with pyroute2.

AF_XDP needs a real interface. A veth pair is one on every Linux machine: packets sent
into one end come out of the other, and the veth driver runs XDP programs natively.
:class:`VethTestbed` creates a namespace holding both ends, moves the calling thread
into it for the duration of a ``with`` block, and removes everything afterwards, also
when the block raises.

Two kinds of namespace:

* ``ephemeral=True``: an unnamed namespace (``unshare``). It dies with the last thread
  or socket in it, so even a process killed by SIGKILL leaves nothing behind. Used by
  the demo and the benchmarks.
* ``ephemeral=False``: a named namespace (visible in ``ip netns list``, so it can be
  inspected with ``ip netns exec NAME ...`` while the test runs), deleted on exit.

Entering a namespace is per thread: sockets must be opened by the thread that entered
(or by threads it starts afterwards).
"""

from __future__ import annotations

import ctypes
import functools
import os
import secrets
import socket
import struct
import threading
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

from pyroute2 import IPRoute, netns

__all__ = ["VethTestbed", "LinkedHosts", "enter_netns", "in_netns", "ETH_P_AFXDP_TEST"]

CLONE_NEWNET = 0x40000000
#: An EtherType from the local experimental range (IEEE 802 "local experimental 1").
ETH_P_AFXDP_TEST = 0x88B5

_libc = ctypes.CDLL(None, use_errno=True)
_PATTERN = bytes(range(256))
# IFLA_XDP_ATTACHED as pyroute2 decodes it (names in recent versions, numbers before).
_XDP_MODES: dict[object, str] = {
    None: "none",
    0: "none",
    1: "native",
    2: "skb",
    3: "hw",
    4: "multi",
    "xdp": "native",
    "xdpgeneric": "skb",
    "xdpoffload": "hw",
    "xdpmulti": "multi",
}


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def enter_netns(ns: int | str) -> None:
    """Moves the calling thread into a network namespace: the one open at file
    descriptor ``ns``, or the named one ``ns`` (as ``ip netns`` names it)."""
    if isinstance(ns, int):
        _check(_libc.setns(ns, CLONE_NEWNET), "setns(CLONE_NEWNET)")
        return
    fd = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
    try:
        enter_netns(fd)
    finally:
        os.close(fd)


T = TypeVar("T")


def in_netns(name: str, fn: Callable[[], T]) -> T:
    """Runs ``fn`` in a thread that entered the named network namespace ``name``;
    returns its result or raises its exception."""
    out: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            enter_netns(name)
            out.append(fn())
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=run, name=f"netns-{name}")
    t.start()
    t.join()
    if errors:
        raise errors[0]
    return out[0]


def _write_sysctl(path: str, value: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError:
        pass  # IPv6 compiled out: nothing to silence.


class VethTestbed:
    """A veth pair ``(inner, peer)`` inside a fresh network namespace.

    Inside the ``with`` block the calling thread is in the namespace: open an
    :class:`afxdp_rs.XskSocket` on ``inner`` (or ``peer``) and use :meth:`packet_socket`
    for the other end.
    """

    #: How many ephemeral test beds this process has open now (the command line keeps
    #: quiet about their veths' offloads, which its own test frames do not meet).
    ephemeral_open = 0

    def __init__(
        self,
        *,
        ephemeral: bool = False,
        queues: int = 1,
        prefix: str = "afxdp",
        mtu: int = 1500,
    ) -> None:
        if queues < 1:
            raise ValueError(f"queues={queues}: a veth needs at least 1 queue")
        self.ephemeral = ephemeral
        self.queues = queues
        self.mtu = mtu
        self.name = f"{prefix}-{os.getpid()}-{secrets.token_hex(3)}"
        self.inner = "xdp0"
        self.peer = "xdp1"
        self.inner_mac = "02:00:00:00:00:01"
        self.peer_mac = "02:00:00:00:00:02"
        self._home: int | None = None
        self._created = False
        self._counted = False

    def __enter__(self) -> VethTestbed:
        self._home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            if self.ephemeral:
                _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
                VethTestbed.ephemeral_open += 1
                self._counted = True
            else:
                netns.create(self.name)
                self._created = True
                enter_netns(self.name)
            self._build()
        except BaseException:
            self._teardown()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._teardown()

    def _build(self) -> None:
        # Quiet links: no IPv6 autoconfiguration chatter on the wire.
        _write_sysctl("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1")
        _write_sysctl("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1")
        with IPRoute() as ipr:
            ipr.link(
                "add",
                ifname=self.inner,
                kind="veth",
                peer={
                    "ifname": self.peer,
                    "num_rx_queues": self.queues,
                    "num_tx_queues": self.queues,
                },
                num_rx_queues=self.queues,
                num_tx_queues=self.queues,
            )
            for name, mac in ((self.inner, self.inner_mac), (self.peer, self.peer_mac)):
                (idx,) = ipr.link_lookup(ifname=name)
                ipr.link("set", index=idx, address=mac, mtu=self.mtu)
                ipr.link("set", index=idx, state="up")
            (lo,) = ipr.link_lookup(ifname="lo")
            ipr.link("set", index=lo, state="up")

    def _teardown(self) -> None:
        if self._counted:
            self._counted = False
            VethTestbed.ephemeral_open -= 1
        home, self._home = self._home, None
        if home is not None:
            try:
                enter_netns(home)
            finally:
                os.close(home)
        if self._created:
            self._created = False
            netns.remove(self.name)

    def add_veth(self, name: str, peer: str) -> None:
        """Adds another veth pair, up, to the namespace."""
        with IPRoute() as ipr:
            ipr.link("add", ifname=name, kind="veth", peer=peer)
            for n in (name, peer):
                (idx,) = ipr.link_lookup(ifname=n)
                ipr.link("set", index=idx, state="up")

    def set_link_state(self, name: str, *, up: bool) -> None:
        """Brings an interface up or down."""
        with IPRoute() as ipr:
            (idx,) = ipr.link_lookup(ifname=name)
            ipr.link("set", index=idx, state="up" if up else "down")

    def delete_link(self, name: str) -> None:
        """Deletes an interface (a veth takes its peer along)."""
        with IPRoute() as ipr:
            (idx,) = ipr.link_lookup(ifname=name)
            ipr.link("del", index=idx)

    def set_mtu(self, ifname: str, mtu: int) -> None:
        """Changes the MTU of one end of the pair."""
        with IPRoute() as ipr:
            (idx,) = ipr.link_lookup(ifname=ifname)
            ipr.link("set", index=idx, mtu=mtu)

    def link_stats(self, ifname: str) -> dict[str, int]:
        """The interface's counters (rx_packets, tx_packets, rx_dropped, ...)."""
        with IPRoute() as ipr:
            (link,) = ipr.get_links(ifname=ifname)
            stats = link.get_attr("IFLA_STATS64")
            return {k: int(v) for k, v in stats.items()} if stats else {}

    def xdp_state(self, ifname: str) -> tuple[str, int]:
        """The interface's XDP attachment as ``(mode, prog_id)``.

        ``mode`` is "none", "native", "skb", "hw" or "multi"; ``prog_id`` is 0 when no
        program is attached.
        """
        with IPRoute() as ipr:
            (link,) = ipr.get_links(ifname=ifname)
            xdp = link.get_attr("IFLA_XDP")
            if xdp is None:
                return ("none", 0)
            raw = xdp.get_attr("IFLA_XDP_ATTACHED")
            mode = _XDP_MODES.get(raw, str(raw))
            return (mode, int(xdp.get_attr("IFLA_XDP_PROG_ID") or 0))

    def packet_socket(self, ifname: str, rcvbuf: int = 32 << 20) -> socket.socket:
        """An AF_PACKET socket bound to ``ifname`` for the test EtherType."""
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_AFXDP_TEST))
        # SO_RCVBUFFORCE (root) lifts the rmem_max cap so bursts are not dropped.
        s.setsockopt(socket.SOL_SOCKET, 33, rcvbuf)
        s.bind((ifname, ETH_P_AFXDP_TEST))
        return s

    def frame(self, seq: int, size: int, *, to_inner: bool = True) -> bytes:
        """A test frame of ``size`` bytes carrying ``seq``, with a payload derived from it."""
        dst, src = (self.inner_mac, self.peer_mac) if to_inner else (self.peer_mac, self.inner_mac)
        head = (
            bytes.fromhex(dst.replace(":", ""))
            + bytes.fromhex(src.replace(":", ""))
            + struct.pack("!HI", ETH_P_AFXDP_TEST, seq)
        )
        n = size - len(head)
        start = seq & 0xFF
        reps = (start + n) // 256 + 1
        return head + (_PATTERN * reps)[start : start + n]


class LinkedHosts:
    """Two hosts, A and B, that can only reach each other through the caller.

    Each host is a network namespace with a real kernel stack: ``a0`` (10.77.0.1/24,
    fd77::1/64) in A and ``b0`` (10.77.0.2/24, fd77::2/64) in B, with the defaults a user
    has (checksum offload, TSO, GRO). Their veth peers ``a1`` and ``b1`` sit in a third
    namespace, which the calling thread enters for the ``with`` block: whatever the
    caller runs between ``a1`` and ``b1`` (a forwarder) is the wire. Everything is
    removed on exit, also when the block raises.
    """

    ADDRESSES = {"a": ("10.77.0.1", "fd77::1"), "b": ("10.77.0.2", "fd77::2")}

    def __init__(
        self, *, queues: int = 1, mtu: int = 1500, bridge: bool = False, prefix: str = "afxdp"
    ) -> None:
        """``bridge=True`` joins ``a1`` and ``b1`` with a Linux bridge in the middle
        namespace, so the hosts talk without the caller (for sockets on the hosts'
        own interfaces, opened with :meth:`run`)."""
        tag = f"{prefix}-{os.getpid()}-{secrets.token_hex(3)}"
        self.middle = f"{tag}-m"
        self.hosts = {"a": f"{tag}-a", "b": f"{tag}-b"}
        self.queues = queues
        self.mtu = mtu
        self.a_if, self.b_if = "a1", "b1"
        self.bridge = bridge
        self._home: int | None = None
        self._made: list[str] = []

    def __enter__(self) -> LinkedHosts:
        self._home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            for name in (self.middle, *self.hosts.values()):
                netns.create(name)
                self._made.append(name)
            enter_netns(self.middle)
            self._build()
        except BaseException:
            self._teardown()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._teardown()

    def _build(self) -> None:
        with IPRoute() as ipr:
            (lo,) = ipr.link_lookup(ifname="lo")
            ipr.link("set", index=lo, state="up")
            for host, ns in self.hosts.items():
                inner, outer = f"{host}0", f"{host}1"
                ipr.link(
                    "add",
                    ifname=outer,
                    kind="veth",
                    peer={
                        "ifname": inner,
                        "num_rx_queues": self.queues,
                        "num_tx_queues": self.queues,
                    },
                    num_rx_queues=self.queues,
                    num_tx_queues=self.queues,
                )
                (idx,) = ipr.link_lookup(ifname=outer)
                ipr.link("set", index=idx, mtu=self.mtu, state="up")
                (peer,) = ipr.link_lookup(ifname=inner)
                ipr.link("set", index=peer, net_ns_fd=ns)
                v4, v6 = self.ADDRESSES[host]
                in_netns(ns, functools.partial(self._host_up, inner, v4, v6))
            if self.bridge:
                ipr.link("add", ifname="br0", kind="bridge")
                (br,) = ipr.link_lookup(ifname="br0")
                for outer in (self.a_if, self.b_if):
                    (idx,) = ipr.link_lookup(ifname=outer)
                    ipr.link("set", index=idx, master=br)
                ipr.link("set", index=br, state="up")

    def _host_up(self, ifname: str, v4: str, v6: str) -> None:
        with IPRoute() as ipr:
            (lo,) = ipr.link_lookup(ifname="lo")
            ipr.link("set", index=lo, state="up")
            (idx,) = ipr.link_lookup(ifname=ifname)
            ipr.link("set", index=idx, mtu=self.mtu, state="up")
            ipr.addr("add", index=idx, address=v4, prefixlen=24)
            # nodad: usable at once, no duplicate address detection delay.
            ipr.addr("add", index=idx, address=v6, prefixlen=64, flags=0x02)

    def _teardown(self) -> None:
        home, self._home = self._home, None
        if home is not None:
            try:
                enter_netns(home)
            finally:
                os.close(home)
        while self._made:
            netns.remove(self._made.pop())

    def run(self, host: str, fn: Callable[[], T]) -> T:
        """Runs ``fn`` on host ``"a"`` or ``"b"`` (in a thread in its namespace)."""
        return in_netns(self.hosts[host], fn)

    def command(self, host: str, *argv: str) -> list[str]:
        """The command line that runs ``argv`` on host ``"a"`` or ``"b"``."""
        return ["ip", "netns", "exec", self.hosts[host], *argv]

    def address(self, host: str, version: int = 4) -> str:
        return self.ADDRESSES[host][0 if version == 4 else 1]

    def link_stats(self, ifname: str, host: str | None = None) -> dict[str, int]:
        """Counters of an interface (rx_packets, tx_dropped, ...): in the middle
        namespace, or of ``host``'s interface (``ifname`` there)."""
        if host is not None:
            return self.run(host, functools.partial(_link_stats, ifname))
        return _link_stats(ifname)

    def mac(self, host: str) -> bytes:
        """The MAC address of host ``"a"``'s or ``"b"``'s interface."""
        return self.run(host, functools.partial(_mac, f"{host}0"))

    def snmp(self, host: str, proto: str = "Udp") -> dict[str, int]:
        """The host's protocol counters (``/proc/net/snmp``: Udp, Tcp, Ip, ...)."""
        return self.run(host, functools.partial(_snmp, proto))


def _link_stats(ifname: str) -> dict[str, int]:
    with IPRoute() as ipr:
        (link,) = ipr.get_links(ifname=ifname)
        stats = link.get_attr("IFLA_STATS64")
        return {k: int(v) for k, v in stats.items()} if stats else {}


def _mac(ifname: str) -> bytes:
    with IPRoute() as ipr:
        (link,) = ipr.get_links(ifname=ifname)
        return bytes.fromhex(str(link.get_attr("IFLA_ADDRESS")).replace(":", ""))


def _snmp(proto: str) -> dict[str, int]:
    # thread-self: /proc/net follows the process's first thread, not this one.
    with open("/proc/thread-self/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith(f"{proto}:")]
    return dict(zip(rows[0][1:], map(int, rows[1][1:]), strict=True))


def packet_statistics(sock: socket.socket) -> tuple[int, int]:
    """(packets, drops) of an AF_PACKET socket since the last call (PACKET_STATISTICS)."""
    raw = sock.getsockopt(263, 6, 8)  # SOL_PACKET, PACKET_STATISTICS
    packets, drops = struct.unpack("II", raw)
    return packets, drops
