"""``python -m afxdp_rs``: the afxdp command line (see afxdp_rs.cli)."""

from __future__ import annotations

import sys

from afxdp_rs.cli import main

if __name__ == "__main__":
    sys.exit(main())
