"""Secrets never leave: a full demo run with a known key, then a grep of everything it left.

`alura-bot demo --key-file KEY --log-level DEBUG` runs under `secrets_recorder.py`, which records
every signature the bot sent to /auth/evm/verify and every JWT the simulator issued. The private
key (hex, with and without 0x, any case), each JWT (and its signature segment) and each
signature (with and without 0x) must then appear in none of: stdout and stderr at DEBUG, the
journal's raw bytes (every file of the work dir, -wal and -shm included), the metrics exposition,
`status` and `doctor` output, the text, repr, attributes and tracebacks of every ApiError type,
and the repr/str/model_dump/model_dump_json of Settings. Also: a key file readable by group or
other is refused with exit 2 unless it comes from a systemd credentials directory; the metrics
server of a real `alura-bot run` listens on 127.0.0.1 only; the simulator's /__sim/ endpoints
refuse every non-loopback client; the journal and its -wal/-shm are mode 0600 even under umask 0.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import stat
import subprocess
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from pydantic import SecretStr

import bot.api.errors as errors_mod
from bot.api.errors import ApiError
from bot.api.transport import error_for
from bot.logs import register_secret
from bot.settings import Settings, load_private_key, load_settings
from bot.sim.app import asgi, build_app
from bot.sim.server import SimOptions, build_simulator

REPO = Path(__file__).resolve().parents[2]
RECORDER = Path(__file__).with_name("secrets_recorder.py")
JWT = re.compile(rb"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}")
SIGNATURE_HEX = re.compile(rb"(?<![0-9a-fA-F])[0-9a-fA-F]{130}(?![0-9a-fA-F])")


def env_for(tmp: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ALURA_BOT_") and k != "CREDENTIALS_DIRECTORY"
    }
    env.update(
        {
            "XDG_CONFIG_HOME": str(tmp / "xdg"),
            "COLUMNS": "200",
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(REPO),
            **extra,
        }
    )
    return env


def bot(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=env or env_for(cwd),
        capture_output=True,
        text=True,
        timeout=120,
    )


def write_key(path: Path, mode: int = 0o600) -> str:
    key = "0x" + secrets.token_hex(32)
    path.write_text(key + "\n")
    path.chmod(mode)
    return key


@dataclass
class Secrets:
    key: str
    tokens: list[str] = field(default_factory=list)
    signatures: list[str] = field(default_factory=list)

    def needles(self) -> list[tuple[str, bytes]]:
        """(what, bytes to look for, lower-cased): each secret in every form it could take."""
        out = [("private key", self.key[2:].lower().encode())]  # covers the 0x form too
        for t in self.tokens:
            out.append(("JWT", t.lower().encode()))
            out.append(("JWT signature segment", t.rsplit(".", 1)[1].lower().encode()))
        for s in self.signatures:
            out.append(("login signature", s.lower().removeprefix("0x").encode()))
        return out

    def assert_absent(self, where: str, data: bytes | str) -> None:
        raw = data.encode() if isinstance(data, str) else data
        hay = raw.lower()
        for what, needle in self.needles():
            assert needle not in hay, f"the {what} leaked into {where}"
        found = JWT.findall(raw)
        assert not found, f"a JWT-shaped string leaked into {where}: {found[0][:40]!r}"
        assert not SIGNATURE_HEX.findall(raw), f"a 65-byte signature leaked into {where}"


def record_logins(sim: Any, into: Secrets) -> None:
    """Keep what an in-process simulator's auth sees and issues."""
    original = sim.accounts.verify

    def verify(address: Any, signature: Any, **kw: Any) -> Any:
        grant = original(address, signature, **kw)
        into.signatures.append(signature)
        into.tokens.append(grant["accessToken"])
        return grant

    sim.accounts.verify = verify


# --------------------------------------------------------------------------- the full demo


@dataclass
class DemoRun:
    secrets: Secrets
    workdir: Path
    stdout: str
    stderr: str
    metrics: str
    listeners: list[str]


def listening_addresses(port: int) -> list[str]:
    """Local addresses with a socket LISTENing on `port` (from /proc/net/tcp and tcp6)."""
    found = []
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port and len(address) == width:
                raw = bytes.fromhex(address)
                if width == 8:
                    found.append(socket.inet_ntop(socket.AF_INET, raw[::-1]))
                else:
                    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                    found.append(socket.inet_ntop(socket.AF_INET6, words))
    return found


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """One full demo with a known key at DEBUG; its metrics scraped while it lingers."""
    tmp = tmp_path_factory.mktemp("demo-secrets")
    key_file = tmp / "private-key"
    key = write_key(key_file)
    record = tmp / "logins.jsonl"
    workdir = tmp / "work"
    stderr_path = tmp / "stderr.txt"
    args = [
        *("demo", "--duration", "6", "--no-table", "--workdir", str(workdir)),
        *("--key-file", str(key_file), "--log-level", "DEBUG"),
        *("--metrics-port", "0", "--linger", "60"),
    ]
    with stderr_path.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(RECORDER), str(record), *args],
            cwd=tmp,
            env=env_for(tmp),
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        assert proc.stdout is not None
        stdout: list[str] = []
        metrics = ""
        listeners: list[str] = []
        try:
            for line in proc.stdout:
                stdout.append(line)
                found = re.search(r"serving the final metrics at (http://\S+/metrics)", line)
                if found:
                    url = found.group(1)
                    metrics = httpx.get(url, timeout=10).text
                    listeners = listening_addresses(int(url.rsplit(":", 1)[1].split("/")[0]))
                    proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0, "".join(stdout)[-2000:]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    logins = [json.loads(line) for line in record.read_text().splitlines()]
    found = Secrets(
        key=key,
        tokens=[entry["token"] for entry in logins],
        signatures=[entry["signature"] for entry in logins],
    )
    return DemoRun(found, workdir, "".join(stdout), stderr_path.read_text(), metrics, listeners)


def test_the_demo_really_signed_in_with_the_given_key(demo_run: DemoRun) -> None:
    """The grep below is only worth something if the run used the key and produced secrets."""
    assert demo_run.secrets.tokens and demo_run.secrets.signatures
    address = Account.from_key(demo_run.secrets.key).address.lower()
    claims = json.loads(
        __import__("base64").urlsafe_b64decode(demo_run.secrets.tokens[0].split(".")[1] + "==")
    )
    assert claims["sub"] == address
    assert "demo summary" in demo_run.stdout and "Traceback" not in demo_run.stderr
    assert demo_run.stderr.count("DEBUG") > 10, "the run did not log at DEBUG"
    assert "alura_bot_" in demo_run.metrics


def test_no_secret_in_the_demo_output_at_debug(demo_run: DemoRun) -> None:
    demo_run.secrets.assert_absent("stdout", demo_run.stdout)
    demo_run.secrets.assert_absent("stderr (DEBUG log)", demo_run.stderr)


def test_no_secret_in_the_journal_or_any_file_the_demo_wrote(demo_run: DemoRun) -> None:
    files = sorted(p for p in demo_run.workdir.rglob("*") if p.is_file())
    assert any(p.name == "journal.sqlite" for p in files)
    for path in files:
        demo_run.secrets.assert_absent(str(path), path.read_bytes())


def test_no_secret_in_the_metrics_exposition(demo_run: DemoRun) -> None:
    demo_run.secrets.assert_absent("/metrics", demo_run.metrics)


def test_demo_metrics_listen_on_loopback_only(demo_run: DemoRun) -> None:
    assert demo_run.listeners == ["127.0.0.1"], demo_run.listeners


def test_demo_journal_files_are_private(demo_run: DemoRun) -> None:
    journals = list(demo_run.workdir.glob("journal.sqlite*"))
    assert journals
    for path in journals:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, (path, oct(path.stat().st_mode))


def test_no_secret_in_status_output(demo_run: DemoRun, tmp_path: Path) -> None:
    out = bot("status", "--journal", str(demo_run.workdir / "journal.sqlite"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "open sessions" in out.stdout
    demo_run.secrets.assert_absent("status output", out.stdout + out.stderr)


# --------------------------------------------------------------------------- doctor and auth


@pytest.fixture
def recorded_sim(sim_server: Any) -> Iterator[tuple[str, Secrets]]:
    seen = Secrets(key="")
    record_logins(sim_server.sim, seen)
    yield sim_server.url, seen


@pytest.mark.parametrize("command", ["doctor", "auth"])
def test_no_secret_in_doctor_or_auth_output_at_debug(
    recorded_sim: tuple[str, Secrets], tmp_path: Path, command: str
) -> None:
    url, seen = recorded_sim
    key_file = tmp_path / "private-key"
    seen.key = write_key(key_file)
    out = bot(
        command,
        *("--base-url", url, "--key-file", str(key_file)),
        cwd=tmp_path,
        env=env_for(tmp_path, ALURA_BOT_LOG_LEVEL="DEBUG", ALURA_BOT_LOG_FORMAT="json"),
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert seen.tokens and seen.signatures, "the command never signed in"
    assert '"level": "debug"' in out.stderr, "no DEBUG log line was written"
    seen.assert_absent(f"{command} output", out.stdout + out.stderr)


# --------------------------------------------------------------------------- errors and settings


def every_error_type() -> list[type[ApiError]]:
    return [v for v in vars(errors_mod).values() if isinstance(v, type) and issubclass(v, ApiError)]


def test_no_secret_in_any_api_error(tmp_path: Path) -> None:
    """A server that echoes what it was sent (the Authorization header, the verify body) into an
    error body or message: every error type, built directly or mapped from every status, keeps
    the secrets out of its str, repr, attributes and formatted traceback."""
    key = SecretStr("0x" + secrets.token_hex(32))
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIweDEyMzQ1Njc4OTAifQ." + secrets.token_urlsafe(32)
    signature = "0x" + secrets.token_hex(65)
    for value in (key.get_secret_value(), token, signature):
        register_secret(value)  # what load_private_key and WalletAuth do as secrets appear
    seen = Secrets(key=key.get_secret_value(), tokens=[token], signatures=[signature])
    echo = (
        f'{{"message": "bad token Bearer {token}", "you_sent": {{"signature": "{signature}", '
        f'"key": "{key.get_secret_value()}", "bare": "{key.get_secret_value()[2:]}", '
        f'"sig": "{signature[2:]}"}}}}'
    )
    errors: list[ApiError] = []
    for cls in every_error_type():
        errors.append(
            cls(
                f"refused {token} {signature} {key.get_secret_value()}",
                endpoint="/auth/evm/verify",
                method="POST",
                status=400,
                body=echo,
            )
        )
    for status in (400, 401, 403, 404, 409, 429, 500, 502):
        errors.append(
            error_for(
                status, echo, httpx.Headers({"retry-after": "1"}), endpoint="/x", method="POST"
            )
        )
    for exc in errors:
        try:
            raise exc
        except ApiError as caught:
            rendered = "".join(traceback.format_exception(caught))
        attributes = json.dumps(vars(exc), default=str)
        seen.assert_absent(
            f"{type(exc).__name__}", f"{exc}\n{exc!r}\n{rendered}\n{attributes}\n{exc.args}"
        )


def test_no_key_in_any_dump_of_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = tmp_path / "private-key"
    key = write_key(key_file)
    monkeypatch.setenv("ALURA_BOT_PRIVATE_KEY_FILE", str(key_file))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    settings = load_settings(None)
    assert load_private_key(settings).get_secret_value() == key  # the key is reachable...
    seen = Secrets(key=key)
    dumps = [
        repr(settings),
        str(settings),
        json.dumps(settings.model_dump(mode="json")),
        repr(settings.model_dump()),
        settings.model_dump_json(),
        json.dumps(settings.redacted()),
        repr(load_private_key(settings)),
        str(load_private_key(settings)),
        repr(Settings(private_key_file=key_file)),
    ]
    for text in dumps:
        seen.assert_absent("a settings dump", text)  # ...but in none of its dumps


# --------------------------------------------------------------------------- exposure


@pytest.mark.parametrize("command", ["demo", "auth", "run"])
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_key_file_readable_by_others_is_refused_with_exit_2(
    tmp_path: Path, command: str, mode: int
) -> None:
    key_file = tmp_path / "private-key"
    key = write_key(key_file, mode)
    args = ["--key-file", str(key_file)]
    if command != "demo":
        args += ["--base-url", "http://127.0.0.1:9"]
    out = bot(command, *args, cwd=tmp_path)
    assert out.returncode == 2, (out.returncode, out.stdout[-500:], out.stderr[-500:])
    assert f"chmod 600 {key_file}" in out.stderr + out.stdout
    assert "Traceback" not in out.stderr
    assert key[2:] not in (out.stdout + out.stderr).lower()
    assert not (tmp_path / "alura-bot.sqlite").exists(), "it went on to open a journal"


def test_doctor_reports_an_open_key_file_as_a_failed_check(tmp_path: Path) -> None:
    """doctor diagnoses rather than runs: the key check fails with the fix, exit 1."""
    key_file = tmp_path / "private-key"
    write_key(key_file, 0o644)
    out = bot(
        "doctor", "--key-file", str(key_file), "--base-url", "http://127.0.0.1:9", cwd=tmp_path
    )
    assert out.returncode == 1
    row = next(line for line in out.stdout.splitlines() if "private key" in line)
    assert "fail" in row and "chmod 600" in row, row


def test_key_from_a_credentials_directory_is_accepted_whatever_its_mode(
    recorded_sim: tuple[str, Secrets], tmp_path: Path
) -> None:
    """systemd makes $CREDENTIALS_DIRECTORY private to the unit; a 0644 file there is fine."""
    url, seen = recorded_sim
    creds = tmp_path / "creds"
    creds.mkdir()
    seen.key = write_key(creds / "private-key", 0o644)
    out = bot(
        "auth",
        "--base-url",
        url,
        cwd=tmp_path,
        env=env_for(tmp_path, CREDENTIALS_DIRECTORY=str(creds)),
    )
    assert out.returncode == 0, out.stderr
    assert Account.from_key(seen.key).address in out.stdout
    seen.assert_absent("auth output", out.stdout + out.stderr)


def test_the_daemon_binds_metrics_to_loopback_and_keeps_its_journal_private(
    sim_server: Any, tmp_path: Path
) -> None:
    """`alura-bot run` with no metrics_host set, under umask 0: the metrics socket listens on
    127.0.0.1 only, and the journal, its -wal and its -shm are 0600 while the daemon runs."""
    notify = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    sock.settimeout(60)
    journal = tmp_path / "state" / "journal.sqlite"
    port_probe = socket.socket()
    port_probe.bind(("127.0.0.1", 0))
    port = port_probe.getsockname()[1]
    port_probe.close()
    config = tmp_path / "bot.toml"
    config.write_text(
        f'base_url = "{sim_server.url}"\njournal_path = "{journal}"\nmetrics_port = {port}\n'
        '[[strategies]]\nname = "signal_follower"\nparams = {interval = "1h"}\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "run", "--config", str(config)],
        cwd=tmp_path,
        env=env_for(tmp_path, NOTIFY_SOCKET=str(notify)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: os.umask(0),  # a permissive umask is the point
    )
    try:
        seen: list[str] = []
        while "READY=1" not in seen:
            seen += sock.recv(4096).decode().splitlines()
        assert listening_addresses(port) == ["127.0.0.1"]
        files = sorted(journal.parent.glob("journal.sqlite*"))
        assert {p.name for p in files} >= {"journal.sqlite", "journal.sqlite-wal"}, files
        for path in files:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, (path, oct(path.stat().st_mode))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close()
    assert "Traceback" not in (proc.stdout.read() if proc.stdout else "")


def control_routes(sim: Any) -> list[tuple[str, str]]:
    return [
        (method, route.path)
        for route in build_app(sim).routes
        if getattr(route, "path", "").startswith("/__sim/")
        for method in sorted(getattr(route, "methods", ()) or ())
        if method != "HEAD"
    ]


@pytest.mark.parametrize("client_host", ["203.0.113.9", "10.0.0.5", "2001:db8::7", "192.168.1.2"])
async def test_every_control_endpoint_refuses_non_loopback_clients(
    sim_feed: Any, client_host: str
) -> None:
    sim = build_simulator(SimOptions(speed=0), feed=sim_feed)
    before = sim.clock.now_ms()
    routes = control_routes(sim)
    assert len(routes) >= 8, routes  # state, clock x2, faults x2, fund, requests, expire
    outside = httpx.ASGITransport(app=asgi(sim), client=(client_host, 40_000))
    async with httpx.AsyncClient(transport=outside, base_url="http://sim") as client:
        for method, path in routes:
            body = {"advance_ms": 3_600_000, "address": "0x" + "1" * 40, "amount": 5}
            response = await client.request(method, path, json=body)
            assert response.status_code == 403, (method, path, response.status_code)
            assert "loopback" in response.text
            assert "faults" not in response.json() and "wallets" not in response.json()
    assert sim.clock.now_ms() == before, "a refused control request still moved the clock"
    assert not sim.accounts.wallets, "a refused control request still funded a wallet"


def test_a_forwarded_outside_client_is_refused_too(sim_server: Any) -> None:
    """Behind a reverse proxy on the same host, uvicorn takes the client from X-Forwarded-For
    (it trusts 127.0.0.1): outside traffic relayed by a local proxy stays outside."""
    with httpx.Client(base_url=sim_server.url, timeout=10) as client:
        assert client.get("/__sim/state").status_code == 200
        relayed = client.get("/__sim/state", headers={"X-Forwarded-For": "203.0.113.9"})
        assert relayed.status_code == 403
