#!/usr/bin/env python3
"""Build the Dockerfile and run the image as compose.yaml and deploy/README.md do, with podman.

Why: the image has to be proven on machines without a Docker engine and without a registry
(CI's). podman builds and runs OCI images without a daemon; the official Python base image
cannot be pulled, so a stand-in is made from Debian bookworm (debootstrap) with the official
image's paths, and handed to the Dockerfile through its PYTHON_IMAGE build argument.

What it checks, each a PASS or FAIL line, exit status 1 if any failed:
  - the build succeeds; the image runs as 10001:10001, has no compiler, and its HEALTHCHECK
    targets /healthz and fails when nothing answers;
  - compose.yaml's `bot` settings as podman flags (read-only root, tmpfs /tmp, no capabilities,
    no-new-privileges, 512 MiB, 128 pids, the state volume, metrics published on loopback),
    three times: compose's defaults (the example config mounted read-only, /dev/null as the key
    secret), paper mode without a key, and live mode (`run --live`, mode = "live") with a key
    file at /run/secrets/alura_private_key. Each: /healthz answers, the HEALTHCHECK passes,
    /readyz says ready, the kernel shows UID 10001 with no capabilities and no_new_privs, only
    /tmp and the state volume are writable, `alura-bot status` works through exec, nothing is
    written outside the mounts, SIGTERM exits 0 within 10 s, no traceback;
  - paper and live: ticks and sessions in the journal on the state volume (only the journal
    there, mode 0600, owned by 10001), against compose's `sim` command in its own container,
    reached by name on a network (http://sim:8080);
  - live: after the stop, the simulator holds exactly the journal's sessions, under the key's
    wallet, each opened by a confirmed intent; the key is in no log line, journal file or metric;
  - compose's `prometheus` command and files (Debian's prometheus binary in the stand-in image:
    the official one cannot be pulled): every alert rule loads, and it scrapes the live bot by
    its compose name, bot:9108. Grafana is not run (no package, no image).

Run as root on Debian 12 (it apt-get installs podman, runc, debootstrap when missing; the
Prometheus leg is skipped, saying so, without Debian's `prometheus` package):

    python3 deploy/podman_check.py            # ~3 min the first time, ~40 s when cached
    python3 deploy/podman_check.py --keep     # leave the containers and volumes for a look

Podman's storage and the stand-in's root filesystem live under --workdir (default
/var/tmp/alura-podman); later runs reuse them (the build's layer cache included). The storage
keeps every earlier build's layers (2.4 GB after a few): delete the directory to start afresh.
"""

# This script's whole job is running podman, apt-get and debootstrap with arguments it builds
# itself (no shell, no user input in a command line): bandit's subprocess rules do not apply.
# ruff: noqa: S603, S607

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import re
import resource
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
STANDIN = "localhost/alura-python-standin:3.11-slim-bookworm"
IMAGE = "localhost/alura-bot:podman-check"
NETWORK = "alura-podman-check"
SECRET_PATH = "/run/secrets/alura_private_key"  # noqa: S105 - where, not what
UID = 10001
# What the official python:3.11-slim-bookworm image sets and the Dockerfile relies on.
STANDIN_ENV = [
    "PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG=C.UTF-8",
]
COMPILERS = ["gcc", "cc", "c++", "g++", "cpp", "clang", "x86_64-linux-gnu-gcc-12", "as", "ld"]

SIM_STATE = (
    "import urllib.request as u; "
    "print(u.urlopen('http://127.0.0.1:8080/__sim/state').read().decode())"
)
# The wallet address of the mounted key, as the bot derives it (the address only is printed).
WALLET = (
    "from eth_account import Account; "
    f"print(Account.from_key(open('{SECRET_PATH}').read().strip()).address)"
)
# Which of these directories the container's user can create a file in (removed at once): with
# the mount flags above, also catches podman's extra tmpfs on /var/tmp that Docker does not give.
WRITABLE = (
    "for d in / /etc /etc/alura-bot /opt/alura-bot /run /run/secrets /var/tmp /tmp "
    "/var/lib/alura-bot; do touch $d/.w 2>/dev/null && rm -f $d/.w && echo $d; done; true"
)
WRITABLE_EXPECTED = ["/tmp", "/var/lib/alura-bot"]  # noqa: S108 - the container's, by design
# A strategy that wants a long session on every candle: sessions open on the first tick.
ALWAYS_LONG = '''
import numpy as np
from strategies.base import Signals, Strategy, StrategyParams


class Always(Strategy[StrategyParams]):
    """Check strategy: wants a long session on every candle."""

    name = "always_long"
    Params = StrategyParams

    @property
    def warmup(self) -> int:
        return 5

    def indicators(self, candles):
        return {"last_close": candles.close}

    def signals(self, candles, columns):
        n = len(candles)
        return Signals.long_only(np.ones(n, dtype=bool), np.zeros(n, dtype=bool))
'''


class Check:
    """Runs podman with this check's storage, runtime and limits, and records PASS/FAIL."""

    def __init__(self, workdir: Path, storage_driver: str, runtime: str, keep: bool) -> None:
        self.workdir = workdir
        self.keep = keep  # leave containers, volumes and the network for a look afterwards
        # Run-time state on tmpfs, one place per storage (podman refuses to mix them).
        run = f"/run/alura-podman-check-{hashlib.sha256(str(workdir).encode()).hexdigest()[:8]}"
        self.podman = [
            "podman",
            *("--root", str(workdir / "storage"), "--runroot", f"{run}/storage"),
            *("--tmpdir", f"{run}/libpod"),
            *("--storage-driver", storage_driver, "--runtime", runtime),
            *("--cgroup-manager", "cgroupfs", "--events-backend", "file"),
        ]
        # podman's defaults for root (1M open files, more processes than podman itself keeps)
        # need CAP_SYS_RESOURCE to set; a VM or container whose root lacks it refuses them
        # ("setrlimit RLIMIT_NOFILE: Operation not permitted"). The host's own limits always work.
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        nofile = 1 << 20 if nofile == resource.RLIM_INFINITY else nofile
        nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
        nproc = 4096 if nproc == resource.RLIM_INFINITY else min(nproc, 4096)
        self.ulimits = ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}"]
        self.failures: list[str] = []

    def run(self, *args: str, check: bool = True, timeout: float = 600) -> str:
        """`podman ARGS`; its stdout. podman's complaints about systemd timers for healthchecks
        (there is no systemd here; `healthcheck run` works without it) are not errors."""
        out = subprocess.run([*self.podman, *args], capture_output=True, text=True, timeout=timeout)
        if check and out.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args[:3])}… exit {out.returncode}: {out.stderr}")
        return out.stdout

    def ok(self, *args: str) -> bool:
        """Whether `podman ARGS` exits 0 (output discarded)."""
        return subprocess.run([*self.podman, *args], capture_output=True).returncode == 0

    def expect(self, name: str, ok: bool, detail: str = "") -> bool:
        """One PASS/FAIL line; a failure is remembered for the exit status."""
        print(f"{'PASS' if ok else 'FAIL'}  {name}{f'  ({detail})' if detail else ''}", flush=True)
        if not ok:
            self.failures.append(name)
        return ok

    def number(self, name: str, value: str) -> None:
        """A measurement, printed under the checks (no pass/fail)."""
        print(f"      {name}: {value}", flush=True)


def say(text: str) -> None:
    print(f"== {text}", flush=True)


def ensure_tools() -> None:
    """podman + runc (crun 1.8 refuses hybrid cgroup v1/v2 hosts), debootstrap, PyYAML."""
    missing = [b for b in ("podman", "runc", "debootstrap") if shutil.which(b) is None]
    if importlib.util.find_spec("yaml") is None:
        missing.append("python3-yaml")
    if missing:
        say(f"apt-get install {' '.join(missing)}")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "-qq", "update"], check=True, env=env)
        subprocess.run(
            ["apt-get", "-qq", "install", "-y", *missing],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )


def build_standin(c: Check, mirror: str) -> None:
    """A stand-in for python:3.11-slim-bookworm: Debian's python3.11 where the official image
    has its own build (/usr/local/bin/python, pip), no PEP 668 marker (the official image has
    none), the host's extra CA certificates (egress here may be TLS-intercepted; pip in the
    build must trust what the host trusts)."""
    if c.ok("image", "exists", STANDIN):
        say(f"stand-in base {STANDIN}: cached")
        return
    started = time.monotonic()
    rootfs = c.workdir / "rootfs-bookworm"
    if not (rootfs / "usr/bin/python3.11").exists():
        say(f"debootstrap bookworm (minbase + python3.11) into {rootfs}")
        shutil.rmtree(rootfs, ignore_errors=True)
        subprocess.run(
            [
                *("debootstrap", "--variant=minbase"),
                "--include=python3.11,python3.11-venv,python3-pip,ca-certificates",
                *("bookworm", str(rootfs), mirror),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    for name in ("python", "python3", "python3.11"):
        link = rootfs / "usr/local/bin" / name
        link.unlink(missing_ok=True)
        link.symlink_to("/usr/bin/python3.11")
    for name in ("pip", "pip3"):
        link = rootfs / "usr/local/bin" / name
        link.unlink(missing_ok=True)
        link.symlink_to("/usr/bin/pip3")
    (rootfs / "usr/lib/python3.11/EXTERNALLY-MANAGED").unlink(missing_ok=True)
    for crt in Path("/usr/local/share/ca-certificates").glob("*.crt"):
        shutil.copy(crt, rootfs / "usr/local/share/ca-certificates" / crt.name)
    subprocess.run(
        ["chroot", str(rootfs), "update-ca-certificates"], check=True, capture_output=True
    )
    (rootfs / "etc/apt/sources.list").write_text(
        f"deb {mirror} bookworm main\ndeb {mirror} bookworm-updates main\n"
        "deb http://deb.debian.org/debian-security bookworm-security main\n"
    )
    subprocess.run(["chroot", str(rootfs), "apt-get", "clean"], check=True)
    shutil.rmtree(rootfs / "var/lib/apt/lists", ignore_errors=True)
    (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True)
    say(f"podman import {rootfs} as {STANDIN}")
    tar = subprocess.Popen(
        ["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE
    )
    changes = [f"--change=ENV={e}" for e in STANDIN_ENV] + ['--change=CMD=["python3"]']
    out = subprocess.run(
        [*c.podman, "import", *changes, "-", STANDIN], stdin=tar.stdout, capture_output=True
    )
    assert tar.stdout is not None
    tar.stdout.close()  # tar gets SIGPIPE, not a full pipe forever, if podman stopped reading
    if tar.wait() != 0 or out.returncode != 0:
        raise RuntimeError(f"podman import failed: {out.stderr.decode(errors='replace')}")
    c.number("stand-in base built in", f"{time.monotonic() - started:.0f} s")


def committed_tree(into: Path) -> Path:
    """The committed tree (git archive HEAD): the build context and the files compose mounts,
    so nothing uncommitted gets in."""
    tree = into / "repo"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "HEAD"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def build_image(c: Check, tree: Path) -> None:
    """`podman build` of the committed tree. --format docker: an OCI image config has no
    HEALTHCHECK field, podman would drop it."""
    say(f"podman build (context: git archive HEAD, PYTHON_IMAGE={STANDIN})")
    started = time.monotonic()
    out = subprocess.run(
        [
            *(*c.podman, "build", "--format", "docker", *c.ulimits),
            *("--build-arg", f"PYTHON_IMAGE={STANDIN}", "-t", IMAGE, str(tree)),
        ],
        capture_output=True,
        text=True,
    )
    took = time.monotonic() - started
    log = c.workdir / "build.log"
    log.write_text(out.stdout + out.stderr)
    if not c.expect("podman build", out.returncode == 0, f"log: {log}"):
        print(out.stderr[-3000:])
        raise SystemExit(1)
    c.number("build time", f"{took:.0f} s")


def inspect_image(c: Check) -> None:
    info = json.loads(c.run("image", "inspect", IMAGE))[0]
    config = info["Config"]
    c.number("image size", f"{info['Size'] / 1e6:.0f} MB ({len(info['RootFS']['Layers'])} layers)")
    standin = json.loads(c.run("image", "inspect", STANDIN))[0]["Size"]
    c.number("of which the stand-in base", f"{standin / 1e6:.0f} MB")
    c.expect("image USER is 10001:10001", config.get("User") == f"{UID}:{UID}", config.get("User"))
    health = (info.get("Healthcheck") or config.get("Healthcheck") or {}).get("Test") or []
    c.expect("image has a HEALTHCHECK on /healthz", "/healthz" in " ".join(health), str(health))
    if health[:1] == ["CMD"]:  # it must be able to fail: nothing listens in this container
        probe_alone = ("run", "--rm", *c.ulimits, "--no-healthcheck", "--entrypoint", health[1])
        fails = not c.ok(*probe_alone, IMAGE, *health[2:])
        c.expect("the HEALTHCHECK command fails when no bot answers", fails)
    probe = (
        f"id -u; id -g; for c in {' '.join(COMPILERS)}; do command -v $c; done; "
        "find / -xdev \\( -name 'cc1*' -o -name 'build-essential' \\) 2>/dev/null; true"
    )
    lines = c.run(
        "run", "--rm", *c.ulimits, "--no-healthcheck", "--entrypoint", "/bin/sh", IMAGE, "-c", probe
    ).split()
    c.expect("runs as UID/GID 10001", lines[:2] == [str(UID), str(UID)], " ".join(lines[:2]))
    c.expect(
        "no compiler in the final image",
        lines[2:] == [],
        " ".join(lines[2:]) or "none of " + ", ".join(COMPILERS),
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(url: str) -> tuple[int, bytes]:
    """Status and body; (0, b"") when nothing answers yet."""
    try:
        with urllib.request.urlopen(url, timeout=3) as r:  # noqa: S310 - a loopback URL we built
            return int(r.status), bytes(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (OSError, urllib.error.URLError):
        return 0, b""


def wait_for(what: Callable[[], bool], timeout_s: float) -> float | None:
    """Seconds until `what()` held, or None: polling a container, with a deadline."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if what():
            return time.monotonic() - started
        time.sleep(0.25)
    return None


def compose_services(tree: Path) -> dict[str, Any]:
    import yaml  # type: ignore[import-untyped]

    services: dict[str, Any] = yaml.safe_load((tree / "compose.yaml").read_text())["services"]
    return services


def hardening(service: dict[str, Any]) -> list[str]:
    """compose's read_only, tmpfs, cap_drop, security_opt, mem_limit and pids_limit as podman
    flags that give what Docker gives."""
    # podman's --read-only also mounts tmpfs on /run and /var/tmp; Docker's does not.
    flags = ["--read-only", "--read-only-tmpfs=false"] if service.get("read_only") else []
    for t in service.get("tmpfs", []):
        flags += ["--tmpfs", t]
    for cap in service.get("cap_drop", []):
        flags += ["--cap-drop", cap]
    for opt in service.get("security_opt", []):
        flags += ["--security-opt", opt]
    if "mem_limit" in service:
        flags += ["--memory", str(service["mem_limit"])]
    if "pids_limit" in service:
        flags += ["--pids-limit", str(service["pids_limit"])]
    return flags


@contextmanager
def simulator(c: Check, services: dict[str, Any]) -> Iterator[None]:
    """compose's `sim` service: its entrypoint, command (with `$$` as compose unescapes it),
    hardening and healthcheck, on a network where the bot reaches it as http://sim:8080."""
    sim = services["sim"]
    command = [part.replace("$$", "$") for part in sim["command"]]
    c.run("network", "create", NETWORK)
    c.run(
        *("run", "-d", "--name", "sim", "--network", NETWORK, *c.ulimits, "--no-healthcheck"),
        *hardening(sim),
        *("--entrypoint", json.dumps(sim["entrypoint"]), IMAGE, *command),
    )
    try:
        test = [str(t) for t in sim["healthcheck"]["test"]]
        assert test[0] == "CMD"
        took = wait_for(lambda: c.ok("exec", "sim", *test[1:]), 60)
        if not c.expect(
            "simulator (compose's command) passes its compose healthcheck", took is not None
        ):
            print(c.run("logs", "sim", check=False)[-3000:])
            raise SystemExit(1)
        yield
    finally:
        if not c.keep:
            c.run("rm", "-f", "-v", "-t", "0", "sim", check=False)
            c.run("network", "rm", "-f", NETWORK, check=False)


@contextmanager
def prometheus(c: Check, services: dict[str, Any], tree: Path) -> Iterator[int | None]:
    """compose's `prometheus` service: its command, read-only root, config and alert files and
    data volume, on the bot's network. The official image cannot be pulled: Debian's prometheus
    binary runs in the stand-in image instead (it needs only libc), as root. Yields the port
    it is published on (loopback), or None when Debian's prometheus is not installed."""
    binary = shutil.which("prometheus")
    if binary is None:
        print("SKIP  Prometheus scraping the bot: `apt-get install prometheus` to check it")
        yield None
        return
    svc = services["prometheus"]
    mounts = ["-v", f"{binary}:/bin/prometheus:ro"]
    for volume in svc.get("volumes", []):
        source, target, *mode = str(volume).split(":")
        if source.startswith("./"):
            source = str(tree / source)
        else:  # a named volume of the compose project
            source = f"{NETWORK}-{source}"
            c.run("volume", "create", source)
        mounts += ["-v", ":".join([source, target, *mode])]
    port = free_port()
    c.run(
        *("run", "-d", "--name", "prometheus", "--network", NETWORK, *c.ulimits),
        *(*hardening(svc), *mounts, "-p", f"127.0.0.1:{port}:9090"),
        *("--entrypoint", "/bin/prometheus", STANDIN, *svc["command"]),
    )
    try:
        took = wait_for(lambda: http(f"http://127.0.0.1:{port}/-/ready")[0] == 200, 60)
        if not c.expect("Prometheus (compose's command and files) is ready", took is not None):
            print(c.run("logs", "prometheus", check=False)[-3000:])
            yield None
            return
        rules = json.loads(http(f"http://127.0.0.1:{port}/api/v1/rules?type=alert")[1])
        loaded = sum(len(g["rules"]) for g in rules["data"]["groups"])
        alerts = (tree / "deploy/alerts.yml").read_text().count("- alert:")
        c.expect(
            "Prometheus loaded every alert rule of deploy/alerts.yml",
            loaded == alerts > 0,
            f"{loaded} of {alerts}",
        )
        yield port
    finally:
        if not c.keep:
            c.run("rm", "-f", "-v", "-t", "0", "prometheus", check=False)
            c.run("volume", "rm", "-f", f"{NETWORK}-prometheus-data", check=False)


def check_scraped(c: Check, port: int | None, since: float) -> None:
    """Prometheus reaches the bot by its compose name (bot:9108) and sees its API requests, in
    samples taken after `since` (wall clock): this container's, not an earlier one's."""
    if port is None:
        return
    series = 'alura_bot_api_requests_total{job="alura-bot",instance="bot:9108"}'
    found: dict[str, float] = {}

    def query(promql: str) -> float | None:
        body = http(f"http://127.0.0.1:{port}/api/v1/query?query={urllib.parse.quote(promql)}")[1]
        result = json.loads(body)["data"]["result"] if body else []
        return float(result[0]["value"][1]) if result else None

    def scraped() -> bool:
        oldest = query(f"min(timestamp({series}))")
        total = query(f"sum({series})")
        if oldest is None or total is None:
            return False
        found.update(oldest=oldest, total=total)
        return oldest > since and total > 0

    took = wait_for(scraped, 60)  # compose's scrape interval is 15 s
    c.expect(
        "Prometheus scrapes the bot at bot:9108 (its API requests counted)",
        took is not None,
        f"{found.get('total', 0):.0f} requests, sampled {found.get('oldest', 0) - since:+.1f} s "
        "after the start",
    )


def config_dir(base: Path, mode: str) -> Path:
    """A config directory for /etc/alura-bot: the first 1m tick ~12 s from now (its offset in
    the minute), always_long on BTC and ETH, no cooldown."""
    d = base / f"etc-{mode}"
    (d / "strategies").mkdir(parents=True)
    (d / "strategies" / "always_long.py").write_text(ALWAYS_LONG)
    first_tick = time.time() + 12
    (d / "config.toml").write_text(
        f'mode = "{mode}"\nbase_url = "http://sim:8080"\n'
        'strategies_dir = "/etc/alura-bot/strategies"\n'
        f"[engine]\ntick_offset_s = {first_tick % 60:.3f}\nstats_every_s = 1\n"
        "[risk]\ncooldown_s = 0\n"
        '[[strategies]]\nname = "always_long"\nassets = ["BTC", "ETH"]\n'
        'params = {interval = "1m"}\n'
    )
    for p in [d, *d.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    return d


def run_bot(
    c: Check,
    name: str,
    services: dict[str, Any],
    mounts: list[str],
    command: list[str],
    env: tuple[str, ...] = (),
) -> tuple[str, int]:
    """compose's `bot` service as `podman run`: its hardening, a fresh state volume, the
    metrics port published on loopback. Returns the container name and that port."""
    port = free_port()
    c.run("volume", "create", f"{name}-state")
    flags = hardening(services["bot"])
    c.run(
        *("run", "-d", "--name", name, "--network", NETWORK, "--network-alias", "bot"),
        *(*c.ulimits, *flags),
        *("-v", f"{name}-state:/var/lib/alura-bot", "-p", f"127.0.0.1:{port}:9108"),
        *[f for e in env for f in ("-e", e)],
        *[f for m in mounts for f in ("-v", m)],
        *(IMAGE, *command),
    )
    return name, port


def stop_and_check(c: Check, name: str, grace_s: int) -> str:
    """SIGTERM (podman stop), the exit code and how long it took; the container's log."""
    started = time.monotonic()
    c.run("stop", "-t", str(grace_s), name, check=False, timeout=grace_s + 30)
    took = time.monotonic() - started
    code = c.run("inspect", name, "--format", "{{.State.ExitCode}}").strip()
    c.expect(
        f"{name}: SIGTERM -> exit 0 within 10 s",
        code == "0" and took < 10,
        f"exit {code}, {took:.1f} s",
    )
    both = subprocess.run([*c.podman, "logs", name], capture_output=True, text=True)
    log = both.stdout + both.stderr
    c.expect(
        f"{name}: no traceback, no read-only-filesystem error in the log",
        "Traceback" not in log and "Read-only file system" not in log,
    )
    return log


def volume_path(c: Check, name: str) -> Path:
    return Path(c.run("volume", "inspect", f"{name}-state", "--format", "{{.Mountpoint}}").strip())


def check_running(c: Check, name: str, port: int) -> None:
    """Health, readiness, hardening as the kernel sees it, and nothing written outside mounts."""
    base = f"http://127.0.0.1:{port}"
    took = wait_for(lambda: http(f"{base}/healthz")[0] == 200, 60)
    c.expect(f"{name}: /healthz answers 200", took is not None)
    if took is not None:
        c.number(f"{name}: start to /healthz", f"{took:.1f} s")
    health = subprocess.run([*c.podman, "healthcheck", "run", name], capture_output=True, text=True)
    status = c.run("inspect", name, "--format", "{{.State.Health.Status}}").strip()
    c.expect(
        f"{name}: the image's HEALTHCHECK passes",
        health.returncode == 0 and status == "healthy",
        status,
    )
    wait_for(lambda: http(f"{base}/readyz")[0] == 200, 60)
    code, body = http(f"{base}/readyz")
    c.expect(f"{name}: /readyz answers 200", code == 200, body.decode(errors="replace").strip())
    pid = c.run("inspect", name, "--format", "{{.State.Pid}}").strip()
    status_lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = {k: v.split() for k, _, v in (line.partition(":") for line in status_lines)}
    c.expect(
        f"{name}: the daemon runs as 10001 with no capabilities and no_new_privs",
        fields["Uid"][0] == str(UID)
        and fields["CapEff"][0] == "0" * 16
        and fields["NoNewPrivs"][0] == "1",
        " ".join(f"{k} {fields[k][0]}" for k in ("Uid", "CapEff", "NoNewPrivs")),
    )
    rw: set[str] = set()
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        point, flags = line.split()[4:6]  # the mount point as the daemon sees it, its flags
        if "rw" in flags.split(",") and not re.match(r"/(proc|sys|dev)(/|$)", point):
            rw.add(point)
    c.expect(
        f"{name}: the daemon's root is mounted read-only, only /tmp and the state volume rw",
        rw == set(WRITABLE_EXPECTED),
        " ".join(sorted(rw)),
    )
    writable = c.run("exec", name, "/bin/sh", "-c", WRITABLE).split()
    c.expect(
        f"{name}: as the bot's user, only /tmp and the state volume are writable",
        writable == WRITABLE_EXPECTED,
        " ".join(writable),
    )
    out = subprocess.run(
        [*c.podman, "exec", name, "alura-bot", "status"], capture_output=True, text=True
    )
    c.expect(
        f"{name}: `alura-bot status` through exec", out.returncode == 0 and "paused" in out.stdout
    )


def check_writes(c: Check, name: str, mounts: list[str]) -> None:
    """`podman diff` lists what changed in the container's own layer: only mount points."""
    targets = {m.split(":")[1] for m in mounts}
    changed = [
        line.split(maxsplit=1)[1] for line in c.run("diff", name).splitlines() if line.strip()
    ]
    parents = {str(p) for t in targets for p in Path(t).parents}
    stray = [p for p in changed if p not in targets and p not in parents]
    c.expect(
        f"{name}: nothing written outside the state volume and /tmp", stray == [], ", ".join(stray)
    )


def journal_counts(path: Path, mode: str) -> dict[str, int]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {
            "ticks_ok": db.execute("SELECT COUNT(*) FROM ticks WHERE ok = 1").fetchone()[0],
            "sessions": db.execute(
                "SELECT COUNT(*) FROM sessions WHERE mode = ?", (mode,)
            ).fetchone()[0],
            "accepted": db.execute(
                "SELECT COUNT(*) FROM decisions WHERE verdict = 'accepted'"
            ).fetchone()[0],
        }
    finally:
        db.close()


def live_sessions(path: Path) -> dict[str, str]:
    """Live session id -> the state of the intent that opened it."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT s.id, i.state FROM sessions s LEFT JOIN intents i ON i.id = s.intent_id "
            "WHERE s.mode = 'live'"
        ).fetchall()
        return {str(sid): str(state) for sid, state in rows}
    finally:
        db.close()


def wait_for_sessions(c: Check, name: str, mode: str) -> dict[str, int]:
    """Until the journal in the state volume shows a tick and sessions of this mode."""
    journal = volume_path(c, name) / "journal.sqlite"
    counts: dict[str, int] = {}

    def traded() -> bool:
        nonlocal counts
        if not journal.exists():
            return False
        try:
            counts = journal_counts(journal, mode)
        except sqlite3.Error:
            return False
        return counts["ticks_ok"] >= 1 and counts["sessions"] >= 1

    took = wait_for(traded, 90)
    c.expect(
        f"{name}: ticks and opens {mode} sessions (journal on the state volume)",
        took is not None,
        str(counts),
    )
    state = volume_path(c, name)
    files = sorted(p.name for p in state.iterdir())
    owners = {(p.stat().st_uid, oct(p.stat().st_mode & 0o777)) for p in state.iterdir()}
    c.expect(
        f"{name}: the state volume holds only the journal, owned by 10001, mode 0600",
        all(f.startswith("journal.sqlite") for f in files) and owners == {(UID, "0o600")},
        f"{files} {owners}",
    )
    return counts


def run_containers(c: Check, tree: Path, tmpdir: Path) -> None:
    """The simulator and Prometheus as compose has them, then the bot three ways."""
    services = compose_services(tree)
    grace_s = int(str(services["bot"].get("stop_grace_period", "10s")).removesuffix("s"))
    with simulator(c, services), prometheus(c, services, tree) as prom:
        say("compose's defaults: example config, /dev/null as the key secret, paper mode")
        mounts = [
            f"{tree / 'config/alura-bot.example.toml'}:/etc/alura-bot/config.toml:ro",
            f"/dev/null:{SECRET_PATH}:ro",
        ]
        name, port = run_bot(
            c, "bot-compose", services, mounts, ["run"], ("ALURA_BOT_BASE_URL=http://sim:8080",)
        )
        check_running(c, name, port)
        check_writes(c, name, mounts)
        stop_and_check(c, name, grace_s)

        say("paper mode, no key: ticks and paper sessions against the simulator")
        mounts = [f"{config_dir(tmpdir, 'paper')}:/etc/alura-bot:ro"]
        name, port = run_bot(c, "bot-paper", services, mounts, ["run"])
        check_running(c, name, port)
        wait_for_sessions(c, name, "paper")
        check_writes(c, name, mounts)
        stop_and_check(c, name, grace_s)

        say(f"live mode (`run --live`), the key as a file at {SECRET_PATH}")
        key = secrets.token_hex(32)
        key_file = tmpdir / "private-key"
        key_file.write_text(key + "\n")
        os.chown(key_file, UID, UID)
        key_file.chmod(0o400)
        mounts = [f"{config_dir(tmpdir, 'live')}:/etc/alura-bot:ro", f"{key_file}:{SECRET_PATH}:ro"]
        live_started = time.time()
        name, port = run_bot(c, "bot-live", services, mounts, ["run", "--live"])
        check_running(c, name, port)
        wait_for_sessions(c, name, "live")
        wallet = c.run("exec", name, "python", "-c", WALLET).strip()
        check_scraped(c, prom, live_started)
        metrics = http(f"http://127.0.0.1:{port}/metrics")[1].decode()
        check_writes(c, name, mounts)
        log = stop_and_check(c, name, grace_s)
        # Stopped: the venue and the journal hold still. The simulator's control API answers on
        # its own loopback only, so it is asked from inside its container.
        venue = json.loads(c.run("exec", "sim", "python", "-c", SIM_STATE))["sessions"]
        ours = {v["id"] for v in venue if v["wallet"].lower() == wallet.lower()}
        journal = live_sessions(volume_path(c, name) / "journal.sqlite")
        c.expect(
            "bot-live: the simulator holds exactly the journal's live sessions, under the "
            "key's wallet, every open intent confirmed",
            bool(ours)
            and ours == set(journal)
            and len(ours) == len(venue)
            and set(journal.values()) == {"confirmed"},
            f"wallet {wallet}: {len(ours)} of {len(venue)} venue sessions; journal {journal}",
        )
        journal_bytes = b"".join(p.read_bytes() for p in volume_path(c, name).iterdir())
        c.expect(
            "bot-live: the key is in no log line, journal file or metric",
            key not in log
            and key.encode() not in journal_bytes
            and key not in metrics
            and "/run/secrets" not in metrics,
        )
        if not c.keep:
            for n in ("bot-compose", "bot-paper", "bot-live"):
                c.run("rm", "-f", "-v", n, check=False)
                c.run("volume", "rm", "-f", f"{n}-state", check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp/alura-podman"))  # noqa: S108 - root's cache
    parser.add_argument(
        "--storage-driver", default="overlay", help="overlay, or vfs where overlay cannot mount"
    )
    parser.add_argument("--runtime", default="runc")
    parser.add_argument("--mirror", default="http://deb.debian.org/debian")
    parser.add_argument("--keep", action="store_true", help="leave the containers and volumes")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("podman_check: run as root (debootstrap, rootful podman)", file=sys.stderr)
        return 2
    started = time.monotonic()
    args.workdir.mkdir(parents=True, exist_ok=True)
    ensure_tools()
    c = Check(args.workdir, args.storage_driver, args.runtime, keep=args.keep)
    version = c.run("--version").strip()
    say(f"{version}, runtime {args.runtime}, storage {args.storage_driver} in {args.workdir}")
    for name in ("bot-compose", "bot-paper", "bot-live", "sim", "prometheus"):  # a --keep run's
        c.run("rm", "-f", "-v", "-t", "0", name, check=False)
        c.run("volume", "rm", "-f", f"{name}-state", check=False)
    c.run("volume", "rm", "-f", f"{NETWORK}-prometheus-data", check=False)
    c.run("network", "rm", "-f", NETWORK, check=False)
    build_standin(c, args.mirror)
    with tempfile.TemporaryDirectory(prefix="alura-podman-check.") as tmp:
        tmpdir = Path(tmp)
        tmpdir.chmod(0o755)
        tree = committed_tree(tmpdir)
        build_image(c, tree)
        inspect_image(c)
        run_containers(c, tree, tmpdir)
    c.number("whole check", f"{time.monotonic() - started:.0f} s")
    if c.failures:
        print(f"podman_check: {len(c.failures)} FAILED: {'; '.join(c.failures)}")
        return 1
    print("podman_check: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
