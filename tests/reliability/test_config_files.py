"""Malformed config and candle files, run as a user runs them: one clear line, exit code 2.

Every variant is a real subprocess of `python -m bot` (`doctor --config FILE`, `data check FILE`,
`backtest ... --data FILE`) in an empty directory with no ALURA_BOT_* variables but the ones the
variant sets. Pass: exit code 2, exactly one error line on stderr that names the setting (or the
environment variable that set it) or the file and the line, nothing else on stderr, and no
traceback anywhere.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HEADER = "timestamp,open,high,low,close,volume"
T0 = 1_736_121_600_000
HOUR = 3_600_000


def run(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ALURA_BOT_") and k != "CREDENTIALS_DIRECTORY"
    }
    clean.update({"XDG_CONFIG_HOME": str(cwd / "xdg"), "COLUMNS": "200", **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_error_line(out: subprocess.CompletedProcess[str], prefix: str) -> str:
    assert out.returncode == 2, (out.returncode, out.stdout[-1000:], out.stderr[-2000:])
    assert "Traceback" not in out.stderr + out.stdout, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith(prefix), lines[0]
    return lines[0]


# --------------------------------------------------------------------------- config files

# (id, TOML text or bytes, extra env, what the one line must name)
CONFIGS: list[tuple[str, str | bytes, dict[str, str], list[str]]] = [
    # syntax
    ("value_missing", "mode = \n", {}, ["not valid TOML", "line 1"]),
    ("unclosed_table", "[http\nretry_attempts = 2\n", {}, ["not valid TOML", "line 1"]),
    ("duplicate_key", 'mode = "paper"\nmode = "live"\n', {}, ["not valid TOML", "line 2"]),
    ("unterminated_string", 'base_url = "http://x\n', {}, ["not valid TOML", "line 1"]),
    ("binary_junk", b"\x00\xff\xfe\x89PNG\r\n\x1a\n", {}, ["not valid TOML", "UTF-8"]),
    ("array_of_tables_typo", "[[strategies]\nname = 'x'\n", {}, ["not valid TOML"]),
    # wrong types
    ("port_text", 'metrics_port = "abc"\n', {}, ["metrics_port", "'abc'"]),
    ("section_scalar", "http = 5\n", {}, ["http"]),
    ("nested_text", '[http]\nretry_attempts = "many"\n', {}, ["http.retry_attempts", "'many'"]),
    ("strategies_text", 'strategies = "signal_follower"\n', {}, ["strategies"]),
    ("mode_number", "mode = 1\n", {}, ["mode"]),
    ("fraction_for_int", "[risk]\nmax_open_sessions = 1.5\n", {}, ["risk.max_open_sessions"]),
    ("list_for_float", "[http]\nread_timeout_s = [1]\n", {}, ["http.read_timeout_s"]),
    # unknown keys
    ("unknown_top", 'modee = "paper"\n', {}, ["modee", "unknown setting"]),
    ("unknown_nested", "[http]\ntimeout = 3\n", {}, ["http.timeout", "unknown setting"]),
    (
        "unknown_in_strategy",
        '[[strategies]]\nname = "ema_cross"\nfast_period = 5\n',
        {},
        ["strategies.0.fast_period", "unknown setting"],
    ),
    # out of range
    ("port_too_big", "metrics_port = 70000\n", {}, ["metrics_port", "70000"]),
    ("rate_zero", "[http]\nrate_limit_per_s = 0\n", {}, ["http.rate_limit_per_s"]),
    ("budget_below_min", "[risk]\nmax_budget_per_session = 5\n", {}, ["max_budget_per_session"]),
    ("log_level", 'log_level = "TRACE"\n', {}, ["log_level", "'TRACE'"]),
    ("not_a_url", 'base_url = "not a url"\n', {}, ["base_url"]),
    ("evm_address", 'wallet_address = "0x12"\n', {}, ["wallet_address", "EVM address"]),
    ("solana_wallet", '[positions]\nwallet_address = "abc"\n', {}, ["positions.wallet_address"]),
    ("negative_cooldown", "[risk]\ncooldown_s = -1\n", {}, ["risk.cooldown_s"]),
    # environment overrides
    ("env_port_text", "", {"ALURA_BOT_METRICS_PORT": "abc"}, ["ALURA_BOT_METRICS_PORT"]),
    ("env_bad_json", "", {"ALURA_BOT_HTTP": "{bad"}, ["ALURA_BOT_HTTP", "not valid JSON"]),
    (
        "env_nested_range",
        "",
        {"ALURA_BOT_HTTP__RETRY_ATTEMPTS": "-1"},
        ["ALURA_BOT_HTTP__RETRY_ATTEMPTS", "retry_attempts"],
    ),
    ("env_mode", "", {"ALURA_BOT_MODE": "yolo"}, ["ALURA_BOT_MODE", "'yolo'"]),
    ("env_list_text", "", {"ALURA_BOT_STRATEGIES": "notjson"}, ["ALURA_BOT_STRATEGIES"]),
    (
        "env_beats_good_file",
        "metrics_port = 9000\n",
        {"ALURA_BOT_METRICS_PORT": "99999"},
        ["ALURA_BOT_METRICS_PORT", "99999"],
    ),
]


@pytest.mark.parametrize(
    ("text", "env", "names"),
    [pytest.param(text, env, names, id=name) for name, text, env, names in CONFIGS],
)
def test_malformed_config_is_one_line_and_exit_2(
    tmp_path: Path, text: str | bytes, env: dict[str, str], names: list[str]
) -> None:
    config = tmp_path / "bot.toml"
    if isinstance(text, bytes):
        config.write_bytes(text)
    else:
        config.write_text(text)
    out = run(["doctor", "--config", str(config)], tmp_path, env)
    line = one_error_line(out, "config error: ")
    for name in names:
        assert name in line, (name, line)
    if not any(n.startswith("ALURA_BOT_") for n in names):
        assert str(config) in line, line  # the file is named, so the user knows where to look


@pytest.mark.parametrize("kind", ["missing", "directory", "unreadable"])
def test_config_that_cannot_be_read_is_one_line_and_exit_2(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "bot.toml"
    if kind == "directory":
        path.mkdir()
    elif kind == "unreadable":
        path.write_text('mode = "paper"\n')
        path.chmod(0)
        if os.access(path, os.R_OK):  # root reads anything: make it unreadable another way
            path.unlink()
            path.symlink_to(path)  # a symlink loop: open() fails with ELOOP
    out = run(["doctor", "--config", str(path)], tmp_path)
    line = one_error_line(out, "config error: ")
    assert str(path) in line, line


def test_the_same_config_errors_stop_the_daemon(tmp_path: Path) -> None:
    """`run` reads settings the same way: a bad file never gets as far as the journal."""
    config = tmp_path / "bot.toml"
    config.write_text('[engine]\nlookback_candles = 3\njournal = "x"\n')
    out = run(["run", "--config", str(config)], tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert (
        lines == [line for line in lines if line.startswith("config error: ")] and len(lines) == 2
    ), lines
    assert any("engine.lookback_candles" in line for line in lines)
    assert any("engine.journal" in line for line in lines)
    assert not (tmp_path / "alura-bot.sqlite").exists()


@pytest.mark.parametrize(
    ("strategy", "says"),
    [
        ('name = "ema_cross"\nparams = { fast = 30, slow = 10 }', "fast (30) must be smaller"),
        ('name = "no_such_strategy"', "unknown strategy 'no_such_strategy'; available:"),
    ],
    ids=["bad params", "unknown name"],
)
def test_a_bad_strategy_stops_the_daemon_before_it_starts(
    tmp_path: Path, strategy: str, says: str
) -> None:
    config = tmp_path / "bot.toml"
    journal = tmp_path / "journal.sqlite"
    config.write_text(f'journal_path = "{journal}"\nmetrics_port = 0\n[[strategies]]\n{strategy}\n')
    out = run(["run", "--config", str(config)], tmp_path)
    line = one_error_line(out, "config error: ")
    assert says in line, line
    assert not journal.exists()


# --------------------------------------------------------------------------- candle files


def candles_csv(n: int = 80) -> list[str]:
    rows = [HEADER]
    for i in range(n):
        price = 100 + (i % 7)
        rows.append(f"{T0 + i * HOUR},{price},{price + 2},{price - 2},{price + 1},{10 + i}")
    return rows


def with_row(i: int, row: str) -> bytes:
    rows = candles_csv()
    rows[i] = row
    return ("\n".join(rows) + "\n").encode()


def ts(i: int) -> int:
    return T0 + (i - 1) * HOUR


# (id, file bytes, the line the message names or None, what else it must say)
CANDLES: list[tuple[str, bytes, int | None, str]] = [
    ("bad_header", ("time,o,h,l,c,v\n" + "\n".join(candles_csv()[1:])).encode(), 1, "header"),
    ("non_numeric", with_row(5, f"{ts(5)},abc,102,98,101,10"), 6, "open 'abc' is not a number"),
    ("nan_price", with_row(6, f"{ts(6)},nan,102,98,101,10"), 7, "open nan is not a finite"),
    ("inf_price", with_row(7, f"{ts(7)},100,inf,98,101,10"), 8, "high inf is not a finite"),
    ("high_below_low", with_row(8, f"{ts(8)},100,98,102,100,10"), 9, "high 98.0 < low 102.0"),
    ("unsorted", with_row(9, f"{ts(3)},100,102,98,101,10"), 10, "before the previous one"),
    ("duplicate", with_row(10, f"{ts(9)},100,102,98,101,10"), 11, "duplicate timestamp"),
    ("negative_price", with_row(11, f"{ts(11)},-100,102,98,101,10"), 12, "open -100.0"),
    ("zero_close", with_row(12, f"{ts(12)},100,102,98,0,10"), 13, "close 0.0 is not positive"),
    ("negative_volume", with_row(13, f"{ts(13)},100,102,98,101,-1"), 14, "volume -1.0 is negative"),
    ("huge_price", with_row(14, f"{ts(14)},1e308,1e308,1e308,1e308,1"), 15, "implausibly large"),
    ("seconds_not_ms", with_row(1, f"{T0 // 1000},100,102,98,101,10"), 2, "seconds?"),
    ("field_missing", with_row(15, f"{ts(15)},100,102,98,101"), 16, "expected 6 comma-separated"),
    ("empty_field", with_row(16, f"{ts(16)},100,,98,101,10"), 17, "high is empty"),
    ("blank_line", with_row(17, ""), 18, "empty line"),
    ("off_grid_time", with_row(18, f"{ts(18) + 123},100,102,98,101,10"), 19, "not a multiple"),
    ("empty_file", b"", 1, "file is empty"),
    ("header_only", (HEADER + "\n").encode(), None, "has a header but no candles"),
    ("binary_junk", b"\x00\xff\xfe\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", 1, "header"),
    (
        "invalid_utf8_row",
        with_row(19, f"{ts(19)},10\xff0,102,98,101,10").replace(b"\xc3\xbf", b"\xff"),
        20,
        "not a number",
    ),
]
COMMANDS = {
    "data_check": lambda f: ["data", "check", str(f)],
    "backtest": lambda f: ["backtest", "-s", "ema_cross", "--data", str(f)],
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize(
    ("body", "line", "says"),
    [pytest.param(body, line, says, id=name) for name, body, line, says in CANDLES],
)
def test_malformed_candle_file_names_the_file_and_line_and_exits_2(
    tmp_path: Path, command: str, body: bytes, line: int | None, says: str
) -> None:
    path = tmp_path / "BTC-USDC_test_1h.csv"
    path.write_bytes(body)
    out = run(COMMANDS[command](path), tmp_path)
    message = one_error_line(out, "error: ")
    where = f"{path} line {line}:" if line is not None else f"{path}:"
    assert message.startswith(f"error: {where}"), message
    assert says in message, message


def test_a_good_file_passes_both_commands(tmp_path: Path) -> None:
    """The control: the same generator without the poison is accepted by both commands."""
    path = tmp_path / "BTC-USDC_test_1h.csv"
    path.write_text("\n".join(candles_csv(400)) + "\n")
    check = run(COMMANDS["data_check"](path), tmp_path)
    assert check.returncode == 0, check.stderr
    backtest = run([*COMMANDS["backtest"](path), "--json"], tmp_path)
    assert backtest.returncode == 0, backtest.stderr[-2000:]
