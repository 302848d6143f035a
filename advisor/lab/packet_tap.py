"""Hold a raw AF_PACKET socket on an interface, filtered like a DHCP client's.

Why: in the case study a DHCP client kept an ETH_P_ALL packet socket open. Every packet in
and out of the interface is then handed to ``packet_rcv``, which runs the socket's BPF filter
on it, even though the filter rejects all but DHCP replies. This helper reproduces that:

    python -m advisor.lab.packet_tap IFACE

prints ``ready <iface> <socket inode>`` once the socket is bound and filtered, then waits until
it is terminated (SIGTERM/SIGINT).
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import sys

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
IPPROTO_UDP = 17
DHCP_CLIENT_PORT = 68
SO_ATTACH_FILTER = 26

# classic BPF opcodes
BPF_LD_H_ABS = 0x28
BPF_LD_B_ABS = 0x30
BPF_LD_H_IND = 0x48
BPF_LDX_B_MSH = 0xB1
BPF_JMP_JEQ_K = 0x15
BPF_JMP_JSET_K = 0x45
BPF_RET_K = 0x06


from advisor.lab.cbpf import SockFilter, SockFprog  # noqa: E402


def dhcp_client_filter(port: int = DHCP_CLIENT_PORT) -> list[tuple[int, int, int, int]]:
    """ISC dhclient's LPF filter: accept IPv4 UDP, unfragmented, to `port`; drop the rest.

    (code, jt, jf, k) tuples, offsets into the Ethernet frame.
    """
    return [
        (BPF_LD_H_ABS, 0, 0, 12),             # ethertype
        (BPF_JMP_JEQ_K, 0, 8, ETH_P_IP),
        (BPF_LD_B_ABS, 0, 0, 23),             # IP protocol
        (BPF_JMP_JEQ_K, 0, 6, IPPROTO_UDP),
        (BPF_LD_H_ABS, 0, 0, 20),             # flags + fragment offset
        (BPF_JMP_JSET_K, 4, 0, 0x1FFF),       # a fragment: drop
        (BPF_LDX_B_MSH, 0, 0, 14),            # X = IP header length
        (BPF_LD_H_IND, 0, 0, 16),             # UDP destination port
        (BPF_JMP_JEQ_K, 0, 1, port),
        (BPF_RET_K, 0, 0, 0xFFFFFFFF),        # accept the whole packet
        (BPF_RET_K, 0, 0, 0),                 # drop
    ]


def attach_filter(sock: socket.socket, prog: list[tuple[int, int, int, int]]) -> None:
    """setsockopt(SO_ATTACH_FILTER) through libc, since it takes a pointer to the program."""
    array = (SockFilter * len(prog))(*[SockFilter(c, jt, jf, k) for c, jt, jf, k in prog])
    fprog = SockFprog(len(prog), array)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setsockopt(sock.fileno(), socket.SOL_SOCKET, SO_ATTACH_FILTER, ctypes.byref(fprog),
                       ctypes.sizeof(fprog)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"SO_ATTACH_FILTER: {os.strerror(err)}")


def open_tap(iface: str) -> socket.socket:
    """An ETH_P_ALL raw packet socket bound to `iface`, with the DHCP client filter attached."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:
        attach_filter(sock, dhcp_client_filter())
        sock.bind((iface, ETH_P_ALL))
    except BaseException:
        sock.close()
        raise
    return sock


def set_comm(name: str) -> None:
    PR_SET_NAME = 15
    ctypes.CDLL(None).prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m advisor.lab.packet_tap IFACE", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    set_comm("packet_tap")  # so /proc, ss and system.json name it, instead of "python"
    try:
        sock = open_tap(args[0])
    except OSError as exc:
        print(f"packet_tap: {args[0]}: {exc}", file=sys.stderr)
        return 1
    inode = os.fstat(sock.fileno()).st_ino
    print(f"ready {args[0]} {inode}", flush=True)
    try:
        while True:  # only DHCP replies pass the filter; read and drop them as dhclient would
            sock.recv(2048)
    except KeyboardInterrupt:
        return 0
    finally:
        sock.close()


if __name__ == "__main__":
    sys.exit(main())
