"""Settings: a TOML file, `ALURA_BOT_*` environment overrides and a private key from a secret file.

Precedence, highest first: explicit overrides (CLI flags) > environment > TOML file > defaults.
The key is read only from files (a 0600 file, systemd credentials or a docker secret) and is held
as `SecretStr`, so it never shows in a repr, a log line or an error message.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Mapping, Sequence
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from bot.domain import validate_solana_address
from bot.logs import register_secret

ENV_PREFIX = "ALURA_BOT_"
SYSTEMD_CREDENTIAL_NAME = "private-key"
DOCKER_SECRET_PATH = Path("/run/secrets/alura_private_key")


class Mode(StrEnum):
    PAPER = "paper"
    LIVE = "live"


class ConfigError(Exception):
    """A configuration problem an operator must fix; printed without a traceback, exit code 2."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def default_config_paths() -> list[Path]:
    """Where a config file is looked for when `--config` is not given, in order."""
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return [
        Path("alura-bot.toml"),
        Path(xdg) / "alura-bot" / "config.toml",
        Path("/etc/alura-bot/config.toml"),
    ]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpSettings(_Section):
    """How the one shared HTTP client behaves."""

    connect_timeout_s: Annotated[float, Field(gt=0, le=120)] = 5.0
    read_timeout_s: Annotated[float, Field(gt=0, le=300)] = 15.0
    write_timeout_s: Annotated[float, Field(gt=0, le=300)] = 15.0
    pool_timeout_s: Annotated[float, Field(gt=0, le=300)] = 5.0
    max_connections: Annotated[int, Field(ge=1, le=1000)] = 20
    max_keepalive_connections: Annotated[int, Field(ge=0, le=1000)] = 10
    backend: Literal["aiohttp", "httpcore"] = "aiohttp"
    """What carries the bytes under httpx: aiohttp (~a third of the CPU per request) or httpx's
    own httpcore (the fallback if aiohttp ever misbehaves somewhere)."""
    rate_limit_per_s: Annotated[float, Field(gt=0, le=10_000)] = 8.0
    rate_limit_burst: Annotated[int, Field(ge=1, le=10_000)] = 8
    retry_attempts: Annotated[int, Field(ge=1, le=20)] = 4
    retry_max_wait_s: Annotated[float, Field(ge=0, le=600)] = 30.0
    retry_total_s: Annotated[float, Field(gt=0, le=3600)] = 60.0


class AuthSettings(_Section):
    """Token handling for the EVM wallet login."""

    refresh_margin_s: Annotated[float, Field(ge=0, le=86_400)] = 300.0
    referral_code: str | None = None


class PositionsSettings(_Section):
    """The user positions API (a separate service; Solana wallet, raw integer units)."""

    base_url: AnyHttpUrl | None = None
    layer: Annotated[str, Field(pattern="^(proxy|backend)$")] = "proxy"
    wallet_address: str | None = None
    decimals: Annotated[int, Field(ge=0, le=18)] = 9

    @field_validator("wallet_address")
    @classmethod
    def _base58(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return validate_solana_address(value)


class StrategyConfig(_Section):
    """One strategy instance: which, on which assets, with which params (validated by it)."""

    name: str
    enabled: bool = True
    assets: list[str] = ["BTC", "ETH", "SOL", "XRP", "DOGE", "AVAX"]
    params: dict[str, Any] = {}


class RiskSettings(_Section):
    """Limits the RiskGate enforces on every opening decision."""

    max_open_sessions: Annotated[int, Field(ge=1, le=100)] = 3
    max_budget_per_session: Annotated[Decimal, Field(ge=10)] = Decimal("250")
    max_total_budget: Annotated[Decimal, Field(ge=10)] = Decimal("1000")
    daily_loss_limit: Annotated[Decimal, Field(gt=0)] = Decimal("100")
    cooldown_s: Annotated[int, Field(ge=0, le=7 * 86_400)] = 3600
    stale_after_intervals: Annotated[int, Field(ge=1, le=100)] = 2
    min_free_balance: Annotated[Decimal, Field(ge=0)] = Decimal("20")


class EngineSettings(_Section):
    """Scheduling of the daemon's jobs."""

    tick_offset_s: Annotated[float, Field(ge=0, le=300)] = 5.0
    reconcile_every_s: Annotated[float, Field(ge=1, le=86_400)] = 300.0
    stats_every_s: Annotated[float, Field(ge=1, le=60)] = 60.0
    lookback_candles: Annotated[int, Field(ge=50, le=5000)] = 1000
    history_candles: Annotated[int, Field(ge=50, le=100_000)] = 5000
    strategy_timeout_s: Annotated[float, Field(gt=0, le=300)] = 10.0
    misfire_grace_s: Annotated[int, Field(ge=1, le=3600)] = 30
    shutdown_timeout_s: Annotated[float, Field(gt=0, le=9)] = 8.0  # systemd and docker wait 10 s
    paper_balance: Annotated[Decimal, Field(ge=0)] = Decimal("10000")
    clock: Literal["system", "venue"] = "system"

    @model_validator(mode="after")
    def _history_holds_the_lookback(self) -> EngineSettings:
        if self.history_candles < self.lookback_candles:
            raise ValueError(
                f"history_candles ({self.history_candles}) must be at least lookback_candles "
                f"({self.lookback_candles})"
            )
        return self


def _default_strategies() -> list[StrategyConfig]:
    return [StrategyConfig(name="signal_follower"), StrategyConfig(name="position_guard")]


class Settings(BaseSettings):
    """Everything the bot can be told; each field is documented in config/alura-bot.example.toml."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    _toml_path: ClassVar[Path | None] = None

    mode: Mode = Mode.PAPER
    base_url: AnyHttpUrl = AnyHttpUrl("https://testnet-api.alura.fun")
    private_key_file: Path | None = None
    wallet_address: str | None = Field(
        default=None,
        description="Optional EVM address the key is expected to derive; doctor warns on mismatch.",
    )
    journal_path: Path = Path("alura-bot.sqlite")
    log_level: Annotated[str, Field(pattern="^(DEBUG|INFO|WARNING|ERROR)$")] = "INFO"
    log_format: Annotated[str, Field(pattern="^(auto|json|console)$")] = "auto"
    metrics_host: str = "127.0.0.1"
    metrics_port: Annotated[int, Field(ge=0, le=65_535)] = 9108
    max_clock_skew_s: Annotated[float, Field(gt=0, le=3600)] = 5.0
    default_budget_usd: Annotated[Decimal, Field(ge=10)] = Decimal("100")
    strategies_dir: Path | None = None
    strategies: list[StrategyConfig] = Field(default_factory=_default_strategies)
    http: HttpSettings = HttpSettings()
    auth: AuthSettings = AuthSettings()
    positions: PositionsSettings = PositionsSettings()
    risk: RiskSettings = RiskSettings()
    engine: EngineSettings = EngineSettings()

    # The key itself is never a setting: it is loaded by `load_private_key` from a file.

    @field_validator("wallet_address")
    @classmethod
    def _evm_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not (value.startswith("0x") and len(value) == 42):
            raise ValueError("must be a 0x-prefixed, 40-hex-digit EVM address")
        try:
            int(value[2:], 16)
        except ValueError:
            raise ValueError("must be a 0x-prefixed, 40-hex-digit EVM address") from None
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if cls._toml_path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cls._toml_path))
        return tuple(sources)

    def redacted(self) -> dict[str, Any]:
        """A dump that is safe to print: there is no secret field, but paths are shown as-is."""
        return self.model_dump(mode="json")


def _env_settings(environ: Mapping[str, str]) -> list[tuple[str, tuple[str, ...], str]]:
    """The ALURA_BOT_* variables as (name, lower-cased settings path split on `__`, value)."""
    found = []
    for name, value in environ.items():
        if name.upper().startswith(ENV_PREFIX) and len(name) > len(ENV_PREFIX):
            path = tuple(name[len(ENV_PREFIX) :].lower().split("__"))
            found.append((name, path, value))
    return found


def _json_holds(value: str, rest: Sequence[str | int]) -> bool:
    """Whether a JSON env value holds the nested location `rest` (it may be merged with TOML).

    A value that is not a JSON object/array cannot hold nested keys, so a longer location is
    pydantic's own detail about that value and still counts as coming from it.
    """
    try:
        node: Any = json.loads(value)
    except ValueError:
        return True
    if not isinstance(node, dict | list):
        return True
    for part in rest:
        if isinstance(node, dict) and str(part) in node:
            node = node[str(part)]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            return False
    return True


def _env_origin(
    loc: Sequence[str | int], env: list[tuple[str, tuple[str, ...], str]], *, missing: bool = False
) -> str | None:
    """The ALURA_BOT_* variable a bad value came from (the most specific one), if any.

    For a missing field the culprit is whoever gave the object that lacks it (its parent).
    """
    want = tuple(str(p).lower() for p in loc)
    best: str | None = None
    best_len = 0
    for name, path, value in env:
        n = len(path)
        if n <= best_len or n > len(want) or want[:n] != path:
            continue
        rest = loc[n:-1] if missing else loc[n:]
        if n < len(want) and not _json_holds(value, rest):
            continue
        best, best_len = name, n
    return best


def _format_validation_error(
    err: ValidationError,
    source: str,
    *,
    environ: Mapping[str, str] | None = None,
    overridden: set[str] | frozenset[str] = frozenset(),
) -> list[str]:
    """One line per problem, labelled with where the value came from: the env variable that set
    it (ALURA_BOT_*), else `source` (the TOML file, or "settings" for defaults and overrides)."""
    env = _env_settings(os.environ if environ is None else environ)
    problems = []
    for item in err.errors():
        loc = ".".join(str(p) for p in item["loc"]) or "(root)"
        value = item.get("input")
        shown = "" if isinstance(value, dict) else f" = {value!r}"
        msg = item["msg"]
        if item["type"] == "extra_forbidden":
            msg = "unknown setting (check the spelling against config/alura-bot.example.toml)"
        origin = None
        if item["loc"] and str(item["loc"][0]) not in overridden:
            origin = _env_origin(item["loc"], env, missing=item["type"] == "missing")
        problems.append(f"{origin or source}: {loc}{shown}: {msg}")
    return problems


_SETTINGS_ERROR_FIELD = re.compile(r'field "(?P<field>[^"]+)" from source "(?P<source>\w+)"')


def _shorten(value: str, limit: int = 80) -> str:
    return repr(value) if len(value) <= limit else repr(value[:limit]) + f"… ({len(value)} chars)"


def _format_settings_error(
    err: SettingsError, source: str, environ: Mapping[str, str] | None = None
) -> list[str]:
    """pydantic-settings' own errors (an env value that is not valid JSON for a nested or list
    setting) as one line naming the variable, the value and what is expected."""
    cause = err.__cause__
    reason = f" ({cause})" if isinstance(cause, ValueError) and str(cause) else ""
    match = _SETTINGS_ERROR_FIELD.search(str(err))
    if match is None or match["source"] != "EnvSettingsSource":
        return [f"{source}: {err}{reason}"]
    field = match["field"]
    env = _env_settings(os.environ if environ is None else environ)
    candidates = [(name, value) for name, path, value in env if path[0] == field.lower()]
    culprits = []
    for name, value in candidates:
        try:
            json.loads(value)
        except ValueError:
            culprits.append((name, value))
    annotation = Settings.model_fields[field].annotation if field in Settings.model_fields else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        expected = (
            f"a JSON object, e.g. {ENV_PREFIX}{field.upper()}='{{\"key\": value}}', or one field "
            f"per variable as {ENV_PREFIX}{field.upper()}__<FIELD>=value"
        )
    elif getattr(annotation, "__origin__", None) is list:
        expected = f'a JSON array, e.g. {ENV_PREFIX}{field.upper()}=\'[{{"name": "..."}}]\''
    else:
        expected = "valid JSON"
    if not culprits:
        culprits = candidates
    if not culprits:
        return [f"{ENV_PREFIX}{field.upper()}: {field}: cannot be parsed{reason}"]
    return [
        f"{name}: {field} = {_shorten(value)}: not valid JSON{reason}; expected {expected}"
        for name, value in culprits
    ]


def find_config(explicit: Path | None) -> Path | None:
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError([f"config file {explicit} does not exist or is not a file"])
        return explicit
    for candidate in default_config_paths():
        if candidate.is_file():
            return candidate
    return None


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Settings from file + env + overrides; all problems become one ConfigError listing each."""
    path = find_config(config)
    cls: type[Settings] = type("_BoundSettings", (Settings,), {"_toml_path": path})
    source = str(path) if path else "settings"
    if path is not None:
        import tomllib

        try:
            with path.open("rb") as fh:
                tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
        except UnicodeDecodeError as exc:
            problem = f"{path}: not valid TOML: not UTF-8 text (byte {exc.start})"
            raise ConfigError([problem]) from None
        except OSError as exc:
            raise ConfigError([f"{path}: cannot read the config file: {exc.strerror}"]) from None
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return cls(**given)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, source, overridden=set(given))) from None
    except SettingsError as exc:
        raise ConfigError(_format_settings_error(exc, source)) from None


class KeyFileError(ConfigError):
    """The key file is missing, unreadable, too open, or does not hold a key."""


class NoKeyFound(KeyFileError):
    """No source holds a key at all: fatal in live mode, expected in paper mode."""


def _check_permissions(path: Path) -> None:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            [
                f"private key file {path} is readable by group/other (mode "
                f"{stat.S_IMODE(mode):04o}); refusing to start. Fix: chmod 600 {path}"
            ]
        )


def _parse_key(raw: str, source: Path) -> SecretStr:
    text = raw.strip()
    body = text[2:] if text.lower().startswith("0x") else text
    if len(body) != 64 or any(c not in "0123456789abcdefABCDEF" for c in body):
        raise KeyFileError(
            [f"{source}: does not hold a private key (expected 64 hex digits, optional 0x)"]
        )
    key = "0x" + body.lower()
    from eth_account import Account

    # Decided outside the `except`, so the library's exception (and whatever it says about the
    # key) is neither chained nor kept as context on the error we raise.
    try:
        Account.from_key(key)
        valid = True
    except Exception:
        valid = False
    if not valid:
        raise KeyFileError(
            [
                f"{source}: holds 64 hex digits but not a valid secp256k1 private key (it must be "
                "between 1 and the curve order minus 1); put the wallet's real key there"
            ]
        )
    return SecretStr(key)


def key_sources(settings: Settings) -> list[tuple[Path, bool]]:
    """Candidate key files in priority order, each with whether its permissions are checked."""
    candidates: list[tuple[Path, bool]] = []
    if settings.private_key_file is not None:
        candidates.append((settings.private_key_file, True))
    cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    if cred_dir:
        # systemd makes credentials private to the unit; their mode is its business.
        candidates.append((Path(cred_dir) / SYSTEMD_CREDENTIAL_NAME, False))
    candidates.append((DOCKER_SECRET_PATH, False))
    return candidates


def load_private_key(settings: Settings) -> SecretStr:
    """The EVM private key from the first source that exists; errors never contain key material."""
    tried = []
    for path, check_mode in key_sources(settings):
        if not path.exists():
            if path == settings.private_key_file:
                raise KeyFileError([f"private_key_file {path} does not exist"])
            tried.append(str(path))
            continue
        if check_mode:
            _check_permissions(path)
        try:
            raw = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise KeyFileError(
                [f"cannot read private key file {path}: {type(exc).__name__}"]
            ) from None
        if path == DOCKER_SECRET_PATH and not raw.strip():
            # compose.yaml mounts /dev/null as the secret when none is given: "no key".
            tried.append(f"{path} (empty)")
            continue
        key = _parse_key(raw, path)
        register_secret(key.get_secret_value())
        return key
    raise NoKeyFound(
        [
            "no private key found. Set private_key_file (a mode-0600 file holding the hex key), "
            "or provide a systemd credential 'private-key' or a docker secret. Looked in: "
            + ", ".join(tried)
        ]
    )
