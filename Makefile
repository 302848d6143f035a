# Set-up, demo and tests on a fresh Debian 12 machine (run as root for the system packages).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# gcc, libc6-dev, python3-dev: to build the parser's C loop (advisor/parse/_fast_blocks.c; optional)
APT_PACKAGES := linux-perf iproute2 nginx-light wrk iptables nftables ethtool conntrack \
                gcc libc6-dev python3-dev python3-bpfcc libbpf-tools bpftrace gzip procps chromium \
                fonts-dejavu-core fonts-liberation
SAMPLE ?= samples/netfilter

.PHONY: setup system-packages venv demo test bench clean

setup: system-packages venv

# Installs only what is missing; needs root and apt-get (skipped with a note otherwise).
system-packages:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then echo "system packages: all present"; \
	elif [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
	  echo "system packages missing:$$missing (run 'make system-packages' as root on Debian)"; \
	else echo "installing:$$missing"; apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi
	@# Debian starts nginx on install; the lab runs its own instances in namespaces.
	@-command -v systemctl >/dev/null && systemctl disable --now nginx >/dev/null 2>&1 || true

$(BIN)/advise: pyproject.toml setup.py bin/advise advisor/parse/_fast_blocks.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	@# compat: a plain path in a .pth; the default editable finder costs every `advise` ~15 ms at start
	$(BIN)/pip install -q -e '.[test]' --config-settings editable_mode=compat
	@touch $@

venv: $(BIN)/advise

demo: setup
	$(BIN)/advise analyze $(SAMPLE)

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python bench/bench_parse.py
	$(BIN)/python bench/bench_speed.py
	$(BIN)/python bench/bench_memory.py
	$(BIN)/python bench/bench_overhead.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
