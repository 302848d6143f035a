/usr/sbin/softirqs -N 3 1
captured on this machine (Debian 12, kernel 6.18.44, libbpf-tools 0.26.0+ds-1) on 2026-11-26 during a Python socketpair read/write + TCP loopback load and other workers' loopback load; stdout only. -N: nanoseconds (without it each event's time is truncated to whole usecs before summing, which under-counts short NET_RX runs).
