"""Which IRQs belong to a network device, where they may run, and where they did run."""

from __future__ import annotations

import os

from .common import ProbeError, read_text


def cpu_numbers(header: str) -> list[int]:
    """'CPU0 CPU1 CPU3' -> [0, 1, 3]: the header of /proc/interrupts and /proc/softirqs, which
    show only online CPUs."""
    cpus = []
    for word in header.split():
        if not (word.startswith("CPU") and word[3:].isdigit()):
            raise ProbeError(f"unexpected header word {word!r}")
        cpus.append(int(word[3:]))
    return cpus


def interrupt_rows(text: str):
    """The one reader of /proc/interrupts: (CPU numbers, rows), each row (line number, key,
    counts, words after the counts, the line).

    The header names the online CPUs ('CPU0 CPU1 CPU3'); a row has one count per column
    (ERR and MIS have a single one). A malformed header raises ProbeError; a malformed row has
    key '' or no counts, and its caller decides (the collector rejects the file naming the
    line, the state probe skips it).
    """
    lines = text.splitlines()
    if not lines:
        return [], []
    cpus = cpu_numbers(lines[0])
    rows = []
    for number, line in enumerate(lines[1:], 2):
        key, sep, rest = line.partition(":")
        words = rest.split()
        n = 0
        while n < len(words) and n < len(cpus) and words[n].isdigit():
            n += 1
        rows.append((number, key.strip() if sep else "", [int(w) for w in words[:n]], words[n:], line))
    return cpus, rows


def per_cpu(cpus: list[int], counts: list[int], ncpu: int = 0) -> list[int]:
    """Counts by CPU number: the columns are the online CPUs only, an offline one counts 0."""
    row = [0] * max(ncpu, max(cpus, default=-1) + 1)
    for cpu, count in zip(cpus, counts):
        row[cpu] = count
    return row


def parse_interrupts(text: str) -> dict[int, dict]:
    """/proc/interrupts -> {irq: {"name": action names, "per_cpu": [counts by CPU number]}}
    (numbered IRQs only; an offline CPU's column is absent from the file and counts 0 here)."""
    cpus, rows = interrupt_rows(text)
    table = {}
    for _, key, counts, words, _ in rows:
        if not key.isdigit():
            continue
        # words: chip, hwirq-trigger, then the action names
        name = " ".join(words[2:]) if len(words) > 2 else (words[-1] if words else "")
        table[int(key)] = {"name": name, "per_cpu": per_cpu(cpus, counts)}
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
