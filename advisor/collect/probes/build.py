"""Build flags of a target binary, from the DW_AT_producer of its DWARF compile units.

GCC records its options there (-grecord-gcc-switches, on by default) and expands -march=native
into the host CPU plus '--param=l1-cache-size=...' lines, which is how native builds are spotted.
"""

from __future__ import annotations

import os
import re
import time

from .common import ProbeError, probe

MAX_COMPILE_UNITS = 16     # ~4 ms each with pyelftools; the whole collection has 2 s
TIME_BUDGET_S = 0.25
ASSEMBLER_PRODUCERS = ("GNU AS", "as ", "yasm", "nasm")
OPTIMIZATION = re.compile(r"^-O(\d|s|z|g|fast)?$")


def optimization_level(producer: str) -> str | None:
    """Last -O flag ('-O' means -O1); '-O0' when flags are recorded but none is -O; None if no flags."""
    words = producer.split()
    levels = [w for w in words if OPTIMIZATION.match(w)]
    if levels:
        return "-O1" if levels[-1] == "-O" else levels[-1]
    return "-O0" if any(w.startswith("-") for w in words) else None


def march(producer: str) -> str | None:
    found = re.findall(r"(?:^|\s)-march=(\S+)", producer)
    return found[-1] if found else None


def is_native(producer: str) -> bool:
    return "-march=native" in producer or "--param=l1-cache-size=" in producer


def debug_info_file(elf) -> str | None:
    """The separate debug file /usr/lib/debug/.build-id/xx/yyyy.debug, when the binary is stripped."""
    note_section = elf.get_section_by_name(".note.gnu.build-id")
    if note_section is None:
        return None
    for note in note_section.iter_notes():
        if note["n_type"] == "NT_GNU_BUILD_ID":
            build_id = note["n_desc"]
            candidate = f"/usr/lib/debug/.build-id/{build_id[:2]}/{build_id[2:]}.debug"
            return candidate if os.path.exists(candidate) else None
    return None


def producers(path: str) -> list[str]:
    """Distinct DW_AT_producer strings of the first compile units (bounded), compiler ones first."""
    try:
        from elftools.common.exceptions import ELFError
        from elftools.elf.elffile import ELFFile
    except ImportError:
        raise ProbeError("pyelftools missing (pip install pyelftools)") from None
    try:
        with open(path, "rb") as handle:
            elf = ELFFile(handle)
            if not elf.has_dwarf_info() or elf.get_section_by_name(".debug_info") is None:
                separate = debug_info_file(elf)
                if separate is None:
                    raise ProbeError(f"no DWARF in {path}")
                return producers(separate)
            found: list[str] = []
            deadline = time.monotonic() + TIME_BUDGET_S
            for number, unit in enumerate(elf.get_dwarf_info().iter_CUs()):
                if number >= MAX_COMPILE_UNITS or time.monotonic() > deadline:
                    break
                attribute = unit.get_top_DIE().attributes.get("DW_AT_producer")
                if attribute is None:
                    continue
                value = attribute.value
                text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
                if text not in found:
                    found.append(text)
    except FileNotFoundError:
        raise ProbeError(f"{path} absent") from None
    except PermissionError:
        raise ProbeError(f"{path}: permission denied (not root?)") from None
    except ELFError:
        raise ProbeError(f"{path} is not an ELF file") from None
    if not found:
        raise ProbeError(f"no DW_AT_producer in the DWARF of {path}")
    return sorted(found, key=lambda p: p.startswith(ASSEMBLER_PRODUCERS))


@probe
def build_flags(path: str) -> dict:
    found = producers(path)
    main = found[0]
    levels = sorted({level for level in map(optimization_level, found) if level})
    return {
        "producer": main,
        "optimization": optimization_level(main),
        "optimization_levels": levels,
        "march": march(main),
        "march_native": is_native(main),
        "distinct_producers": len(found),
    }
