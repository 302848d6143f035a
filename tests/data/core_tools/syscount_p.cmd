/usr/sbin/syscount -d 3 -p 12782 -T 1000
captured on this machine (Debian 12, kernel 6.18.44, libbpf-tools 0.26.0+ds-1, bpftrace 0.17.0) on 2026-11-26, while a Python socketpair read/write + TCP loopback load (pid 12782, 'python3') and other workers' nginx/wrk loopback load ran; stdout only (stderr discarded).
