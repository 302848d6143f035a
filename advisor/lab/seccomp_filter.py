"""A Docker-default-shaped seccomp allow-list, installed with ctypes just before exec.

Why: the case study paid for a container runtime's seccomp filter on every syscall. Docker's
default profile allows ~300 syscalls; libseccomp (before its binary-tree option) compiled it
into a classic BPF program that checks the architecture and then compares the syscall number
against the allowed ones one after the other, returning ERRNO(EPERM) for anything else. This
module builds that same shape by hand (x86_64 only) so no libseccomp binding is needed.

Note for kernels >= 5.11: the kernel emulates a filter at attach time and caches, per syscall
number, "always allowed" results that depend only on arch and number; for those syscalls
the BPF program is not run at all, only the seccomp entry path is (``__secure_computing``).
"""

from __future__ import annotations

import ctypes
import platform

# (name, x86_64 number) in the order of moby/profiles/seccomp/default.json's first (unconditional)
# allow block, plus the capability-free entries that apply to amd64 (ptrace & co since 4.8,
# arch_prctl, modify_ldt). Names that do not exist on x86_64 (chown32, _llseek, ...) are omitted.
DOCKER_ALLOW_X86_64 = (
    ("accept", 43), ("accept4", 288), ("access", 21), ("adjtimex", 159), ("alarm", 37), ("bind", 49),
    ("brk", 12), ("capget", 125), ("capset", 126), ("chdir", 80), ("chmod", 90), ("chown", 92),
    ("clock_adjtime", 305), ("clock_getres", 229), ("clock_gettime", 228), ("clock_nanosleep", 230),
    ("close", 3), ("close_range", 436), ("connect", 42), ("copy_file_range", 326), ("creat", 85), ("dup", 32),
    ("dup2", 33), ("dup3", 292), ("epoll_create", 213), ("epoll_create1", 291), ("epoll_ctl", 233),
    ("epoll_ctl_old", 214), ("epoll_pwait", 281), ("epoll_pwait2", 441), ("epoll_wait", 232),
    ("epoll_wait_old", 215), ("eventfd", 284), ("eventfd2", 290), ("execve", 59), ("execveat", 322),
    ("exit", 60), ("exit_group", 231), ("faccessat", 269), ("faccessat2", 439), ("fadvise64", 221),
    ("fallocate", 285), ("fanotify_mark", 301), ("fchdir", 81), ("fchmod", 91), ("fchmodat", 268),
    ("fchown", 93), ("fchownat", 260), ("fcntl", 72), ("fdatasync", 75), ("fgetxattr", 193),
    ("flistxattr", 196), ("flock", 73), ("fork", 57), ("fremovexattr", 199), ("fsetxattr", 190), ("fstat", 5),
    ("fstatfs", 138), ("fsync", 74), ("ftruncate", 77), ("futex", 202), ("futex_waitv", 449),
    ("futimesat", 261), ("getcpu", 309), ("getcwd", 79), ("getdents", 78), ("getdents64", 217),
    ("getegid", 108), ("geteuid", 107), ("getgid", 104), ("getgroups", 115), ("getitimer", 36),
    ("getpeername", 52), ("getpgid", 121), ("getpgrp", 111), ("getpid", 39), ("getppid", 110),
    ("getpriority", 140), ("getrandom", 318), ("getresgid", 120), ("getresuid", 118), ("getrlimit", 97),
    ("get_robust_list", 274), ("getrusage", 98), ("getsid", 124), ("getsockname", 51), ("getsockopt", 55),
    ("get_thread_area", 211), ("gettid", 186), ("gettimeofday", 96), ("getuid", 102), ("getxattr", 191),
    ("inotify_add_watch", 254), ("inotify_init", 253), ("inotify_init1", 294), ("inotify_rm_watch", 255),
    ("io_cancel", 210), ("ioctl", 16), ("io_destroy", 207), ("io_getevents", 208), ("io_pgetevents", 333),
    ("ioprio_get", 252), ("ioprio_set", 251), ("io_setup", 206), ("io_submit", 209), ("io_uring_enter", 426),
    ("io_uring_register", 427), ("io_uring_setup", 425), ("kill", 62), ("landlock_add_rule", 445),
    ("landlock_create_ruleset", 444), ("landlock_restrict_self", 446), ("lchown", 94), ("lgetxattr", 192),
    ("link", 86), ("linkat", 265), ("listen", 50), ("listxattr", 194), ("llistxattr", 195),
    ("lremovexattr", 198), ("lseek", 8), ("lsetxattr", 189), ("lstat", 6), ("madvise", 28),
    ("membarrier", 324), ("memfd_create", 319), ("memfd_secret", 447), ("mincore", 27), ("mkdir", 83),
    ("mkdirat", 258), ("mknod", 133), ("mknodat", 259), ("mlock", 149), ("mlock2", 325), ("mlockall", 151),
    ("mmap", 9), ("mprotect", 10), ("mq_getsetattr", 245), ("mq_notify", 244), ("mq_open", 240),
    ("mq_timedreceive", 243), ("mq_timedsend", 242), ("mq_unlink", 241), ("mremap", 25), ("msgctl", 71),
    ("msgget", 68), ("msgrcv", 70), ("msgsnd", 69), ("msync", 26), ("munlock", 150), ("munlockall", 152),
    ("munmap", 11), ("name_to_handle_at", 303), ("nanosleep", 35), ("newfstatat", 262), ("open", 2),
    ("openat", 257), ("openat2", 437), ("pause", 34), ("pidfd_open", 434), ("pidfd_send_signal", 424),
    ("pipe", 22), ("pipe2", 293), ("pkey_alloc", 330), ("pkey_free", 331), ("pkey_mprotect", 329), ("poll", 7),
    ("ppoll", 271), ("prctl", 157), ("pread64", 17), ("preadv", 295), ("preadv2", 327), ("prlimit64", 302),
    ("process_mrelease", 448), ("pselect6", 270), ("pwrite64", 18), ("pwritev", 296), ("pwritev2", 328),
    ("read", 0), ("readahead", 187), ("readlink", 89), ("readlinkat", 267), ("readv", 19), ("recvfrom", 45),
    ("recvmmsg", 299), ("recvmsg", 47), ("remap_file_pages", 216), ("removexattr", 197), ("rename", 82),
    ("renameat", 264), ("renameat2", 316), ("restart_syscall", 219), ("rmdir", 84), ("rseq", 334),
    ("rt_sigaction", 13), ("rt_sigpending", 127), ("rt_sigprocmask", 14), ("rt_sigqueueinfo", 129),
    ("rt_sigreturn", 15), ("rt_sigsuspend", 130), ("rt_sigtimedwait", 128), ("rt_tgsigqueueinfo", 297),
    ("sched_getaffinity", 204), ("sched_getattr", 315), ("sched_getparam", 143),
    ("sched_get_priority_max", 146), ("sched_get_priority_min", 147), ("sched_getscheduler", 145),
    ("sched_rr_get_interval", 148), ("sched_setaffinity", 203), ("sched_setattr", 314),
    ("sched_setparam", 142), ("sched_setscheduler", 144), ("sched_yield", 24), ("seccomp", 317),
    ("select", 23), ("semctl", 66), ("semget", 64), ("semop", 65), ("semtimedop", 220), ("sendfile", 40),
    ("sendmmsg", 307), ("sendmsg", 46), ("sendto", 44), ("setfsgid", 123), ("setfsuid", 122), ("setgid", 106),
    ("setgroups", 116), ("setitimer", 38), ("setpgid", 109), ("setpriority", 141), ("setregid", 114),
    ("setresgid", 119), ("setresuid", 117), ("setreuid", 113), ("setrlimit", 160), ("set_robust_list", 273),
    ("setsid", 112), ("setsockopt", 54), ("set_thread_area", 205), ("set_tid_address", 218), ("setuid", 105),
    ("setxattr", 188), ("shmat", 30), ("shmctl", 31), ("shmdt", 67), ("shmget", 29), ("shutdown", 48),
    ("sigaltstack", 131), ("signalfd", 282), ("signalfd4", 289), ("socketpair", 53), ("splice", 275),
    ("stat", 4), ("statfs", 137), ("statx", 332), ("symlink", 88), ("symlinkat", 266), ("sync", 162),
    ("sync_file_range", 277), ("syncfs", 306), ("sysinfo", 99), ("tee", 276), ("tgkill", 234), ("time", 201),
    ("timer_create", 222), ("timer_delete", 226), ("timer_getoverrun", 225), ("timer_gettime", 224),
    ("timer_settime", 223), ("timerfd_create", 283), ("timerfd_gettime", 287), ("timerfd_settime", 286),
    ("times", 100), ("tkill", 200), ("truncate", 76), ("umask", 95), ("uname", 63), ("unlink", 87),
    ("unlinkat", 263), ("utime", 132), ("utimensat", 280), ("utimes", 235), ("vfork", 58), ("vmsplice", 278),
    ("wait4", 61), ("waitid", 247), ("write", 1), ("writev", 20), ("process_vm_readv", 310),
    ("process_vm_writev", 311), ("ptrace", 101), ("arch_prctl", 158), ("modify_ldt", 154),
)
NR_SOCKET, NR_PERSONALITY, NR_CLONE, NR_CLONE3 = 41, 135, 56, 435
AF_VSOCK = 40
PERSONALITY_ALLOWED = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)
CLONE_NAMESPACE_FLAGS = 0x7E020000  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000

# classic BPF opcodes (linux/filter.h)
BPF_LD_W_ABS = 0x20
BPF_JMP_JEQ_K = 0x15
BPF_JMP_JGE_K = 0x35
BPF_ALU_AND_K = 0x54
BPF_RET_K = 0x06

# offsets in struct seccomp_data
OFF_NR, OFF_ARCH, OFF_ARG0_LOW = 0, 4, 16

SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
EPERM, ENOSYS = 1, 38

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_SET_MODE_FILTER = 1
NR_SECCOMP = 317


from advisor.lab.cbpf import SockFilter, SockFprog  # noqa: E402


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> tuple[int, int, int, int]:
    return (code, jt, jf, k)


def docker_like_program(allow=DOCKER_ALLOW_X86_64) -> list[tuple[int, int, int, int]]:
    """The classic BPF program: arch check, x32 check, then one compare per allowed syscall.

    Each compare is followed by its own 'ret ALLOW' (jt=0 falls into it, jf=1 skips it), so
    no jump needs an offset beyond the 8-bit limit however long the list is.
    """
    errno_eperm = SECCOMP_RET_ERRNO | EPERM
    prog = [
        _insn(BPF_LD_W_ABS, OFF_ARCH),
        _insn(BPF_JMP_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        _insn(BPF_RET_K, errno_eperm),
        _insn(BPF_LD_W_ABS, OFF_NR),
        _insn(BPF_JMP_JGE_K, X32_SYSCALL_BIT, 0, 1),
        _insn(BPF_RET_K, errno_eperm),
    ]
    for _name, nr in allow:
        prog += [_insn(BPF_JMP_JEQ_K, nr, 0, 1), _insn(BPF_RET_K, SECCOMP_RET_ALLOW)]
    # socket: any family but AF_VSOCK (argument check, low 32 bits of arg0)
    prog += [_insn(BPF_JMP_JEQ_K, NR_SOCKET, 0, 4),
             _insn(BPF_LD_W_ABS, OFF_ARG0_LOW),
             _insn(BPF_JMP_JEQ_K, AF_VSOCK, 1, 0),
             _insn(BPF_RET_K, SECCOMP_RET_ALLOW),
             _insn(BPF_RET_K, errno_eperm)]
    # personality: only the listed personas
    n = len(PERSONALITY_ALLOWED)
    prog += [_insn(BPF_JMP_JEQ_K, NR_PERSONALITY, 0, n + 3), _insn(BPF_LD_W_ABS, OFF_ARG0_LOW)]
    for i, value in enumerate(PERSONALITY_ALLOWED):
        prog.append(_insn(BPF_JMP_JEQ_K, value, n - i, 0))
    prog += [_insn(BPF_RET_K, errno_eperm), _insn(BPF_RET_K, SECCOMP_RET_ALLOW)]
    # clone without CAP_SYS_ADMIN in the container: no namespace flags
    prog += [_insn(BPF_JMP_JEQ_K, NR_CLONE, 0, 5),
             _insn(BPF_LD_W_ABS, OFF_ARG0_LOW),
             _insn(BPF_ALU_AND_K, CLONE_NAMESPACE_FLAGS),
             _insn(BPF_JMP_JEQ_K, 0, 0, 1),
             _insn(BPF_RET_K, SECCOMP_RET_ALLOW),
             _insn(BPF_RET_K, errno_eperm)]
    # clone3: ENOSYS so that libc falls back to clone (whose flags we can inspect)
    prog += [_insn(BPF_JMP_JEQ_K, NR_CLONE3, 0, 1),
             _insn(BPF_RET_K, SECCOMP_RET_ERRNO | ENOSYS),
             _insn(BPF_RET_K, errno_eperm)]
    return prog


def allowed_count(allow=DOCKER_ALLOW_X86_64) -> int:
    """Syscalls the program can allow (for reports): the list plus socket, personality, clone."""
    return len(allow) + 3


def install(prog: list[tuple[int, int, int, int]] | None = None) -> None:
    """Install the filter on the calling thread (call it in a preexec function, before exec).

    Sets no_new_privs first (required without CAP_SYS_ADMIN, and what a runtime would do), then
    seccomp(SECCOMP_SET_MODE_FILTER), falling back to prctl(PR_SET_SECCOMP) on old kernels.
    """
    if platform.machine() != "x86_64":
        raise OSError("the docker-like seccomp filter is written for x86_64 only")
    prog = prog if prog is not None else docker_like_program()
    if len(prog) > 4096:
        raise ValueError(f"seccomp program too long: {len(prog)} instructions (max 4096)")
    array = (SockFilter * len(prog))(*[SockFilter(code, jt, jf, k) for code, jt, jf, k in prog])
    fprog = SockFprog(len(prog), array)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "prctl(PR_SET_NO_NEW_PRIVS)")
    rc = libc.syscall(ctypes.c_long(NR_SECCOMP), ctypes.c_ulong(SECCOMP_SET_MODE_FILTER), ctypes.c_ulong(0),
                      ctypes.byref(fprog))
    if rc != 0:
        err = ctypes.get_errno()
        if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
            err2 = ctypes.get_errno()
            raise OSError(err2, f"seccomp filter refused (seccomp errno {err}, prctl errno {err2})")


def status_of(pid: int) -> dict:
    """Seccomp mode and number of filters of a process, from /proc/<pid>/status."""
    out = {"seccomp_mode": None, "seccomp_filters": None}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Seccomp:"):
                    out["seccomp_mode"] = int(line.split()[1])
                elif line.startswith("Seccomp_filters:"):
                    out["seccomp_filters"] = int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return out
