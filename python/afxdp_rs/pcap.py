"""Reading and writing classic pcap files (what tcpdump and Wireshark read)."""

from __future__ import annotations

import struct
import sys
import time
from collections.abc import Iterator
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO

from afxdp_rs.errors import ConfigError

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["PcapReader", "PcapWriter", "LINKTYPE_ETHERNET"]

LINKTYPE_ETHERNET = 1
_MAGIC_US = 0xA1B2C3D4
_MAGIC_NS = 0xA1B23C4D
_HEADER = struct.Struct("<IHHiIII")
_RECORD = struct.Struct("<IIII")


class PcapWriter:
    """Writes Ethernet frames to a pcap file with nanosecond timestamps (tcpdump and
    Wireshark read them).

    ``path`` may be ``"-"`` for standard output (``afxdp capture -w - | tcpdump -r -``),
    or an open binary stream. Each record is written whole in one call, so a file cut
    short by Ctrl-C or SIGTERM still ends on a complete packet; ``flush()`` hands what
    was written to the reader (a pipe) at once."""

    def __init__(self, path: str | BinaryIO, snaplen: int = 65535) -> None:
        if not isinstance(snaplen, int) or not 1 <= snaplen <= 262144:
            raise ConfigError(f"snaplen={snaplen!r}: use a byte count from 1 to 262144")
        self.snaplen = snaplen
        self.packets = 0
        self.bytes = 0
        self._own = False
        if isinstance(path, str):
            self.path = path
            if path == "-":
                self._f: BinaryIO = sys.stdout.buffer
            else:
                self._f = open(path, "wb")  # noqa: SIM115 - closed in close()
                self._own = True
        else:
            self.path = getattr(path, "name", "<stream>")
            self._f = path
        self._f.write(_HEADER.pack(_MAGIC_NS, 2, 4, 0, 0, snaplen, LINKTYPE_ETHERNET))

    def write(self, frame: Buffer, ts: float | None = None) -> None:
        data = bytes(frame)  # a Frame of several segments joins them
        ns = time.time_ns() if ts is None else int(ts * 1e9)
        sec, nsec = divmod(ns, 1_000_000_000)
        cap = data[: self.snaplen]
        self._f.write(_RECORD.pack(sec, nsec, len(cap), len(data)) + cap)
        self.packets += 1
        self.bytes += len(data)

    def flush(self) -> None:
        self._f.flush()

    def close(self) -> None:
        if self._own:
            self._f.close()
        else:
            self._f.flush()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class PcapReader:
    """Reads the frames of a pcap file (little- or big-endian, µs or ns timestamps)."""

    def __init__(self, path: str) -> None:
        self.path = path
        with open(path, "rb") as f:
            data = f.read()
        if len(data) < _HEADER.size:
            raise ConfigError(f"{path} is not a pcap file: only {len(data)} bytes")
        magic_le = struct.unpack_from("<I", data)[0]
        magic_be = struct.unpack_from(">I", data)[0]
        if magic_le in (_MAGIC_US, _MAGIC_NS):
            self._endian = "<"
            self._per_second = 1e9 if magic_le == _MAGIC_NS else 1e6
        elif magic_be in (_MAGIC_US, _MAGIC_NS):
            self._endian = ">"
            self._per_second = 1e9 if magic_be == _MAGIC_NS else 1e6
        else:
            raise ConfigError(
                f"{path} is not a classic pcap file (magic {magic_le:#x}); pcapng is not "
                "read: convert it with `editcap -F pcap in.pcapng out.pcap`"
            )
        linktype = struct.unpack_from(self._endian + "I", data, 20)[0]
        if linktype != LINKTYPE_ETHERNET:
            raise ConfigError(f"{path} has link type {linktype}: only Ethernet (1) is sent")
        self._data = data

    def records(self) -> Iterator[tuple[float, bytes]]:
        """Each frame with its time (seconds since the epoch)."""
        data = self._data
        record = struct.Struct(self._endian + "IIII")
        off = _HEADER.size
        while off + record.size <= len(data):
            sec, frac, caplen, _ = record.unpack_from(data, off)
            off += record.size
            if off + caplen > len(data):
                raise ConfigError(f"{self.path} is truncated at byte {off}")
            yield sec + frac / self._per_second, data[off : off + caplen]
            off += caplen

    def __iter__(self) -> Iterator[bytes]:
        return (frame for _, frame in self.records())

    def frames(self) -> list[bytes]:
        return list(self)
