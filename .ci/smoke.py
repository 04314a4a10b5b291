"""Smoke test of an installed wheel, run from outside the source tree: import, then one
packet each way on a veth test bed."""

from __future__ import annotations

import socket
import sys

import afxdp_rs
from afxdp_rs.testbed import VethTestbed

assert "site-packages" in afxdp_rs.__file__, afxdp_rs.__file__

with VethTestbed(ephemeral=True) as tb, afxdp_rs.XskSocket(tb.inner, 0) as sock:
    with tb.packet_socket(tb.peer) as peer:
        peer.settimeout(2.0)
        into = tb.frame(1, 64)
        peer.send(into)
        with sock.recv(8, timeout=2.0) as batch:
            got = batch.to_list()
            # The zero-copy path: the buffer protocol of the limited API.
            for i, frame in enumerate(batch):
                with memoryview(frame) as view:
                    assert view.readonly is False and view.tobytes() == got[i]
        assert into in got, got
        out = tb.frame(2, 64, to_inner=False)
        assert sock.send([out], timeout=2.0) == 1
        assert sock.flush(timeout=2.0)
        while True:
            data, addr = peer.recvfrom(2048)
            if addr[2] != socket.PACKET_OUTGOING:
                break
        assert data == out, data
print(
    f"smoke: afxdp_rs {afxdp_rs.__version__} on CPython {sys.version.split()[0]} "
    f"from {afxdp_rs.__file__}: rx and tx ok"
)
sys.exit(0)
