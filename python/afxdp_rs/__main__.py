"""``python -m afxdp_rs``: the afxdp command line (see afxdp_rs.cli)."""

from __future__ import annotations

from afxdp_rs.cli import entry

if __name__ == "__main__":
    entry()
