"""What the kernel says an interface offers AF_XDP, read from the netlink ``netdev``
family (Linux 6.3+; some attributes came later), and what afxdp_rs's defaults choose
there and why. ``afxdp info IFNAME`` shows it."""

from __future__ import annotations

import socket
from typing import Any

from pyroute2.netlink import NLM_F_DUMP, NLM_F_REQUEST, genlmsg
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.generic import GenericNetlinkSocket

__all__ = ["netdev_info", "default_choices", "XDP_FEATURES", "RX_METADATA", "XSK_FEATURES"]

# include/uapi/linux/netdev.h
_DEV_GET = 1
_QUEUE_GET = 10
XDP_FEATURES = {
    1: "basic",
    2: "redirect",
    4: "ndo-xmit",
    8: "xsk-zerocopy",
    16: "hw-offload",
    32: "rx-sg",
    64: "ndo-xmit-sg",
}
RX_METADATA = {1: "timestamp", 2: "hash", 4: "vlan-tag"}
XSK_FEATURES = {1: "tx-timestamp", 2: "tx-checksum", 4: "tx-launch-time-fifo"}


class _DevMsg(genlmsg):  # type: ignore[misc]
    nla_map = (
        ("NETDEV_A_DEV_UNSPEC", "none"),
        ("NETDEV_A_DEV_IFINDEX", "uint32"),
        ("NETDEV_A_DEV_PAD", "none"),
        ("NETDEV_A_DEV_XDP_FEATURES", "uint64"),
        ("NETDEV_A_DEV_XDP_ZC_MAX_SEGS", "uint32"),
        ("NETDEV_A_DEV_XDP_RX_METADATA_FEATURES", "uint64"),
        ("NETDEV_A_DEV_XSK_FEATURES", "uint64"),
    )


class _QueueMsg(genlmsg):  # type: ignore[misc]
    nla_map = (
        ("NETDEV_A_QUEUE_UNSPEC", "none"),
        ("NETDEV_A_QUEUE_ID", "uint32"),
        ("NETDEV_A_QUEUE_IFINDEX", "uint32"),
        ("NETDEV_A_QUEUE_TYPE", "uint32"),
        ("NETDEV_A_QUEUE_NAPI_ID", "uint32"),
    )


def _names(bits: int | None, table: dict[int, str]) -> list[str] | None:
    if bits is None:
        return None
    out = [name for bit, name in table.items() if bits & bit]
    out += [f"bit{b}" for b in range(64) if bits & (1 << b) and (1 << b) not in table]
    return out


def _request(msg_class: type[genlmsg], cmd: int, attrs: list[Any], dump: bool) -> list[Any]:
    s = GenericNetlinkSocket()
    try:
        s.bind("netdev", msg_class)
        m = msg_class()
        m["cmd"] = cmd
        m["version"] = 1
        m["attrs"] = attrs
        flags = NLM_F_REQUEST | (NLM_F_DUMP if dump else 0)
        return list(s.nlm_request(m, msg_type=s.prid, msg_flags=flags))
    finally:
        s.close()


def netdev_info(ifname: str) -> dict[str, Any]:
    """The ``netdev`` family's view of IFNAME: ``xdp_features``, ``xdp_rx_metadata`` and
    ``xsk_features`` (lists of the kernel's names), ``xdp_zc_max_segs`` (how many
    frames a zero-copy packet may span: 1 means the driver cannot combine zero-copy with
    multi-buffer), and ``queues`` (each ``{"id", "type", "napi_id"}``; ``napi_id``
    None where the driver does not link its NAPI instances to queues). A value is
    None where this kernel does not report it; ``missing`` says which and from which
    kernel version on it is reported."""
    ifindex = socket.if_nametoindex(ifname)
    out: dict[str, Any] = {
        "xdp_features": None,
        "xdp_zc_max_segs": None,
        "xdp_rx_metadata": None,
        "xsk_features": None,
        "queues": None,
        "missing": [],
    }
    try:
        dev = _request(_DevMsg, _DEV_GET, [["NETDEV_A_DEV_IFINDEX", ifindex]], dump=False)
    except Exception as e:  # NetlinkError, or pyroute2's own when the family is absent
        out["missing"].append(f"the kernel's netdev netlink family (Linux 6.3+): {e}")
        return out
    if dev:
        get = dev[0].get_attr
        out["xdp_features"] = _names(get("NETDEV_A_DEV_XDP_FEATURES"), XDP_FEATURES)
        out["xdp_zc_max_segs"] = get("NETDEV_A_DEV_XDP_ZC_MAX_SEGS")
        out["xdp_rx_metadata"] = _names(get("NETDEV_A_DEV_XDP_RX_METADATA_FEATURES"), RX_METADATA)
        out["xsk_features"] = _names(get("NETDEV_A_DEV_XSK_FEATURES"), XSK_FEATURES)
    for key, since in (
        ("xdp_zc_max_segs", "6.6, for drivers with zero-copy"),
        ("xdp_rx_metadata", "6.8"),
        ("xsk_features", "6.8"),
    ):
        if out[key] is None:
            out["missing"].append(f"{key} (reported from Linux {since})")
    try:
        queues = _request(_QueueMsg, _QUEUE_GET, [["NETDEV_A_QUEUE_IFINDEX", ifindex]], dump=True)
    except NetlinkError as e:
        out["missing"].append(f"queues and their NAPI ids (reported from Linux 6.9): {e}")
    else:
        out["queues"] = [
            {
                "id": q.get_attr("NETDEV_A_QUEUE_ID"),
                "type": "rx" if q.get_attr("NETDEV_A_QUEUE_TYPE") == 0 else "tx",
                "napi_id": q.get_attr("NETDEV_A_QUEUE_NAPI_ID"),
            }
            for q in queues
        ]
    return out


def default_choices(info: dict[str, Any], probe: dict[str, Any]) -> dict[str, str]:
    """What ``XskSocket(ifname, queue)`` with the defaults chooses on this interface,
    and why, from ``interface_info`` and ``netdev_info``: ``mode``, ``bind`` and
    ``multi_buffer``. Opening the socket is the final word (``sock.zerocopy``,
    ``sock.multi_buffer``, ``sock.warnings``)."""
    native = bool(info["native_xdp"])
    mode = (
        "native: the driver runs XDP programs and redirects"
        if native
        else "skb: the driver does not say it runs XDP programs natively"
    )
    # A packet fits one 4 KiB frame after XDP's 256 bytes of headroom.
    frame_room = 4096 - 256
    needs_sg = not native or (info["mtu"] or 0) + 18 > frame_room
    sg = (
        f"on: the MTU ({info['mtu']}) does not fit a frame ({frame_room} bytes)"
        if native and needs_sg
        else "on: in skb mode packets can be larger than the MTU (GRO)"
        if needs_sg
        else f"off: the MTU ({info['mtu']}) fits a frame ({frame_room} bytes)"
    )
    if not info["zerocopy"]:
        bind = "copy: the driver does not offer zero-copy AF_XDP"
    elif not native:
        bind = "copy: zero-copy needs native mode"
    elif needs_sg and probe.get("xdp_zc_max_segs") == 1:
        bind = (
            "copy: the driver cannot combine zero-copy with multi-buffer "
            "(xdp_zc_max_segs 1); lower the MTU or pass multi_buffer=False"
        )
    else:
        bind = "zero-copy: the driver offers it"
    return {"mode": mode, "bind": bind, "multi_buffer": sg}
