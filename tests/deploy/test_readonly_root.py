"""The daemon on a read-only root filesystem: what `docker run --read-only --tmpfs /tmp -v state:`
(Dockerfile, compose.yaml) promises, proven without a docker engine.

`alura-bot run` starts in a private mount namespace (unshare) where every filesystem is mounted
read-only except a state directory (bind mount, the container's volume) and a fresh tmpfs on
/tmp; /proc, /sys and /dev stay as a container gets them. The config directory is carried in
read-only, like compose's `:ro` config mount. Paper mode, against a simulator the test runs on
loopback outside the namespace. The daemon must become ready, tick, open a paper session, keep its
journal in the state directory, write nothing anywhere else (its /tmp included), log no
"Read-only file system" error and exit 0 on SIGTERM.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ALWAYS

LEAD_S = 6.0  # the first tick is scheduled this long after the config is written

# $1 staging dir (becomes /tmp), $2 state dir (rw), $3 config dir (ro), then the command.
# The test's own tmp dir may live under /tmp, which the new tmpfs hides: the tmpfs is assembled
# at the staging dir first (the carried dirs bound into it at their /tmp paths), then moved onto
# /tmp. Then every other filesystem is remounted read-only, the root first among them.
NAMESPACE_SH = r"""
set -eu
stage=$1 state=$2 conf=$3
shift 3
mount -t tmpfs -o mode=1777,size=64m tmpfs "$stage"
carry() {
  case $1 in
    /tmp/*) at="$stage/${1#/tmp/}"; mkdir -p "$at" ;;
    *) at=$1 ;;
  esac
  mount --bind "$1" "$at"
  if [ "$2" = ro ]; then mount -o remount,bind,ro "$at"; fi
}
carry "$state" rw
carry "$conf" ro
mount --move "$stage" /tmp
awk '{print $5}' /proc/self/mountinfo | while read -r mp; do
  case $mp in
    /proc|/proc/*|/sys|/sys/*|/dev|/dev/*|/tmp|/tmp/*|"$state"|"$conf") continue ;;
  esac
  mount -o remount,bind,ro "$mp"
done
if touch /.alura-bot-rw-probe 2>/dev/null; then
  echo "namespace: / is still writable" >&2
  exit 97
fi
cd "$state"
exec "$@"
"""


def _namespace_problem() -> str | None:
    """Why a private read-only mount namespace cannot be made here, or None if it can."""
    if not sys.platform.startswith("linux"):
        return "mount namespaces are Linux only"
    missing = [tool for tool in ("unshare", "mount") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (util-linux)"
    probe = Path(os.environ.get("TMPDIR", "/tmp"))
    try:
        out = subprocess.run(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                'mount -t tmpfs tmpfs "$1" && mount -o remount,bind,ro /',
                "sh",
                str(probe),
            ],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare failed: {exc}"
    if out.returncode != 0:
        return (
            "needs root with CAP_SYS_ADMIN to make a private mount namespace and remount / "
            f"read-only (unshare --mount): {out.stderr.strip() or out.returncode}"
        )
    return None


PROBLEM = _namespace_problem()
pytestmark = pytest.mark.skipif(PROBLEM is not None, reason=f"read-only root test: {PROBLEM}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_text(path: Path, pattern: str, timeout_s: float) -> re.Match[str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = re.search(pattern, path.read_text(errors="replace")) if path.exists() else None
        if found:
            return found
        time.sleep(0.1)  # polling an external process's log, with a deadline
    raise AssertionError(f"no {pattern!r} in {path} in time:\n{path.read_text()[-3000:]}")


@pytest.fixture
def realtime_sim(tmp_path: Path) -> Iterator[str]:
    """The simulator on loopback, on the wall clock (speed 1, starting now): the daemon's ticks
    are scheduled on the wall clock too, so its candles are current."""
    log = tmp_path / "sim.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "bot", "sim", "--port", "0", "--speed", "1"),
                *("--start", str(int(time.time() * 1000))),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        yield wait_for_text(log, r"Uvicorn running on (http://[\d.]+:\d+)", 60).group(1)
    finally:
        proc.kill()
        proc.wait()


def mounts_of(pid: int) -> dict[str, str]:
    """Mount point -> "ro"/"rw" in the namespace of `pid` (the per-mount flag, field 6)."""
    out = {}
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        fields = line.split()
        out[fields[4]] = "ro" if "ro" in fields[5].split(",") else "rw"
    return out


def test_daemon_runs_with_a_read_only_root(realtime_sim: str, tmp_path: Path) -> None:
    state = tmp_path / "state"  # the container's volume
    conf = tmp_path / "etc"  # the container's read-only config mount
    stage = tmp_path / "stage"
    for d in (state, conf / "strategies", stage):
        d.mkdir(parents=True)
    state.chmod(0o700)
    (conf / "strategies" / "test_strategies.py").write_text(ALWAYS)
    port = free_port()
    first_tick = time.time() + LEAD_S
    (conf / "config.toml").write_text(
        f'mode = "paper"\nbase_url = "{realtime_sim}"\n'
        f'metrics_host = "127.0.0.1"\nmetrics_port = {port}\n'
        f'strategies_dir = "{conf / "strategies"}"\n'
        # the first 1m tick lands LEAD_S from now (offset < 60 s: previous or next boundary)
        f"[engine]\ntick_offset_s = {first_tick % 60:.3f}\nstats_every_s = 1\n"
        "[risk]\ncooldown_s = 0\n"
        '[[strategies]]\nname = "always_long"\nassets = ["BTC", "ETH"]\n'
        'params = {interval = "1m"}\n'
    )
    log = tmp_path / "daemon.log"
    # The Dockerfile's runtime environment, with the metrics on loopback.
    env = {
        **os.environ,
        "HOME": "/nonexistent",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "ALURA_BOT_JOURNAL_PATH": str(state / "journal.sqlite"),
        "ALURA_BOT_LOG_FORMAT": "json",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }
    command = [sys.executable, "-m", "bot", "run", "--config", str(conf / "config.toml")]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                *("unshare", "--mount", "--propagation", "private"),
                *("sh", "-c", NAMESPACE_SH, "sh", str(stage), str(state), str(conf)),
                *command,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=state,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        # Ready (reconciled, serving), then ticking: /readyz says "ok" once a tick has run.
        reasons: list[str] = []
        deadline = time.monotonic() + LEAD_S + 75  # one more minute if start-up missed LEAD_S
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                r = httpx.get(f"{base}/readyz", timeout=2)
                if r.status_code == 200:
                    reasons.append(r.json()["reason"])
            except httpx.HTTPError:
                pass
            if reasons and reasons[-1] == "ok":
                break
            time.sleep(0.2)  # polling the daemon (an external process), with a deadline
        assert reasons, f"never ready:\n{log.read_text()[-3000:]}"
        assert reasons[-1] == "ok", f"ready ({reasons[-1]}) but no tick:\n{log.read_text()[-3000:]}"

        # Same process (unshare and sh exec'd into it): the daemon, in its own mount namespace.
        assert b"run" in Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        assert os.readlink(f"/proc/{proc.pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
        mounts = mounts_of(proc.pid)
        writable = {
            mp
            for mp, flag in mounts.items()
            if flag == "rw" and not re.match(r"/(proc|sys|dev)(/|$)", mp)
        }
        assert mounts["/"] == "ro"
        assert writable == {"/tmp", str(state)}, writable
        assert mounts[str(conf)] == "ro"

        # Its /tmp (the one writable place besides the state dir) holds only the directories
        # the namespace set up to carry the state and config dirs: the daemon wrote nothing there.
        ns_tmp = Path(f"/proc/{proc.pid}/root/tmp")
        carried = {str(state), str(conf)}
        allowed = {str(p) for d in carried for p in Path(d).parents if str(p).startswith("/tmp/")}
        stray = []
        for root, dirs, files in os.walk(ns_tmp):
            inside = "/" + str(Path(root).relative_to(ns_tmp.parent))
            if inside in carried:
                dirs[:] = []
                continue
            stray += [f"{inside}/{f}" for f in files]
            stray += [f"{inside}/{d}" for d in dirs if f"{inside}/{d}" not in allowed | carried]
        assert stray == [], f"written to the namespace's /tmp: {stray}"

        stop_sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, log.read_text()[-3000:]
        assert time.monotonic() - stop_sent < 10
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    output = log.read_text(errors="replace")
    assert "Read-only file system" not in output
    assert "EROFS" not in output
    assert "Traceback" not in output

    # The journal is in the state dir (through the bind mount), and says it ticked and traded.
    names = sorted(p.name for p in state.iterdir())
    assert "journal.sqlite" in names and all(n.startswith("journal.sqlite") for n in names), names
    db = sqlite3.connect(f"file:{state / 'journal.sqlite'}?mode=ro", uri=True)
    try:
        ticks_ok = db.execute("SELECT COUNT(*) FROM ticks WHERE ok = 1").fetchone()[0]
        paper = db.execute("SELECT COUNT(*) FROM sessions WHERE mode = 'paper'").fetchone()[0]
        accepted = db.execute(
            "SELECT COUNT(*) FROM decisions WHERE verdict = 'accepted' AND action = 'open_quick'"
        ).fetchone()[0]
    finally:
        db.close()
    assert ticks_ok >= 1
    assert accepted >= 1 and paper >= 1
    assert not (stage / "tmp").exists() and list(stage.iterdir()) == []  # the host never saw it
