"""Network sysctls and per-device settings: qdisc, GRO, interrupt moderation, RPS/XPS, IRQs.

Everything here depends on the network namespace the process runs in (/sys/class/net and
/proc/sys/net are per namespace); netns.py runs it inside another namespace.
"""

from __future__ import annotations

import json
import os

from .common import ProbeError, probe, read_text, run
from .interrupts import device_irqs, parse_interrupts

SYS_CLASS_NET = "/sys/class/net"
# Sysctls that exist only in the initial namespace (global); netns.py reads them on the host.
GLOBAL_SYSCTLS = ("busy_read", "busy_poll", "default_qdisc")
SYSCTLS = {
    "busy_read": "/proc/sys/net/core/busy_read",
    "busy_poll": "/proc/sys/net/core/busy_poll",
    "default_qdisc": "/proc/sys/net/core/default_qdisc",
    "tcp_congestion_control": "/proc/sys/net/ipv4/tcp_congestion_control",
    "tcp_available_congestion_control": "/proc/sys/net/ipv4/tcp_available_congestion_control",
    "tcp_allowed_congestion_control": "/proc/sys/net/ipv4/tcp_allowed_congestion_control",
}


@probe
def sysctl(name: str) -> int | str | list | dict:
    path = SYSCTLS[name]
    if not os.path.exists(path):
        raise ProbeError(f"{path} not in this namespace")
    text = read_text(path).strip()
    if name.endswith("_congestion_control") and name != "tcp_congestion_control":
        return text.split()
    return int(text) if text.lstrip("-").isdigit() else text


def net_sysctls() -> dict:
    return {name: sysctl(name) for name in SYSCTLS}


@probe
def root_qdiscs(tool: str = "tc") -> dict:
    """{device: kind of its root qdisc} from one `tc -j qdisc show` for all devices."""
    try:
        entries = json.loads(run([tool, "-j", "qdisc", "show"]))
    except ValueError:
        raise ProbeError("tc -j qdisc show: output is not JSON") from None
    return {e["dev"]: e["kind"] for e in entries if e.get("root") and "dev" in e}


@probe
def gro(device: str, tool: str = "ethtool") -> bool | dict:
    """generic-receive-offload from `ethtool -k DEV`."""
    for line in run([tool, "-k", device]).splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "generic-receive-offload":
            return value.split()[0] == "on"
    raise ProbeError(f"ethtool -k {device}: no generic-receive-offload line")


@probe
def coalescing(device: str, tool: str = "ethtool") -> dict:
    """Adaptive RX and rx-usecs from `ethtool -c DEV`; {'supported': False} for veth, lo, ..."""
    try:
        text = run([tool, "-c", device])
    except ProbeError as exc:
        if "not supported" in str(exc):
            return {"supported": False, "adaptive_rx": None, "rx_usecs": None}
        raise
    result: dict = {"supported": True, "adaptive_rx": None, "rx_usecs": None}
    for line in text.splitlines():
        if line.startswith("Adaptive RX:"):
            result["adaptive_rx"] = line.split()[2] == "on"
        elif line.startswith("rx-usecs:"):
            value = line.split()[1]
            result["rx_usecs"] = int(value) if value.isdigit() else None
    return result


def queue_masks(device: str, prefix: str, leaf: str) -> dict:
    """{queue: CPU mask} for rx-*/rps_cpus or tx-*/xps_cpus; None where the file cannot be read."""
    queues_dir = os.path.join(SYS_CLASS_NET, device, "queues")
    try:
        queues = sorted((q for q in os.listdir(queues_dir) if q.startswith(prefix)),
                        key=lambda q: int(q.split("-")[1]))
    except (OSError, ValueError, IndexError):
        return {}
    masks = {}
    for queue in queues:
        try:
            masks[queue] = read_text(os.path.join(queues_dir, queue, leaf)).strip()
        except ProbeError:
            masks[queue] = None  # e.g. xps_cpus on a single-queue device reads ENOENT
    return masks


def driver(device: str) -> str | None:
    link = os.path.join(SYS_CLASS_NET, device, "device", "driver")
    return os.path.basename(os.readlink(link)) if os.path.islink(link) else None


def operstate(device: str) -> str | None:
    try:
        return read_text(os.path.join(SYS_CLASS_NET, device, "operstate")).strip()
    except ProbeError:
        return None


def device_state(device: str, qdiscs: dict, irq_table: dict) -> dict:
    """One device; qdisc None means no root qdisc is attached (device down, or ifb)."""
    coalesce = coalescing(device)
    return {
        "driver": driver(device),
        "operstate": operstate(device),
        "qdisc": qdiscs[device] if device in qdiscs else (qdiscs if "error" in qdiscs else None),
        "gro": gro(device),
        "coalesce_supported": coalesce.get("supported", coalesce),
        "adaptive_rx": coalesce.get("adaptive_rx", coalesce),
        "rx_usecs": coalesce.get("rx_usecs", coalesce),
        "rps_cpus": queue_masks(device, "rx-", "rps_cpus"),
        "xps_cpus": queue_masks(device, "tx-", "xps_cpus"),
        "irqs": device_irqs(device, irq_table, SYS_CLASS_NET),
    }


@probe
def devices_state() -> dict:
    try:
        devices = sorted(os.listdir(SYS_CLASS_NET))
    except OSError as exc:
        raise ProbeError(f"{SYS_CLASS_NET}: {exc.strerror}") from None
    qdiscs = root_qdiscs()
    try:
        irq_table = parse_interrupts(read_text("/proc/interrupts"))
    except ProbeError:
        irq_table = {}
    return {device: device_state(device, qdiscs, irq_table) for device in devices}


def net_state() -> dict:
    return {**net_sysctls(), "devices": devices_state()}
