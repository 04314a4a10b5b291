"""Reading and writing packet captures: classic pcap (what tcpdump writes) and pcapng
(Wireshark's default), Ethernet frames only.

Writers put each record out whole: a file cut short by Ctrl-C, SIGTERM or a full disk
still ends on a complete packet (on a full disk the partial record is cut off again and
:class:`CaptureFileFull` says how many packets the file holds)."""

from __future__ import annotations

import errno
import os
import struct
import sys
import time
from collections.abc import Iterator
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, Literal

from afxdp_rs.errors import ConfigError

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = [
    "CaptureFileFull",
    "LINKTYPE_ETHERNET",
    "PcapReader",
    "PcapWriter",
    "open_capture",
]

LINKTYPE_ETHERNET = 1
Format = Literal["pcap", "pcapng"]

_MAGIC_US = 0xA1B2C3D4
_MAGIC_NS = 0xA1B23C4D
_HEADER = struct.Struct("<IHHiIII")
_RECORD = struct.Struct("<IIII")

# pcapng (draft-ietf-opsawg-pcapng): block types and the byte-order magic.
_SHB, _IDB, _PB, _SPB, _EPB = 0x0A0D0D0A, 0x00000001, 0x00000002, 0x00000003, 0x00000006
_BYTE_ORDER = 0x1A2B3C4D
_OPT_ENDOFOPT, _OPT_IF_TSRESOL = 0, 9


class CaptureFileFull(OSError):
    """The disk (or the file system's quota) is full: the file was cut back to its last
    whole packet, which ``packets`` counts."""

    def __init__(self, path: str, packets: int) -> None:
        super().__init__(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        self.packets = packets


def _pad4(n: int) -> int:
    return (4 - n % 4) % 4


class _Sink:
    """Writes whole records to a file descriptor, buffered, and knows where the last
    whole record ends: a write the disk refuses half-way is cut back to it."""

    def __init__(self, fd: int, path: str, own: bool) -> None:
        self.fd, self.path, self.own = fd, path, own
        self._buf = bytearray()
        self._records = 0  # records fully written out
        # The buffered records: where each ends in _buf, and whether it is a packet.
        self._pending: list[tuple[int, bool]] = []
        self._written = 0  # bytes written out
        self._seekable = own and os.path.isfile(path)

    def write(self, record: bytes, counts: bool = True) -> None:
        self._buf += record
        self._pending.append((len(self._buf), counts))
        if len(self._buf) >= 1 << 16:
            self.flush()

    def flush(self) -> None:
        done = 0
        failure: OSError | None = None
        with memoryview(self._buf) as view:
            try:
                while done < len(view):
                    done += os.write(self.fd, view[done:])
            except OSError as e:
                failure = e
        self._written += done
        if failure is not None:
            if failure.errno in (errno.ENOSPC, errno.EDQUOT) and self._seekable:
                self._cut_back(done)
                raise CaptureFileFull(self.path, self._records) from None
            # What was written is out; the rest stays for another try.
            self._records += sum(1 for end, packet in self._pending if packet and end <= done)
            self._pending = [(end - done, p) for end, p in self._pending if end > done]
            del self._buf[:done]
            raise failure
        self._records += sum(1 for _, packet in self._pending if packet)
        self._buf.clear()
        self._pending.clear()

    def _cut_back(self, done: int) -> None:
        """`done` bytes of the buffer reached the file: keep the whole records among
        them, cut the rest off, forget the others."""
        whole = 0
        for end, packet in self._pending:
            if end > done:
                break
            whole = end
            self._records += packet
        os.ftruncate(self.fd, self._written - done + whole)
        self._written += whole - done
        self._buf.clear()
        self._pending.clear()

    @property
    def size(self) -> int:
        """Bytes in the file, counting what is still buffered."""
        return self._written + len(self._buf)

    def close(self) -> None:
        try:
            self.flush()
        finally:
            if self.own:
                os.close(self.fd)


class PcapWriter:
    """Writes Ethernet frames to a capture file with nanosecond timestamps: classic
    pcap (``format="pcap"``, the default, what tcpdump writes) or ``"pcapng"``.

    ``path`` may be ``"-"`` for standard output (``afxdp capture -w - | tcpdump -r -``),
    or an open binary stream. Records are buffered and written whole; ``flush()``
    hands what was written to the reader (a pipe) at once. On a full disk the file is
    cut back to its last whole packet and :class:`CaptureFileFull` is raised."""

    def __init__(self, path: str | BinaryIO, snaplen: int = 65535, format: Format = "pcap") -> None:
        if not isinstance(snaplen, int) or not 1 <= snaplen <= 262144:
            raise ConfigError(f"snaplen={snaplen!r}: use a byte count from 1 to 262144")
        if format not in ("pcap", "pcapng"):
            raise ConfigError(f"format={format!r}: use 'pcap' or 'pcapng'")
        self.snaplen = snaplen
        self.format: Format = format
        self.packets = 0
        self.bytes = 0
        if isinstance(path, str):
            self.path = path
            if path == "-":
                sys.stdout.flush()
                self._sink = _Sink(sys.stdout.fileno(), path, own=False)
            else:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
                self._sink = _Sink(fd, path, own=True)
        else:
            self.path = getattr(path, "name", "<stream>")
            path.flush()
            self._sink = _Sink(path.fileno(), self.path, own=False)
        if format == "pcap":
            self._sink.write(
                _HEADER.pack(_MAGIC_NS, 2, 4, 0, 0, snaplen, LINKTYPE_ETHERNET), counts=False
            )
        else:
            self._sink.write(self._pcapng_header(), counts=False)

    def _pcapng_header(self) -> bytes:
        # Section header: byte order, version 1.0, section length unknown (-1).
        shb = struct.pack("<IIIHHq", _SHB, 28, _BYTE_ORDER, 1, 0, -1) + struct.pack("<I", 28)
        # One Ethernet interface with nanosecond timestamps (if_tsresol = 9).
        opts = struct.pack("<HHB3x", _OPT_IF_TSRESOL, 1, 9) + struct.pack("<HH", _OPT_ENDOFOPT, 0)
        length = 20 + len(opts)
        idb = struct.pack("<IIHHI", _IDB, length, LINKTYPE_ETHERNET, 0, self.snaplen)
        return shb + idb + opts + struct.pack("<I", length)

    def write(self, frame: Buffer, ts: float | None = None) -> None:
        data = bytes(frame)  # a Frame of several segments joins them
        ns = time.time_ns() if ts is None else int(ts * 1e9)
        cap = data[: self.snaplen]
        if self.format == "pcap":
            sec, nsec = divmod(ns, 1_000_000_000)
            record = _RECORD.pack(sec, nsec, len(cap), len(data)) + cap
        else:
            pad = _pad4(len(cap))
            length = 32 + len(cap) + pad
            record = (
                struct.pack(
                    "<IIIIIII", _EPB, length, 0, ns >> 32, ns & 0xFFFFFFFF, len(cap), len(data)
                )
                + cap
                + bytes(pad)
                + struct.pack("<I", length)
            )
        self._sink.write(record)
        self.packets += 1
        self.bytes += len(data)

    @property
    def size(self) -> int:
        """Bytes in the file so far (headers included)."""
        return self._sink.size

    def flush(self) -> None:
        self._sink.flush()

    def close(self) -> None:
        self._sink.close()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _read_all(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    with open(path, "rb") as f:
        return f.read()


class PcapReader:
    """Reads the Ethernet frames of a capture file: classic pcap (either byte order,
    µs or ns timestamps) or pcapng (enhanced, simple and obsolete packet blocks, any
    number of sections and Ethernet interfaces, any timestamp resolution). ``"-"``
    reads standard input."""

    def __init__(self, path: str) -> None:
        self.path = "standard input" if path == "-" else path
        data = _read_all(path)
        self._data = data
        if len(data) < 4:
            raise ConfigError(
                f"{self.path} is not a capture file: it is {len(data)} bytes long "
                "(a pcap or pcapng file starts with a header of 24 or more)"
            )
        magic_le = struct.unpack_from("<I", data)[0]
        magic_be = struct.unpack_from(">I", data)[0]
        if magic_le == _SHB:
            self.format: Format = "pcapng"
            return
        self.format = "pcap"
        if len(data) < _HEADER.size:
            raise ConfigError(
                f"{self.path} is not a pcap file: it is {len(data)} bytes long, shorter "
                f"than a pcap header ({_HEADER.size})"
            )
        if magic_le in (_MAGIC_US, _MAGIC_NS):
            self._endian = "<"
            self._per_second = 1e9 if magic_le == _MAGIC_NS else 1e6
        elif magic_be in (_MAGIC_US, _MAGIC_NS):
            self._endian = ">"
            self._per_second = 1e9 if magic_be == _MAGIC_NS else 1e6
        else:
            raise ConfigError(
                f"{self.path} is neither pcap nor pcapng: it starts with {data[:8]!r}, "
                "where a capture file has a pcap magic number or a pcapng section header"
            )
        linktype = struct.unpack_from(self._endian + "I", data, 20)[0]
        if linktype != LINKTYPE_ETHERNET:
            raise ConfigError(
                f"{self.path} has link type {linktype}: only Ethernet (1) frames can be sent"
            )

    def records(self) -> Iterator[tuple[float, bytes]]:
        """Each frame with its time (seconds since the epoch)."""
        if self.format == "pcapng":
            yield from self._pcapng_records()
            return
        data = self._data
        record = struct.Struct(self._endian + "IIII")
        off = _HEADER.size
        while off < len(data):
            if off + record.size > len(data):
                raise ConfigError(f"{self.path} is truncated at byte {off} (in a record header)")
            sec, frac, caplen, _ = record.unpack_from(data, off)
            off += record.size
            if off + caplen > len(data):
                raise ConfigError(f"{self.path} is truncated at byte {off} (in a packet)")
            yield sec + frac / self._per_second, data[off : off + caplen]
            off += caplen

    def _pcapng_records(self) -> Iterator[tuple[float, bytes]]:
        data, off = self._data, 0
        endian = "<"
        # Per interface of the current section: (link type, ticks per second).
        interfaces: list[tuple[int, float]] = []
        while off < len(data):
            if off + 12 > len(data):
                raise ConfigError(f"{self.path} is truncated at byte {off} (in a block header)")
            if struct.unpack_from("<I", data, off)[0] == _SHB:
                order = data[off + 8 : off + 12]
                if order == struct.pack("<I", _BYTE_ORDER):
                    endian = "<"
                elif order == struct.pack(">I", _BYTE_ORDER):
                    endian = ">"
                else:
                    raise ConfigError(
                        f"{self.path}: a pcapng section at byte {off} has no byte-order magic"
                    )
                interfaces = []
            btype, blen = struct.unpack_from(endian + "II", data, off)
            if blen < 12 or blen % 4 or off + blen > len(data):
                raise ConfigError(
                    f"{self.path} is truncated or damaged at byte {off} (a block of {blen} bytes)"
                )
            body = data[off + 8 : off + blen - 4]
            if btype == _IDB:
                linktype = struct.unpack_from(endian + "H", body, 0)[0]
                interfaces.append((linktype, self._tsresol(body[8:], endian)))
            elif btype in (_EPB, _PB):
                if btype == _EPB:
                    iface, hi, lo, caplen, _orig = struct.unpack_from(endian + "IIIII", body, 0)
                else:
                    iface, _drops, hi, lo, caplen, _orig = struct.unpack_from(
                        endian + "HHIIII", body, 0
                    )
                yield self._packet(interfaces, iface, (hi << 32) | lo, body[20 : 20 + caplen], off)
            elif btype == _SPB:
                orig = struct.unpack_from(endian + "I", body, 0)[0]
                snap = len(body) - 4
                yield self._packet(interfaces, 0, None, body[4 : 4 + min(orig, snap)], off)
            off += blen

    def _packet(
        self,
        interfaces: list[tuple[int, float]],
        iface: int,
        ticks: int | None,
        frame: bytes,
        off: int,
    ) -> tuple[float, bytes]:
        if iface >= len(interfaces):
            raise ConfigError(
                f"{self.path}: the packet at byte {off} names interface {iface}, which "
                "no interface block describes"
            )
        linktype, per_second = interfaces[iface]
        if linktype != LINKTYPE_ETHERNET:
            raise ConfigError(
                f"{self.path}: the packet at byte {off} has link type {linktype}: only "
                "Ethernet (1) frames can be sent"
            )
        return (0.0 if ticks is None else ticks / per_second), frame

    @staticmethod
    def _tsresol(options: bytes, endian: str) -> float:
        off = 0
        while off + 4 <= len(options):
            code, length = struct.unpack_from(endian + "HH", options, off)
            if code == _OPT_ENDOFOPT:
                break
            if code == _OPT_IF_TSRESOL and length >= 1:
                v = options[off + 4]
                return float(2 ** (v & 0x7F)) if v & 0x80 else float(10**v)
            off += 4 + length + _pad4(length)
        return 1e6

    def __iter__(self) -> Iterator[bytes]:
        return (frame for _, frame in self.records())

    def frames(self) -> list[bytes]:
        return list(self)


def open_capture(path: str, snaplen: int = 65535, format: Format | None = None) -> PcapWriter:
    """A writer for `path`, in `format`, or else by its name (``.pcapng`` writes
    pcapng, anything else classic pcap)."""
    fmt: Format = format or ("pcapng" if path.endswith(".pcapng") else "pcap")
    return PcapWriter(path, snaplen, fmt)
