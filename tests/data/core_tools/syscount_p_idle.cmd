/usr/sbin/syscount -d 1 -p <pid of an idle 'sleep 30'> -T 1000
captured on this machine (Debian 12, kernel 6.18.44, libbpf-tools 0.26.0+ds-1): a traced process that makes no syscall prints the banner only.
