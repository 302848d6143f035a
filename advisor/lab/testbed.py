"""Two network namespaces joined by a veth pair, nginx in one, wrk in the other.

Why namespaces: the pathologies we inject (firewall rules, packet sockets, qdiscs, GRO,
congestion control) are all per network namespace, so they can be switched on and off
without touching the host. Everything created here is torn down in ``close()``, which
``__exit__`` calls on every exit path (exception, KeyboardInterrupt included).
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence

from advisor.errors import EnvironmentProblem

SERVER_ADDR = "10.201.0.1"
CLIENT_ADDR = "10.201.0.2"
PREFIX_LEN = 24
PORT = 8080
SERVER_DEV = "veth-srv"
CLIENT_DEV = "veth-cli"
JSON_PATH = "/json"
JSON_BODY = '{"message":"Hello, World!"}'

NETNS_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000

# tool -> Debian package that provides it (named in the error when the tool is missing)
PACKAGES = {
    "ip": "iproute2",
    "tc": "iproute2",
    "nginx": "nginx-light",
    "wrk": "wrk",
    "iptables": "iptables",
    "iptables-legacy": "iptables",
    "iptables-save": "iptables",
    "iptables-legacy-save": "iptables",
    "iptables-restore": "iptables",
    "iptables-legacy-restore": "iptables",
    "nft": "nftables",
    "ethtool": "ethtool",
    "perf": "linux-perf",
    "curl": "curl",
    "sysctl": "procps",
}


def require_root() -> None:
    """Namespaces, firewall rules and system-wide perf all need root."""
    if os.geteuid() != 0:
        raise EnvironmentProblem("the lab testbed needs root (network namespaces, iptables, perf -a); run it as root")


def require_tools(*tools: str) -> dict[str, str]:
    """Return tool -> path, or refuse naming the Debian package of the first missing tool."""
    found = {}
    for tool in tools:
        path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin:/usr/bin:/bin")
        if path is None:
            package = PACKAGES.get(tool, tool)
            raise EnvironmentProblem(f"{tool}: not found; install it with 'apt-get install {package}'")
        found[tool] = path
    return found


def run(argv: Sequence[str], timeout: float = 15, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
    """Run a short command; a failure becomes one EnvironmentProblem line with its stderr."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, input=input)
    except subprocess.TimeoutExpired as exc:
        raise EnvironmentProblem(f"{' '.join(argv[:6])}: no answer after {timeout} s") from exc
    except FileNotFoundError as exc:
        raise EnvironmentProblem(f"{argv[0]}: not found") from exc
    if check and done.returncode != 0:
        why = (done.stderr or done.stdout).strip().splitlines()
        raise EnvironmentProblem(f"{' '.join(argv[:8])}: exit {done.returncode}: {why[-1] if why else 'no message'}")
    return done


def netns_argv(netns: str, argv: Sequence[str]) -> list[str]:
    """The argument list that runs `argv` inside `netns`."""
    return ["ip", "netns", "exec", netns, *argv]


def enter_netns(netns: str) -> None:
    """Move the calling process into `netns` (used in preexec functions, before exec)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(os.path.join(NETNS_DIR, netns), os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({netns}): {os.strerror(err)}")
    finally:
        os.close(fd)


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def stop_process_group(proc: subprocess.Popen, grace_s: float = 3.0, sig: int = signal.SIGTERM) -> None:
    """Signal the group led by `proc` (started with start_new_session), then SIGKILL what is left."""
    for signum in ((sig, signal.SIGKILL) if proc.poll() is None else (signal.SIGKILL,)):
        # SIGKILL even when the leader is gone: children of its group may still live
        _killpg(proc.pid, signum)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass


def children_of(pid: int) -> list[int]:
    """Direct children of `pid`, from /proc (cheap, no ps)."""
    kids: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids.extend(int(x) for x in f.read().split())
    except (FileNotFoundError, ProcessLookupError):
        pass
    return kids


def listening(pid: int, addr: str, port: int) -> bool:
    """Whether `addr:port` is in LISTEN state in the network namespace of process `pid`."""
    want = "%08X:%04X" % (int.from_bytes(bytes(int(x) for x in addr.split(".")), "little"), port)
    try:
        with open(f"/proc/{pid}/net/tcp") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 3 and fields[1] == want and fields[3] == "0A":
                    return True
    except (FileNotFoundError, ProcessLookupError):
        pass
    return False


NGINX_CONF = """\
# generated by advisor.lab.testbed
worker_processes {workers};
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
lock_file {tmp}/nginx.lock;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 65;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;

    server {{
        listen {addr}:{port} backlog=4096;
        location = {path} {{
            default_type application/json;
            return 200 '{body}';
        }}
    }}
}}
"""


class Testbed:
    """Server and client namespaces, nginx serving /json, wrk as the load generator.

    Use as a context manager; ``close()`` is idempotent and safe to call at any point.
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, prefix: str = "advlab", workers: int | None = None, congestion_control: str | None = "reno"):
        if not re.fullmatch(r"[a-z][a-z0-9]{0,10}", prefix):
            raise EnvironmentProblem(f"testbed prefix {prefix!r}: use 1-11 lowercase letters/digits")
        self.prefix = prefix
        self.server_ns = f"{prefix}-srv"
        self.client_ns = f"{prefix}-cli"
        self.server_addr, self.client_addr, self.port = SERVER_ADDR, CLIENT_ADDR, PORT
        self.server_dev, self.client_dev = SERVER_DEV, CLIENT_DEV
        self.url = f"http://{SERVER_ADDR}:{PORT}{JSON_PATH}"
        self.workers = workers or len(os.sched_getaffinity(0))
        # a new namespace inherits the host's default (here bbr); pin reno so that the baseline
        # carries no congestion-control cost and the congestion-control scenario isolates it
        self.congestion_control = congestion_control
        self.tmpdir: str | None = None
        self.nginx: subprocess.Popen | None = None
        self.server_preexec: Callable[[], None] | None = None
        self.helpers: list[subprocess.Popen] = []
        self._namespaces_created: list[str] = []

    # ---- life cycle -------------------------------------------------------------------

    def __enter__(self) -> "Testbed":
        try:
            self.open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def open(self) -> None:
        """Create namespaces, veth pair and addresses, then start nginx."""
        require_root()
        require_tools("ip", "nginx", "wrk", "sysctl")
        self.cleanup_leftovers()
        self.tmpdir = tempfile.mkdtemp(prefix=f"{self.prefix}-")
        for ns in (self.server_ns, self.client_ns):
            run(["ip", "netns", "add", ns])
            self._namespaces_created.append(ns)
        # create the pair inside the server namespace, so nothing ever appears on the host
        run(["ip", "-n", self.server_ns, "link", "add", SERVER_DEV, "type", "veth",
             "peer", "name", CLIENT_DEV, "netns", self.client_ns])
        for ns, dev, addr in ((self.server_ns, SERVER_DEV, SERVER_ADDR), (self.client_ns, CLIENT_DEV, CLIENT_ADDR)):
            run(["ip", "-n", ns, "addr", "add", f"{addr}/{PREFIX_LEN}", "dev", dev])
            run(["ip", "-n", ns, "link", "set", dev, "up"])
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
            if self.congestion_control:
                run(netns_argv(ns, ["sysctl", "-q", "-w", f"net.ipv4.tcp_congestion_control={self.congestion_control}"]))
        self.start_server()

    def close(self) -> None:
        """Stop every process we started, delete our namespaces and the temp dir."""
        self.stop_server()
        while self.helpers:
            stop_process_group(self.helpers.pop())
        for ns in (self.server_ns, self.client_ns):
            self._delete_namespace(ns)
        self._namespaces_created.clear()
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None

    def cleanup_leftovers(self) -> None:
        """Remove our two namespaces if a crashed run left them (only these exact names)."""
        for ns in (self.server_ns, self.client_ns):
            if os.path.exists(os.path.join(NETNS_DIR, ns)):
                self._delete_namespace(ns)

    def _delete_namespace(self, ns: str) -> None:
        if not os.path.exists(os.path.join(NETNS_DIR, ns)):
            return
        # processes still inside (a leftover nginx from a crashed run of ours) keep it alive
        pids = run(["ip", "netns", "pids", ns], check=False).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        for _ in range(50):
            done = run(["ip", "netns", "del", ns], check=False)
            if done.returncode == 0 or not os.path.exists(os.path.join(NETNS_DIR, ns)):
                return
            time.sleep(0.1)
        raise EnvironmentProblem(f"could not delete network namespace {ns}: {done.stderr.strip()}")

    # ---- the server -------------------------------------------------------------------

    def nginx_conf(self) -> str:
        return NGINX_CONF.format(workers=self.workers, tmp=self.tmpdir, addr=SERVER_ADDR, port=PORT,
                                 path=JSON_PATH, body=JSON_BODY)

    def start_server(self, preexec: Callable[[], None] | None = ..., timeout_s: float = 10) -> int:
        """(Re)start nginx in the server namespace; `preexec` runs in the child just before exec.

        The hook is remembered, so a later restart without arguments keeps it; pass None to drop it.
        Returns the master pid once every worker is up and the socket listens.
        """
        if preexec is not ...:
            self.server_preexec = preexec
        self.stop_server()
        assert self.tmpdir, "testbed is not open"
        conf = os.path.join(self.tmpdir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(self.nginx_conf())
        hook, netns = self.server_preexec, self.server_ns

        def child_setup() -> None:
            enter_netns(netns)
            if hook is not None:
                hook()

        log = open(os.path.join(self.tmpdir, "nginx.stderr"), "wb")
        try:
            self.nginx = subprocess.Popen(
                ["nginx", "-p", self.tmpdir, "-c", conf, "-e", os.path.join(self.tmpdir, "error.log")],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True, preexec_fn=child_setup, close_fds=True)
        finally:
            log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.nginx.poll() is not None:
                raise EnvironmentProblem(f"nginx exited with {self.nginx.returncode}: {self._nginx_log_tail()}")
            if listening(self.nginx.pid, SERVER_ADDR, PORT) and len(children_of(self.nginx.pid)) >= self.workers:
                return self.nginx.pid
            time.sleep(0.05)
        self.stop_server()
        raise EnvironmentProblem(f"nginx did not listen on {SERVER_ADDR}:{PORT} within {timeout_s} s")

    def stop_server(self) -> None:
        if self.nginx is not None:
            # SIGTERM is nginx's fast shutdown; the group kill catches any worker left over
            stop_process_group(self.nginx)
            self.nginx = None

    def server_pids(self) -> list[int]:
        """nginx master first, then its workers."""
        if self.nginx is None or self.nginx.poll() is not None:
            return []
        return [self.nginx.pid, *children_of(self.nginx.pid)]

    def _nginx_log_tail(self) -> str:
        for name in ("error.log", "nginx.stderr"):
            try:
                with open(os.path.join(self.tmpdir or "", name), errors="replace") as f:
                    lines = [x.strip() for x in f if x.strip()]
                if lines:
                    return lines[-1]
            except FileNotFoundError:
                continue
        return "no message"

    # ---- running things in the namespaces ---------------------------------------------

    def server_run(self, argv: Sequence[str], **kw) -> subprocess.CompletedProcess:
        return run(netns_argv(self.server_ns, argv), **kw)

    def client_run(self, argv: Sequence[str], **kw) -> subprocess.CompletedProcess:
        return run(netns_argv(self.client_ns, argv), **kw)

    def spawn_in_server(self, argv: Sequence[str], ready_line: bool = True, timeout_s: float = 10) -> subprocess.Popen:
        """Start a long-lived helper in the server namespace; torn down with the testbed.

        With `ready_line`, wait for the helper's first stdout line ('ready ...') or its failure.
        """
        netns = self.server_ns
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True,
                                preexec_fn=lambda: enter_netns(netns))
        self.helpers.append(proc)
        if ready_line:
            import selectors
            with selectors.DefaultSelector() as sel:
                sel.register(proc.stdout, selectors.EVENT_READ)
                if not sel.select(timeout_s):
                    self.stop_helper(proc)
                    raise EnvironmentProblem(f"{argv[-1]}: helper gave no ready line in {timeout_s} s")
            line = proc.stdout.readline()
            if not line.startswith("ready"):
                err = proc.stderr.read() if proc.poll() is not None else ""
                self.stop_helper(proc)
                raise EnvironmentProblem(f"helper {' '.join(argv)} failed: {(err or line).strip().splitlines()[-1:]}")
        return proc

    def stop_helper(self, proc: subprocess.Popen) -> None:
        stop_process_group(proc)
        if proc in self.helpers:
            self.helpers.remove(proc)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()

    # ---- load -------------------------------------------------------------------------

    def wrk_argv(self, duration_s: float, connections: int, threads: int) -> list[str]:
        return ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(duration_s))}s",
                "--latency", self.url]

    def load(self, duration_s: float = 3, connections: int = 32, threads: int = 1) -> dict:
        """Run wrk from the client namespace; wrk's numbers parsed, raw output kept."""
        argv = self.wrk_argv(duration_s, connections, threads)
        done = self.client_run(argv, timeout=duration_s + 30)
        result = parse_wrk(done.stdout)
        result["command"] = argv
        result["output"] = done.stdout
        return result


# ---- wrk output -----------------------------------------------------------------------

_TIME_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_SIZE_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
_NUM = r"([0-9.]+)"


def _ms(text: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(m.group(1)) * _TIME_UNITS[m.group(2)]


def _bytes(text: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(B|KB|MB|GB|TB)", text)
    if not m:
        raise ValueError(f"not a wrk size: {text!r}")
    return float(m.group(1)) * _SIZE_UNITS[m.group(2)]


def parse_wrk(text: str) -> dict:
    """wrk's summary as numbers: rps, transfer, latency (ms, with percentiles), errors."""
    out: dict = {"requests_per_sec": None, "transfer_bytes_per_sec": None, "requests": None,
                 "elapsed_s": None, "read_bytes": None, "latency_ms": {},
                 "errors": {"connect": 0, "read": 0, "write": 0, "timeout": 0, "non_2xx_3xx": 0}}
    for line in text.splitlines():
        s = line.strip()
        if m := re.match(r"Requests/sec:\s+" + _NUM, s):
            out["requests_per_sec"] = float(m.group(1))
        elif m := re.match(r"Transfer/sec:\s+(\S+)", s):
            out["transfer_bytes_per_sec"] = _bytes(m.group(1))
        elif m := re.match(r"(\d+) requests in (\S+), (\S+) read", s):
            out["requests"] = int(m.group(1))
            out["elapsed_s"] = _ms(m.group(2)) / 1e3
            out["read_bytes"] = _bytes(m.group(3))
        elif m := re.match(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)\s+", s):
            out["latency_ms"].update(avg=_ms(m.group(1)), stdev=_ms(m.group(2)), max=_ms(m.group(3)))
        elif m := re.match(r"(50|75|90|99)%\s+(\S+)$", s):
            out["latency_ms"][f"p{m.group(1)}"] = _ms(m.group(2))
        elif m := re.match(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", s):
            for key, val in zip(("connect", "read", "write", "timeout"), m.groups()):
                out["errors"][key] = int(val)
        elif m := re.match(r"Non-2xx or 3xx responses: (\d+)", s):
            out["errors"]["non_2xx_3xx"] = int(m.group(1))
    if out["requests_per_sec"] is None:
        raise EnvironmentProblem(f"wrk printed no Requests/sec line: {text.strip()[-200:]!r}")
    return out
