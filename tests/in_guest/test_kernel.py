"""What each kernel of the matrix lacks, and that the library says so naming the kernel
version and the feature (or falls back), tested on that kernel."""

from __future__ import annotations

import pytest

import afxdp_rs

from .guestnet import kernel


def test_busy_polling_needs_5_11() -> None:
    if kernel() >= (5, 11):
        with afxdp_rs.XskSocket("eth0", 0, busy_poll=True) as sock:
            assert sock.busy_poll
        return
    # SO_PREFER_BUSY_POLL and SO_BUSY_POLL_BUDGET came with 5.11.
    with pytest.raises(afxdp_rs.AfXdpError, match="5.11"):
        afxdp_rs.XskSocket("eth0", 0, busy_poll=True)


def test_multi_buffer_needs_6_6() -> None:
    if kernel() >= (6, 6):
        with afxdp_rs.XskSocket("eth0", 0, multi_buffer=True, bind="copy") as sock:
            assert sock.multi_buffer
        return
    with pytest.raises(afxdp_rs.AfXdpError, match="6.6"):
        afxdp_rs.XskSocket("eth0", 0, multi_buffer=True)
    # "auto" falls back to one frame per packet, and works.
    with afxdp_rs.XskSocket("eth0", 0, multi_buffer="auto") as sock:
        assert sock.multi_buffer is False


def test_the_program_is_attached_through_a_bpf_link() -> None:
    """BPF links for XDP came with 5.9: every kernel of the matrix has them, so the
    program goes away with the process, even on a crash."""
    with afxdp_rs.XskSocket("eth0", 0):
        st = afxdp_rs._afxdp.xdp_status("eth0")
        assert st["ours"] and st["link_id"] is not None, st
    assert afxdp_rs.interface_info("eth0")["xdp_prog_id"] == 0
