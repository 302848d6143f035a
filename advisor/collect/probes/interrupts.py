"""Which IRQs belong to a network device, where they may run, and where they did run."""

from __future__ import annotations

import os

from .common import ProbeError, read_text


def parse_interrupts(text: str) -> dict[int, dict]:
    """/proc/interrupts -> {irq: {"name": action names, "per_cpu": [counts]}} (numbered IRQs only)."""
    lines = text.splitlines()
    if not lines:
        return {}
    cpu_columns = len(lines[0].split())
    table = {}
    for line in lines[1:]:
        label, _, rest = line.partition(":")
        if not label.strip().isdigit():
            continue
        fields = rest.split()
        counts = [int(f) for f in fields[:cpu_columns] if f.isdigit()]
        description = fields[len(counts):]  # chip, hwirq-trigger, then the action names
        name = " ".join(description[2:]) if len(description) > 2 else (description[-1] if description else "")
        table[int(label)] = {"name": name, "per_cpu": counts}
    return table


def device_irq_numbers(device: str, sys_class_net: str = "/sys/class/net") -> set[int]:
    """MSI/legacy IRQs of the device's bus device (or of its PCI parent, as for virtio_net)."""
    link = os.path.join(sys_class_net, device, "device")
    if not os.path.exists(link):
        return set()  # virtual device (veth, bridge, lo): no IRQs of its own
    bus_device = os.path.realpath(link)
    numbers: set[int] = set()
    for candidate in (bus_device, os.path.dirname(bus_device)):
        msi = os.path.join(candidate, "msi_irqs")
        if os.path.isdir(msi):
            numbers |= {int(n) for n in os.listdir(msi) if n.isdigit()}
            break
    try:
        legacy = int(read_text(os.path.join(bus_device, "irq")).strip())
        if legacy > 0 and not numbers:
            numbers.add(legacy)
    except (ProbeError, ValueError):
        pass
    return numbers


def names_device(name: str, device: str, bus_name: str | None) -> bool:
    """IRQ action names like 'eth0-TxRx-0', 'eth0' or 'virtio2-input.0' for virtio device virtio2."""
    for action in name.replace(",", " ").split():
        if action == device or action.startswith((device + "-", device + "@")):
            return True
        if bus_name and action.startswith(bus_name + "-"):
            return True
    return False


def affinity(irq: int, leaf: str) -> str | None:
    try:
        return read_text(f"/proc/irq/{irq}/{leaf}").strip()
    except ProbeError:
        return None


def device_irqs(device: str, table: dict[int, dict], sys_class_net: str = "/sys/class/net") -> list[dict]:
    """[{irq, name, cpus (smp_affinity_list), effective_cpus, per_cpu}] for one device."""
    link = os.path.join(sys_class_net, device, "device")
    bus_name = os.path.basename(os.path.realpath(link)) if os.path.exists(link) else None
    numbers = device_irq_numbers(device, sys_class_net)
    numbers |= {irq for irq, row in table.items() if names_device(row["name"], device, bus_name)}
    return [
        {
            "irq": irq,
            "name": table.get(irq, {}).get("name"),
            "cpus": affinity(irq, "smp_affinity_list"),
            "effective_cpus": affinity(irq, "effective_affinity_list"),
            "per_cpu": table.get(irq, {}).get("per_cpu"),
        }
        for irq in sorted(numbers)
    ]
