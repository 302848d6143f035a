"""Kernel release and command line, CPUs, and the speculative-execution mitigations in force."""

from __future__ import annotations

import os

from .common import ProbeError, probe, read_text

VULNERABILITIES_DIR = "/sys/devices/system/cpu/vulnerabilities"

# Kernel parameters that turn each mitigation off (Documentation/admin-guide/kernel-parameters.txt).
# "mitigations=off" turns all of them off at once.
OFF_PARAMETERS = {
    "spectre_v1": ["nospectre_v1"],
    "spectre_v2": ["nospectre_v2", "spectre_v2=off", "spectre_v2_user=off", "spectre_bhi=off"],
    "spec_store_bypass": ["spec_store_bypass_disable=off", "nospec_store_bypass_disable"],
    "meltdown": ["pti=off", "nopti"],
    "l1tf": ["l1tf=off"],
    "mds": ["mds=off"],
    "tsx_async_abort": ["tsx_async_abort=off"],
    "itlb_multihit": ["kvm.nx_huge_pages=off"],
    "srbds": ["srbds=off"],
    "mmio_stale_data": ["mmio_stale_data=off"],
    "retbleed": ["retbleed=off"],
    "spec_rstack_overflow": ["spec_rstack_overflow=off"],
    "gather_data_sampling": ["gather_data_sampling=off"],
    "reg_file_data_sampling": ["reg_file_data_sampling=off"],
    "indirect_target_selection": ["indirect_target_selection=off"],
    "tsa": ["tsa=off"],
    "vmscape": ["vmscape=off"],
    "old_microcode": [],  # not a mitigation: the fix is a microcode update
}
ALL_OFF = "mitigations=off"


@probe
def kernel_info() -> dict:
    return {
        "release": os.uname().release,
        "cmdline": read_text("/proc/cmdline").strip(),
    }


@probe
def cpu_info() -> dict:
    return {
        "count": os.cpu_count(),
        "online": read_text("/sys/devices/system/cpu/online").strip(),
    }


@probe
def mitigations_raw() -> dict:
    """{vulnerability file name: its text}, exactly as the kernel reports it."""
    try:
        names = sorted(os.listdir(VULNERABILITIES_DIR))
    except FileNotFoundError:
        raise ProbeError(f"{VULNERABILITIES_DIR} absent (kernel older than 4.15 or not x86/arm64)") from None
    result = {}
    for name in names:
        try:
            result[name] = read_text(os.path.join(VULNERABILITIES_DIR, name)).strip()
        except ProbeError as exc:
            result[name] = f"unreadable: {exc}"
    return result


def classify(text: str) -> tuple[str, str]:
    """(state, detail) of one vulnerability text.

    state: not_affected | mitigated | partial (says Vulnerable but names a mechanism that still
    runs, e.g. 'Vulnerable: Safe RET, no microcode') | vulnerable | unknown.
    """
    head, _, detail = text.partition(":")
    head, detail = head.strip(), detail.strip()
    if head == "Not affected":
        return "not_affected", ""
    if head == "Mitigation":
        return "mitigated", detail
    if head.startswith("Vulnerable"):
        return ("partial", detail) if detail else ("vulnerable", "")
    return "unknown", text


def mitigations_view(raw: dict, cmdline: str = "") -> dict:
    """Which mitigations cost time now, and which boot parameters would turn each off.

    ``active`` lists mitigated and partially mitigated vulnerabilities (their code paths run);
    ``already_off`` lists parameters from OFF_PARAMETERS already on the kernel command line.
    """
    if "error" in raw:
        return raw
    words = cmdline.split()
    by_name = {}
    for name, text in raw.items():
        state, detail = classify(text)
        by_name[name] = {
            "state": state,
            "detail": detail,
            "off_parameters": OFF_PARAMETERS.get(name, []) + ([ALL_OFF] if name != "old_microcode" else []),
        }
    known_off = {p for params in OFF_PARAMETERS.values() for p in params} | {ALL_OFF}
    return {
        "active": sorted(n for n, v in by_name.items() if v["state"] in ("mitigated", "partial")),
        "vulnerable": sorted(n for n, v in by_name.items() if v["state"] in ("vulnerable", "partial")),
        "already_off": [w for w in words if w in known_off],
        "by_name": by_name,
    }
