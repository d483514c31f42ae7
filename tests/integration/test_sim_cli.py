"""`alura-bot sim` as an operator runs it: a real process, real HTTP, state across kill -9."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from tests.conftest import TEST_ADDRESS, TEST_KEY

OPTIONS = [
    "--host",
    "--port",
    "--seed",
    "--market",
    "--csv-interval",
    "--speed",
    "--start",
    "--token-ttl",
    "--nonce-ttl",
    "--balance",
    "--builder-fee",
    "--state",
    "--faults",
    "--owner-check",
]


def start_sim(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "sim", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        found = re.search(r"Uvicorn running on (http://[\d.]+:\d+)", line)
        if found:
            return proc, found.group(1)
    raise AssertionError(f"simulator exited with {proc.wait()} before listening")


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait()


def login(url: str) -> str:
    challenge = httpx.post(f"{url}/auth/evm/challenge", json={"address": TEST_ADDRESS}).json()
    signed = Account.sign_message(encode_defunct(text=challenge["message"]), private_key=TEST_KEY)
    body = {"address": TEST_ADDRESS, "signature": "0x" + bytes(signed.signature).hex()}
    return str(httpx.post(f"{url}/auth/evm/verify", json=body).json()["accessToken"])


def test_help_documents_every_option() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bot", "sim", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        check=True,
    ).stdout
    for option in OPTIONS:
        assert option in out


def test_serves_the_documented_api(procs: list[subprocess.Popen[str]]) -> None:
    proc, url = start_sim()
    procs.append(proc)
    signals = httpx.get(f"{url}/api/indicators/signals/all/1h").json()["signals"]
    assert {s["signal"] for s in signals} <= {"BUY", "SELL", "NEUTRAL"} and len(signals) == 6
    token = login(url)
    resp = httpx.post(
        f"{url}/trading-sessions",
        headers={"Authorization": f"Bearer {token}"},
        json={
            "budget": 100,
            "profitTarget": 40,
            "lossThreshold": 5,
            "maxPositions": 3,
            "assetIndex": 0,
        },
    )
    assert resp.status_code == 201 and resp.json()["assetIndex"] == 0


def test_state_survives_kill_9(procs: list[subprocess.Popen[str]], tmp_path: Path) -> None:
    state = tmp_path / "venue.sqlite"
    proc, url = start_sim("--state", str(state))
    procs.append(proc)
    token = login(url)
    auth = {"Authorization": f"Bearer {token}"}
    created = httpx.post(
        f"{url}/trading-sessions",
        headers=auth,
        json={"budget": 100, "profitTarget": 2, "assetIndex": 2},
    ).json()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert oct(state.stat().st_mode & 0o777) == "0o600"
    proc2, url2 = start_sim("--state", str(state))
    procs.append(proc2)
    active = httpx.get(f"{url2}/trading-sessions/active", headers=auth).json()
    assert [s["id"] for s in active] == [created["id"]]


def test_bad_fault_profile_exits_2(tmp_path: Path) -> None:
    faults = tmp_path / "faults.toml"
    faults.write_text('[[rule]]\nkind = "meteor"\n')
    out = subprocess.run(
        [sys.executable, "-m", "bot", "sim", "--faults", str(faults)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "kind = 'meteor'" in out.stderr
    assert "Traceback" not in out.stderr
