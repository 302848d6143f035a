"""Read-only system probes, one small module per subject.

Every public probe function returns plain JSON-able data and never raises: when it cannot read
what it wants it returns ``{"error": "<why>"}`` (not root, tool missing and its Debian package,
not in this namespace, ...). ``advisor.collect.system.collect_system_state`` assembles them.
"""
