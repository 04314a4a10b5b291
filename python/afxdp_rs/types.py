"""Type names for annotations: the values the string options accept."""

from __future__ import annotations

from typing import Literal

__all__ = ["BindMode", "XdpMode"]

#: How the XDP program is attached: native (driver), skb (generic), or native else skb.
XdpMode = Literal["auto", "native", "skb"]
#: Copy or zero-copy (the kernel chooses with "auto"; the others are spellings of these).
BindMode = Literal["auto", "default", "copy", "zerocopy", "zero-copy", "zc"]
