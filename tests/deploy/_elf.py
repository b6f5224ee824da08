"""Just enough of ELF to check a built native module without running it: its machine, the libraries it
needs (DT_NEEDED) and the glibc versions it asks for (.gnu.version_r). Little-endian ELF64 only, which is
what every aarch64 Linux wheel holds; anything else is reported as such."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

EM_AARCH64 = 183
EM_X86_64 = 62
_SHT_DYNAMIC = 6
_SHT_GNU_VERNEED = 0x6FFFFFFE
_DT_NEEDED = 1


@dataclass(frozen=True)
class Elf:
    machine: int
    needed: tuple[str, ...]
    versions: tuple[str, ...]  # e.g. GLIBC_2.17


class NotElf64(ValueError):
    pass


def read(path: Path) -> Elf:
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise NotElf64(f"{path.name}: not a little-endian ELF64 file")
    machine = struct.unpack_from("<H", data, 18)[0]
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]

    def string(section: int, offset: int) -> str:
        start = sections[section][4] + offset
        return data[start : data.index(b"\0", start)].decode("ascii", "replace")

    needed: list[str] = []
    versions: list[str] = []
    for _name, kind, _flags, _addr, offset, size, link, info, _align, _entsize in sections:
        if kind == _SHT_DYNAMIC:
            for pos in range(offset, offset + size, 16):
                tag, value = struct.unpack_from("<qQ", data, pos)
                if tag == 0:
                    break
                if tag == _DT_NEEDED:
                    needed.append(string(link, value))
        elif kind == _SHT_GNU_VERNEED:
            pos = offset
            for _ in range(info):
                _version, count, _file, aux, next_entry = struct.unpack_from("<HHIII", data, pos)
                apos = pos + aux
                for _ in range(count):
                    _hash, _aflags, _other, name, anext = struct.unpack_from("<IHHII", data, apos)
                    versions.append(string(link, name))
                    apos += anext
                pos += next_entry
    return Elf(machine=machine, needed=tuple(needed), versions=tuple(versions))
