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
    "--csv-exchange",
    "--speed",
    "--start",
    "--token-ttl",
    "--nonce-ttl",
    "--balance",
    "--builder-fee",
    "--state",
    "--faults",
    "--owner-check",
    "--close-status",
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
    assert "finer ones cannot be served (at 5m, candles of 1m answer 400)" in " ".join(out.split())


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


DOC_WALLET = "AyWoecj5WdNCVG4HaCyjK9NS1aiaR7FokpkiTPNDgPoa"
SIM = [sys.executable, "-m", "bot", "sim"]


def test_start_up_names_markets_and_the_documents_examples_work(
    procs: list[subprocess.Popen[str]],
) -> None:
    """The banner names markets that take bets (the documents' MarketXYZ123 first); the curl
    examples of user-positions-api.md then work as written, and `--close-status early-closed`
    makes a close status 6."""
    proc = subprocess.Popen(
        [*SIM, "--port", "0", "--speed", "0", "--close-status", "early-closed"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    procs.append(proc)
    assert proc.stdout is not None
    banner: list[str] = []
    for line in proc.stdout:
        found = re.search(r"Uvicorn running on (http://[\d.]+:\d+)", line)
        if found:
            url = found.group(1)
            break
        banner.append(line)
    else:
        raise AssertionError(f"simulator exited with {proc.wait()} before listening")
    text = "".join(banner)
    assert "GET /__sim/markets?open=true" in text
    listed = re.findall(r"fixture_id +(\d+) +market_address (\S+)", text)
    assert listed[0] == ("0", "MarketXYZ123") and len(listed) > 3
    fixture, address = listed[1]
    open_body = {
        "wallet_address": DOC_WALLET,
        "market_address": "MarketXYZ123",
        "selected_team": 1,
        "amount": 500000000,
        "multiplier_bps": 12000,
        "odds_home_bps": 10500,
        "odds_away_bps": 9500,
    }
    opened = httpx.post(f"{url}/api/positions", json=open_body)
    assert opened.status_code == 200 and opened.json()["position"]["id"] == 1001
    other = httpx.post(
        f"{url}/api/v1/compat/positions", json=open_body | {"market_address": address}
    )
    assert other.status_code == 200, other.text
    assert other.json()["position"]["market"]["fixture_id"] == fixture
    closed = httpx.post(
        f"{url}/api/positions/close",
        json={"position_id": 1001, "wallet_address": DOC_WALLET, "close_price": 1234500},
    )
    assert closed.status_code == 200 and closed.json()["position"]["status"] == 6
    markets = httpx.get(f"{url}/__sim/markets").json()["markets"]
    assert {m["address"] for m in markets} >= {"MarketXYZ123", address}


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


def run_sim(*args: str) -> subprocess.CompletedProcess[str]:
    """`alura-bot sim` expected to refuse its arguments (a server that starts is a failure)."""
    try:
        return subprocess.run(
            [sys.executable, "-m", "bot", "sim", "--port", "0", *args],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`alura-bot sim {' '.join(args)}` started a server instead of refusing")


BAD_VALUES = [
    (["--balance", "abc"], "--balance"),
    (["--balance", "-5"], "--balance"),
    (["--balance", "NaN"], "--balance"),
    (["--token-ttl", "0"], "--token-ttl"),
    (["--nonce-ttl", "-1"], "--nonce-ttl"),
    (["--speed", "-3"], "--speed"),
    (["--speed", "inf"], "--speed"),
    (["--speed", "fast"], "--speed"),
    (["--market", "nope"], "--market"),
    (["--market", "csv:/does/not/exist"], "--market"),
    (["--port", "abc"], "--port"),
    (["--port", "70000"], "--port"),
    (["--seed", "-1"], "--seed"),
    (["--start", "yesterday"], "--start"),
    (["--csv-interval", "2m"], "--csv-interval"),
    (["--builder-fee", "0.5"], "--builder-fee"),
    (["--close-status", "closed"], "--close-status"),
    (["--no-such-option"], "--no-such-option"),
]


@pytest.mark.parametrize(("args", "option"), BAD_VALUES, ids=[" ".join(a) for a, _ in BAD_VALUES])
def test_bad_value_is_one_line_naming_the_option_exit_2(args: list[str], option: str) -> None:
    out = run_sim(*args)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2, out.stderr
    assert len(lines) == 1 and option in lines[0], out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""


@pytest.fixture
def csv_dir(tmp_path: Path) -> Path:
    """Two exchanges' 1h BTC files over the same ten days, as shared/data/candles has."""
    from bot.market.data import synthetic_market, write_csv

    start = 1_736_121_600_000
    for seed, exchange in ((3, "hyperliquid"), (4, "binance")):
        (btc,) = synthetic_market(
            seed, start_ms=start, n=240, interval="1h", symbols=["BTC"]
        ).values()
        write_csv(btc, tmp_path / f"BTC-USDC_{exchange}_1h.csv")
    return tmp_path


def binance_replay(csv_dir: Path) -> list[str]:
    return ["--market", f"csv:{csv_dir}", "--csv-interval", "1h", "--csv-exchange", "binance"]


def test_a_symbol_on_several_exchanges_asks_for_csv_exchange(csv_dir: Path) -> None:
    out = run_sim("--market", f"csv:{csv_dir}", "--csv-interval", "1h")
    assert out.returncode == 2 and "--csv-exchange" in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_csv_exchange_picks_that_exchanges_files(
    csv_dir: Path, procs: list[subprocess.Popen[str]]
) -> None:
    from bot.market.data import load_csv

    proc, url = start_sim(*binance_replay(csv_dir), "--speed", "0")
    procs.append(proc)
    rows = httpx.get(f"{url}/api/indicators/candles/BTC/1h?limit=3", timeout=10).json()["candles"]
    served = {r["time"]: r["close"] for r in rows}
    binance = load_csv(csv_dir / "BTC-USDC_binance_1h.csv")
    closes = dict(zip(binance.ts.tolist(), binance.close.tolist(), strict=True))
    assert served and all(closes[t] == c for t, c in served.items())


@pytest.mark.parametrize("start", ["2030-01-01T00:00:00Z", "2020-01-01T00:00:00Z"])
def test_a_start_outside_the_csv_data_is_refused_with_its_range(csv_dir: Path, start: str) -> None:
    out = run_sim(*binance_replay(csv_dir), "--start", start)
    assert out.returncode == 2, out.stderr
    assert "outside the CSV data" in out.stderr and "2025-01-06" in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_injected_cuts_and_vanished_clients_log_one_line_not_a_traceback(
    tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    import socket

    faults = tmp_path / "faults.toml"
    faults.write_text('[[rule]]\nkind = "drop"\nmatch = "GET /api/indicators/*"\n')
    proc, url = start_sim("--faults", str(faults))
    procs.append(proc)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/api/indicators/signals/all/1h", timeout=10)
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(
            b"POST /auth/evm/challenge HTTP/1.1\r\nHost: sim\r\nContent-Type: application/json"
            b"\r\nContent-Length: 100\r\n\r\n{"
        )
    assert httpx.get(f"{url}/health", timeout=10).status_code == 200
    proc.send_signal(signal.SIGINT)
    assert proc.stdout is not None
    log = proc.stdout.read()
    proc.wait(timeout=20)
    assert "fault: connection cut mid-response" in log
    assert "client disconnected mid-request" in log
    assert "Traceback" not in log, log
