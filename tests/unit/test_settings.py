"""Settings: the example file, precedence, env nesting, key sources and their permission checks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from bot.settings import (
    ConfigError,
    KeyFileError,
    Mode,
    NoKeyFound,
    Settings,
    load_private_key,
    load_settings,
)
from tests.conftest import REPO_ROOT, TEST_KEY

EXAMPLE = REPO_ROOT / "config" / "alura-bot.example.toml"


def field_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Dotted paths of every leaf setting; a list of models counts as a section of its own."""
    out = []
    for name, info in model.model_fields.items():
        ann = info.annotation
        is_list = getattr(ann, "__origin__", None) is list
        item = getattr(ann, "__args__", (None,))[0] if is_list else None
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += field_paths(ann, f"{prefix}{name}.")
        elif isinstance(item, type) and issubclass(item, BaseModel):
            out += field_paths(item, f"{prefix}{name}.")
        else:
            out.append(prefix + name)
    return out


def test_example_config_loads_and_equals_defaults(clean_env: Path) -> None:
    loaded = load_settings(EXAMPLE)
    assert loaded.model_dump() == load_settings(None).model_dump()


def test_example_config_documents_every_setting() -> None:
    text = EXAMPLE.read_text()
    sections = {"": text.split("\n[")[0]}
    for block in re.split(r"^\[+", text, flags=re.M)[1:]:
        name, _, body = block.partition("]")
        sections[name + "."] = sections.get(name + ".", "") + body
    missing = []
    for path in field_paths(Settings):
        section, _, leaf = path.rpartition(".")
        body = sections.get(section + "." if section else "", "")
        if not re.search(rf"^#?\s*{leaf}\s*=", body, flags=re.M):
            missing.append(path)
    assert missing == []


def test_defaults_are_paper_and_testnet(clean_env: Path) -> None:
    s = load_settings(None)
    assert s.mode is Mode.PAPER
    assert str(s.base_url) == "https://testnet-api.alura.fun/"


def test_env_overrides_file_and_nests(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = clean_env / "c.toml"
    cfg.write_text('log_level = "DEBUG"\n[http]\nrate_limit_per_s = 2.0\nretry_attempts = 2\n')
    monkeypatch.setenv("ALURA_BOT_HTTP__RATE_LIMIT_PER_S", "3.5")
    s = load_settings(cfg)
    assert s.http.rate_limit_per_s == 3.5
    assert s.http.retry_attempts == 2
    assert s.log_level == "DEBUG"


def test_cli_override_beats_env(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALURA_BOT_BASE_URL", "http://env.test")
    assert str(load_settings(None, base_url="http://flag.test").base_url) == "http://flag.test/"


def test_default_search_finds_cwd_file(clean_env: Path) -> None:
    (clean_env / "alura-bot.toml").write_text("metrics_port = 9999\n")
    assert load_settings(None).metrics_port == 9999


def test_xdg_config_is_searched(clean_env: Path) -> None:
    xdg = clean_env / "xdg" / "alura-bot"
    xdg.mkdir(parents=True)
    (xdg / "config.toml").write_text("metrics_port = 9998\n")
    assert load_settings(None).metrics_port == 9998


def test_bad_config_lists_every_bad_field(clean_env: Path) -> None:
    cfg = clean_env / "bad.toml"
    cfg.write_text('mode = "yolo"\nmetrics_port = 70000\nbogus = 1\n[http]\nretry_attempts = 0\n')
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    text = "\n".join(info.value.problems)
    assert len(info.value.problems) == 4
    assert "mode = 'yolo'" in text and "'paper' or 'live'" in text
    assert "metrics_port = 70000" in text
    assert "bogus" in text and "unknown setting" in text
    assert "http.retry_attempts = 0" in text


def test_history_shorter_than_the_lookback_is_a_config_error(clean_env: Path) -> None:
    cfg = clean_env / "bad.toml"
    cfg.write_text("[engine]\nlookback_candles = 500\nhistory_candles = 400\n")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    assert "history_candles (400) must be at least lookback_candles (500)" in str(info.value)


def test_invalid_toml_is_a_config_error(clean_env: Path) -> None:
    cfg = clean_env / "broken.toml"
    cfg.write_text("mode = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(cfg)


def test_missing_config_file_is_a_config_error(clean_env: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(clean_env / "nope.toml")


def test_key_file_must_not_be_group_or_world_readable(clean_env: Path, key_file: Path) -> None:
    key_file.chmod(0o644)
    s = load_settings(None, private_key_file=key_file)
    with pytest.raises(KeyFileError, match=f"chmod 600 {key_file}"):
        load_private_key(s)


@pytest.mark.parametrize("digits", ["f" * 64, "0" * 64], ids=["above-curve-order", "zero"])
def test_hex_that_is_not_a_valid_key_is_a_key_error_without_the_key(
    clean_env: Path, digits: str
) -> None:
    path = clean_env / "bad-key"
    path.write_text(digits + "\n")
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match="not a valid secp256k1 private key") as caught:
        load_private_key(load_settings(None, private_key_file=path))
    assert digits not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__context__ is None


def test_key_file_loaded_as_secret(clean_env: Path, key_file: Path) -> None:
    key = load_private_key(load_settings(None, private_key_file=key_file))
    assert key.get_secret_value() == TEST_KEY
    assert TEST_KEY not in repr(key) and TEST_KEY[2:] not in str(key)


def test_key_from_systemd_credentials(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    creds = clean_env / "creds"
    creds.mkdir()
    (creds / "private-key").write_text(TEST_KEY[2:])
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert load_private_key(load_settings(None)).get_secret_value() == TEST_KEY


def test_key_from_docker_secret(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = clean_env / "alura_private_key"
    secret.write_text(TEST_KEY)
    monkeypatch.setattr("bot.settings.DOCKER_SECRET_PATH", secret)
    assert load_private_key(load_settings(None)).get_secret_value() == TEST_KEY


def test_no_key_anywhere_names_the_places(clean_env: Path) -> None:
    with pytest.raises(KeyFileError, match="no private key found"):
        load_private_key(load_settings(None))


def test_garbage_key_file_error_does_not_echo_content(clean_env: Path) -> None:
    bad = clean_env / "k"
    bad.write_text("0x" + "zz" * 32)
    bad.chmod(0o600)
    with pytest.raises(KeyFileError) as info:
        load_private_key(load_settings(None, private_key_file=bad))
    assert "zz" not in str(info.value) and "64 hex digits" in str(info.value)


def test_solana_wallet_validated(clean_env: Path) -> None:
    ok = load_settings(
        None, positions={"wallet_address": "AyWoecj5WdNCVG4HaCyjK9NS1aiaR7FokpkiTPNDgPoa"}
    )
    assert ok.positions.wallet_address
    with pytest.raises(ConfigError, match=r"positions\.wallet_address"):
        load_settings(None, positions={"wallet_address": "0xNotSolana0OIl"})


def test_an_empty_docker_secret_means_no_key(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = clean_env / "alura_private_key"
    secret.write_text("")  # compose.yaml's default secret is /dev/null
    monkeypatch.setattr("bot.settings.DOCKER_SECRET_PATH", secret)
    with pytest.raises(NoKeyFound, match=r"alura_private_key \(empty\)"):
        load_private_key(load_settings(None))


def test_an_empty_private_key_file_is_still_an_error(clean_env: Path) -> None:
    empty = clean_env / "key"
    empty.write_text("")
    empty.chmod(0o600)
    cfg = clean_env / "c.toml"
    cfg.write_text(f'private_key_file = "{empty}"\n')
    with pytest.raises(KeyFileError) as info:
        load_private_key(load_settings(cfg))
    assert not isinstance(info.value, NoKeyFound)


def test_a_shutdown_wait_longer_than_the_service_managers_allow_is_refused(
    clean_env: Path,
) -> None:
    cfg = clean_env / "c.toml"
    cfg.write_text("[engine]\nshutdown_timeout_s = 30\n")
    with pytest.raises(ConfigError, match=r"engine\.shutdown_timeout_s = 30"):
        load_settings(cfg)


def test_paper_mode_starts_without_a_key_when_the_docker_secret_is_empty(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.cli import _optional_key

    secret = clean_env / "alura_private_key"
    secret.write_text("\n")
    monkeypatch.setattr("bot.settings.DOCKER_SECRET_PATH", secret)
    assert _optional_key(load_settings(None)) is None
