"""Settings: the TOML configuration file, its discovery, strict validation and env overrides.

Discovery order: an explicit path (``--config``) > ``$BAKONG_CONSOLE_CONFIG`` > the XDG config dir
(``$XDG_CONFIG_HOME/bakong-console/config.toml``). No file at all is fine: the defaults run the
embedded SQLite database against the built-in Bakong sandbox.

Every section is a frozen dataclass below; the loader rejects unknown keys and wrong types with a
message naming the file and the key. Secrets may come from the environment instead of the file
(``ENV_OVERRIDES``). ``config.example.toml`` documents every key and a test keeps it in step.

One module on purpose, though long: it is the schema of the one file, section by section in the
file's order, and the loader walks the dataclasses generically, so a key, its type, its default
and its check sit together and can be read against ``config.example.toml`` top to bottom.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from engine.errors import ConfigError, InvalidInput
from engine.hours import WEEKDAYS, OpeningHours, expected_payments_problem
from engine.money import parse_amount
from engine.redaction import MASK, redact_url
from engine.terminals import TERMINAL_RULE, is_terminal_name

__all__ = [
    "ApiSettings",
    "BakongSettings",
    "ConsoleSettings",
    "DatabaseSettings",
    "DisplaySettings",
    "ENV_OVERRIDES",
    "LoggingSettings",
    "MerchantSettings",
    "PaymentSettings",
    "ReconcileSettings",
    "SandboxSettings",
    "SecuritySettings",
    "Settings",
    "SubscriptionSettings",
    "WebSettings",
    "WebhookSettings",
    "config_dir",
    "data_dir",
    "discover_config_path",
    "load_settings",
    "parse_backup_at",
    "parse_config_text",
    "read_config_file",
]

APP_NAME = "bakong-console"
CONFIG_ENV = "BAKONG_CONSOLE_CONFIG"


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / APP_NAME


#: Names the data directory outright (the service unit pins it with this).
DATA_DIR_ENV = "BAKONG_CONSOLE_DATA_DIR"


def data_dir() -> Path:
    """Where the embedded database and its key file live: ``$BAKONG_CONSOLE_DATA_DIR``, else
    ``$XDG_DATA_HOME/bakong-console`` (``~/.local/share/bakong-console``)."""
    explicit = os.environ.get(DATA_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / APP_NAME


@dataclass(frozen=True)
class MerchantSettings:
    """Who receives the money: the fields written into every KHQR we issue."""

    #: "individual" (tag 29) or "merchant" (tag 30).
    type: str = "individual"
    bakong_account_id: str = "sandbox_shop@devb"
    name: str = "Sandbox Shop"
    city: str = "Phnom Penh"
    merchant_id: str = ""
    acquiring_bank: str = ""
    account_information: str = ""
    mobile_number: str = ""
    store_label: str = ""
    terminal_label: str = ""
    merchant_category_code: str = "5999"
    #: The merchant name and city in a second language (KHQR tag 64), e.g. Khmer; payers' pages
    #: and KHQR cards show them. Empty: every KHQR carries the names above only.
    name_alternate: str = ""
    city_alternate: str = ""
    #: The language of the alternate names (tag 64.00), e.g. "km".
    alternate_language: str = "km"


#: The automatic daily request budgets (``bakong.daily_budget = 0``): Bakong production allows
#: about 100 requests per token per day by one report; the sandbox has no quota of its own.
REAL_DAILY_BUDGET = 100
SANDBOX_DAILY_BUDGET = 100_000


@dataclass(frozen=True)
class BakongSettings:
    """How to reach the Bakong Open API and how much of its quota we may spend."""

    #: "sandbox" (built in), "production", "nbc-test" (SIT) or "custom" (base_url required).
    environment: str = "sandbox"
    #: Overrides the environment's base URL (an operator's own relay, a standalone sandbox).
    base_url: str = ""
    #: The Bakong JWT. Prefer the env var BAKONG_CONSOLE_BAKONG_TOKEN.
    token: str = ""
    #: The registered e-mail used to renew the token.
    email: str = ""
    #: Requests we allow ourselves per token per day (midnight Asia/Phnom_Penh resets it);
    #: 0 means automatic: 100 against real Bakong, 100000 against a sandbox.
    daily_budget: int = 0
    timeout_seconds: float = 15.0
    connect_timeout_seconds: float = 5.0
    max_retries: int = 2
    #: Renew the token this many days before it expires (0: never renew on schedule).
    renew_days_before_expiry: int = 14
    #: After an HTML 403 on the bulk endpoint, use single checks for this long before probing again.
    bulk_retry_after_seconds: int = 3600
    #: /api/health says "degraded" once Bakong has answered none of the poller's checks for this
    #: long (5xx, hangs, geo 403...); shorter failures are the poller's ordinary back-off.
    unhealthy_after_seconds: float = 120.0
    #: While polling is paused on a refused token that is still the one in use, ask Bakong once
    #: after this long whether it accepts it again (one metered request), then at doubling
    #: intervals (at most 8 times this); polling resumes on the first yes.
    token_probe_seconds: float = 600.0

    @property
    def effective_daily_budget(self) -> int:
        if self.daily_budget > 0:
            return self.daily_budget
        return SANDBOX_DAILY_BUDGET if self.environment == "sandbox" else REAL_DAILY_BUDGET


@dataclass(frozen=True)
class SandboxSettings:
    """The built-in Bakong sandbox (used when bakong.environment = "sandbox")."""

    #: The token the sandbox accepts; empty means "generate one and keep it in the database".
    token: str = ""
    #: Daily quota the sandbox enforces with errorCode 17 (0: unlimited).
    daily_quota: int = 0
    latency_ms: int = 0
    error_rate: float = 0.0
    bulk_blocked: bool = False
    geo_blocked: bool = False


@dataclass(frozen=True)
class DatabaseSettings:
    """Where the engine keeps its state. Empty url: a SQLite file in the XDG data dir."""

    url: str = ""
    #: Seconds SQLite waits on a locked database before failing.
    sqlite_busy_timeout: float = 10.0
    #: Database connections this process keeps open (a busy moment opens as many again for a
    #: while; on PostgreSQL, status reads open up to as many more of their own, ``point_pool``).
    #: Each request waiting on PostgreSQL holds one: size it to the API's concurrency.
    pool_size: int = 25
    echo: bool = False
    #: Where the nightly backups go (a directory; empty: no nightly backup).
    backup_dir: str = ""
    #: How many nightly backups are kept there (the oldest beyond it are deleted).
    backup_keep: int = 7
    #: When the nightly backup is taken, "HH:MM" Phnom Penh time (the engine's day, as Bakong's).
    backup_at: str = "03:00"


@dataclass(frozen=True)
class SecuritySettings:
    """Encryption at rest (AES-256-GCM) of webhook secrets, the Bakong token and payer accounts."""

    #: The active data key as "KEY_ID:BASE64_32_BYTES". Prefer env BAKONG_CONSOLE_DATA_KEY.
    data_key: str = ""
    #: A file holding the active data key in the same form (created for the embedded default).
    data_key_file: str = ""
    #: Older keys ("KEY_ID:BASE64") kept to read data written before a rotation.
    previous_data_keys: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PaymentSettings:
    """Payment lifetime and the poller's schedule."""

    default_timeout_minutes: int = 15
    #: Keep checking a TIMEOUT payment this long; a late find becomes PAID_LATE.
    late_watch_minutes: int = 60
    #: Check intervals (seconds) by age of the QR: dense first, sparser later.
    dense_interval_seconds: float = 5.0
    dense_window_seconds: float = 300.0
    sparse_interval_seconds: float = 30.0
    late_interval_seconds: float = 300.0
    #: When the day's budget runs short, the checks a payment can afford are spread evenly over
    #: this many seconds after its QR is shown (when most payers pay).
    scarce_window_seconds: float = 120.0
    #: Requests kept back from the schedule for operators' "check now" and "customer says paid".
    reserve_requests: int = 3
    #: Jitter applied to each interval, as a fraction (0.1 = +/-10%).
    jitter: float = 0.1
    #: How often the poller wakes up to look for due payments.
    tick_seconds: float = 1.0
    #: Default and maximum wait for `monitor`.
    monitor_timeout_seconds: float = 300.0
    currency: str = "KHR"


@dataclass(frozen=True)
class WebhookSettings:
    """Delivery of signed webhooks to the main backend."""

    timeout_seconds: float = 15.0
    #: How long a rotated-out secret keeps signing beside the new one.
    rotation_window_hours: float = 24.0
    #: Disable an endpoint that has failed continuously this long.
    disable_after_days: float = 5.0
    jitter: float = 0.2
    concurrency: int = 16
    tick_seconds: float = 0.5


@dataclass(frozen=True)
class PlanSeed:
    """A plan kept in step with the config (``[[subscriptions.plans]]``): added when missing,
    updated when its name, price, cycle or trial differ. Never archived or deleted from here."""

    code: str = ""
    name: str = ""
    #: Price per cycle in major units, as a string: "9.99" (USD), "40000" (KHR).
    price: str = ""
    currency: str = "USD"
    #: 0: subscriptions.cycle_days.
    cycle_days: int = 0
    trial_days: int = 0


@dataclass(frozen=True)
class SubscriptionSettings:
    """Billing cycles, renewals and grace."""

    cycle_days: int = 30
    renewal_lead_days: int = 3
    grace_days: int = 7
    #: Hours between reminder events while a subscription is past due.
    reminder_interval_hours: int = 48
    #: How long the first payment of a new subscription may stay unpaid.
    first_payment_window_hours: int = 24
    #: Minutes a renewal/upgrade KHQR stays valid.
    payment_timeout_minutes: int = 1440
    tick_seconds: float = 30.0
    #: Ask Bakong for a deep link for every subscription KHQR (one metered request each).
    deep_links: bool = True
    #: Plans seeded from the config when the engine opens (see PlanSeed).
    plans: list[PlanSeed] = field(default_factory=list)


@dataclass(frozen=True)
class ApiSettings:
    """The HTTP API served by `bakong-console serve`."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8080
    rate_limit_per_minute: int = 100
    auth_failures_before_block: int = 10
    block_seconds: int = 900
    #: "memory" (this process), "redis" (shared through ``redis_url``) or a redis URL directly.
    rate_limit_backend: str = "memory"
    #: The Redis that several API instances share their limits and IP blocks through.
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: Prefix of every Redis key the API writes (several deployments can share one Redis).
    redis_key_prefix: str = "bakong-console:"
    max_body_bytes: int = 65536
    monitor_max_seconds: float = 60.0
    #: Trust X-Forwarded-For from these proxy addresses.
    trusted_proxies: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ConsoleSettings:
    """The Textual operator console."""

    cashier: str = ""
    #: This console's terminal name (its counter), recorded on every payment it makes and used by
    #: the customer display's address; empty means the machine's host name.
    terminal: str = ""
    theme: str = "textual-dark"
    #: Binding id -> key(s), e.g. { "payment.check_now" = "k" }.
    bindings: dict[str, str] = field(default_factory=dict)
    bell_on_paid: bool = True
    #: Where `v` saves a payment's KHQR card (PNG); empty means `cards/` in the data directory.
    cards_dir: str = ""


@dataclass(frozen=True)
class WebSettings:
    """The payer's pages (the hosted checkout at /pay/{token}): where the console serves them and
    how a checkout link behaves. `serve` serves them beside the API (api.host:api.port)."""

    #: The console serves the payer's pages itself on host:port while it runs.
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8081
    #: The address payers reach the pages at (e.g. "https://pay.example.com"): with it the API
    #: answers an absolute checkout_url; without it, a path (/pay/...) for the backend to prefix.
    public_url: str = ""
    #: How long a checkout link keeps showing the result after its payment ended (then 410).
    checkout_grace_seconds: float = 600.0
    #: "I have paid" on a checkout page is acted on at most once per this many seconds per payment.
    paid_check_interval_seconds: float = 10.0
    #: How long the page shows PAID / expired / cancelled before going to success_url / cancel_url.
    redirect_seconds: float = 3.0
    #: Ask Bakong for a deep link (one metered request) for each checkout; phones get a bank-app button.
    deep_links: bool = True


@dataclass(frozen=True)
class DisplaySettings:
    """What the payer reads, and the customer display at the counter (/display/{terminal}):
    where the console serves it and how it is paired. `serve` serves it beside the API."""

    #: The language payers' pages open in: "km" (Khmer) or "en" (English); the page can switch.
    language: str = "km"
    #: The console serves its terminal's customer display itself on host:port while it runs.
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8082
    #: The address displays reach it at (e.g. "http://192.168.1.20:8082"), shown with a pairing
    #: code; empty: the console's own display server (host:port).
    public_url: str = ""
    #: How long a pairing code can be used, and how many wrong tries end it.
    pairing_code_seconds: float = 300.0
    pairing_attempts: int = 5
    #: How long the display shows PAID (large, with the amount) before it idles again.
    paid_seconds: float = 8.0


@dataclass(frozen=True)
class HoursSettings:
    """The shop's opening hours per weekday, Phnom Penh time (see ``engine.hours``): "08:00-20:00",
    several ranges separated by commas, "closed", or "" (not declared)."""

    mon: str = ""
    tue: str = ""
    wed: str = ""
    thu: str = ""
    fri: str = ""
    sat: str = ""
    sun: str = ""
    #: About how many KHQR payments a normal open day brings (0: not given). The budget forecast
    #: starts from it on a day with no open day before it to go by (the first one), and the day's
    #: own payments overrule it as they come.
    expected_payments_per_day: int = 0

    def opening_hours(self) -> OpeningHours:
        """The parsed week (validated when the settings load)."""
        return OpeningHours.parse({day: getattr(self, day) for day in WEEKDAYS})


@dataclass(frozen=True)
class ReconcileSettings:
    """The nightly reconciliation of paid payments with Bakong (see ``engine.services.reconciliation``)."""

    #: Off: only ``bakong-console reconcile`` re-checks payments.
    enabled: bool = True
    #: When the night's pass starts, "HH:MM" Phnom Penh time.
    at: str = "02:00"
    #: Its requests are spread evenly over this many minutes after ``at``.
    spread_minutes: int = 240


@dataclass(frozen=True)
class DaemonSettings:
    """The engine's process: leases, heartbeat and shutdown."""

    #: A worker's lease lasts this long without renewal; another process takes over after it.
    lease_seconds: float = 30.0
    #: How often `serve` records and logs its heartbeat.
    heartbeat_seconds: float = 30.0
    #: On SIGINT/SIGTERM, wait at most this long for the batch in hand before exiting.
    stop_timeout_seconds: float = 10.0


@dataclass(frozen=True)
class LoggingSettings:
    level: str = "INFO"
    #: "text" or "json".
    format: str = "text"


@dataclass(frozen=True)
class Settings:
    """The whole configuration. ``source`` names the file it came from (None: defaults only)."""

    merchant: MerchantSettings = field(default_factory=MerchantSettings)
    bakong: BakongSettings = field(default_factory=BakongSettings)
    sandbox: SandboxSettings = field(default_factory=SandboxSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    payments: PaymentSettings = field(default_factory=PaymentSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    subscriptions: SubscriptionSettings = field(default_factory=SubscriptionSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    console: ConsoleSettings = field(default_factory=ConsoleSettings)
    web: WebSettings = field(default_factory=WebSettings)
    display: DisplaySettings = field(default_factory=DisplaySettings)
    hours: HoursSettings = field(default_factory=HoursSettings)
    reconcile: ReconcileSettings = field(default_factory=ReconcileSettings)
    daemon: DaemonSettings = field(default_factory=DaemonSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    source: Path | None = field(default=None, compare=False)

    @property
    def is_sandbox(self) -> bool:
        return self.bakong.environment == "sandbox"

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL in use: the configured one, else the embedded SQLite file."""
        if self.database.url:
            return self.database.url
        return f"sqlite+aiosqlite:///{data_dir() / 'bakong-console.db'}"

    @property
    def uses_embedded_database(self) -> bool:
        return not self.database.url

    def redacted(self) -> dict[str, Any]:
        """The settings as plain data with every secret replaced by '***' (safe to print): secret
        keys whole, URLs (database, Redis, a Bakong relay) only their passwords."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "source":
                continue
            section = dataclasses.asdict(getattr(self, f.name))
            for key in list(section):
                if (f.name, key) in _SECRET_KEYS and section[key]:
                    section[key] = MASK
                elif (f.name, key) in _URL_KEYS:
                    section[key] = redact_url(section[key])
            out[f.name] = section
        return out


#: Environment variables that override (or supply) a key: (section, key) <- VAR.
ENV_OVERRIDES: dict[tuple[str, str], str] = {
    ("bakong", "token"): "BAKONG_CONSOLE_BAKONG_TOKEN",
    ("bakong", "email"): "BAKONG_CONSOLE_BAKONG_EMAIL",
    ("bakong", "base_url"): "BAKONG_CONSOLE_BAKONG_BASE_URL",
    ("database", "url"): "BAKONG_CONSOLE_DATABASE_URL",
    ("security", "data_key"): "BAKONG_CONSOLE_DATA_KEY",
    ("sandbox", "token"): "BAKONG_CONSOLE_SANDBOX_TOKEN",
    ("api", "rate_limit_backend"): "BAKONG_CONSOLE_RATE_LIMIT_BACKEND",
    ("api", "redis_url"): "BAKONG_CONSOLE_REDIS_URL",
}

_SECRET_KEYS = {("bakong", "token"), ("security", "data_key"), ("sandbox", "token"),
                ("security", "previous_data_keys")}

#: Keys holding a URL that may carry a password: printed with the password hidden.
_URL_KEYS = {("database", "url"), ("api", "redis_url"), ("api", "rate_limit_backend"),
             ("bakong", "base_url"), ("web", "public_url")}

_CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("merchant", "type"): ("individual", "merchant"),
    ("bakong", "environment"): ("sandbox", "production", "nbc-test", "custom"),
    ("logging", "level"): ("DEBUG", "INFO", "WARNING", "ERROR"),
    ("logging", "format"): ("text", "json"),
    ("payments", "currency"): ("KHR", "USD"),
    ("display", "language"): ("km", "en"),
}


def parse_backup_at(text: str) -> tuple[int, int] | None:
    """``"03:00"`` -> (3, 0); None when it is not a time of day."""
    hours, sep, minutes = text.strip().partition(":")
    if not sep or not (hours.isdigit() and minutes.isdigit()) or len(minutes) != 2 or len(hours) > 2:
        return None
    h, m = int(hours), int(minutes)
    return (h, m) if h < 24 and m < 60 else None


def discover_config_path(explicit: str | Path | None = None) -> Path | None:
    """The config file to read, or None when there is none (defaults apply)."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        return path
    env = os.environ.get(CONFIG_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found (from ${CONFIG_ENV})")
        return path
    default = config_dir() / "config.toml"
    return default if default.is_file() else None


def load_settings(
    explicit: str | Path | None = None, *, environ: typing.Mapping[str, str] | None = None
) -> Settings:
    """Discover, read and validate the configuration, then apply env overrides."""
    env = os.environ if environ is None else environ
    path = discover_config_path(explicit)
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    origin = str(path) if path else "defaults"
    for (section, key), var in ENV_OVERRIDES.items():
        value = env.get(var)
        if value:
            raw.setdefault(section, {})
            if not isinstance(raw[section], dict):
                raise ConfigError(f"{origin}: [{section}] must be a table")
            raw[section][key] = value
    settings = _build(Settings, raw, origin, prefix="")
    settings = dataclasses.replace(settings, source=path)
    _check_consistency(settings, origin)
    return settings


def read_config_file(path: str | Path) -> Settings:
    """What one file says by itself: no environment overrides and no cross-key checks.

    Setup reads the current file with it to offer its values as defaults (a production file whose
    token lives in the environment still reads, and no env secret is copied into the file).
    """
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    return dataclasses.replace(parse_config_text(text, origin=str(path), check=False), source=path)


def parse_config_text(text: str, *, origin: str = "config", check: bool = True) -> Settings:
    """Settings from TOML text, validated as ``load_settings`` validates a file (without the
    environment); ``check=False`` skips the checks across keys."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: not valid TOML: {exc}") from None
    settings = _build(Settings, raw, origin, prefix="")
    if check:
        _check_consistency(settings, origin)
    return settings


def _build(cls: type, raw: Any, origin: str, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: [{prefix}] must be a table")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        where = f"[{prefix}] " if prefix else ""
        raise ConfigError(f"{origin}: {where}unknown key '{unknown[0]}'")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            values[name] = _build(hint, value, origin, prefix=name)
        else:
            values[name] = _coerce(hint, value, origin, f"{prefix}.{name}" if prefix else name)
            choices = _CHOICES.get((prefix, name))
            if choices and values[name] not in choices:
                raise ConfigError(
                    f"{origin}: {prefix}.{name}: must be one of {', '.join(choices)}, "
                    f"got {values[name]!r}"
                )
    return cls(**values)


def _coerce(hint: Any, value: Any, origin: str, key: str) -> Any:
    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{origin}: {key}: expected {expected}, got {type(value).__name__} {value!r}")

    origin_type = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, origin, key)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            return value.lower() in ("true", "1")
        raise bad("a boolean")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 0:
                raise ConfigError(f"{origin}: {key}: must not be negative, got {value}")
            return value
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        raise bad("an integer")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if value < 0:
                raise ConfigError(f"{origin}: {key}: must not be negative, got {value}")
            return float(value)
        raise bad("a number")
    if hint is str:
        if isinstance(value, str):
            return value
        raise bad("a string")
    if origin_type is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise bad("a list")
        return [_coerce(item, v, origin, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin_type is dict:
        _, item = typing.get_args(hint)
        if not isinstance(value, dict):
            raise bad("a table")
        return {str(k): _coerce(item, v, origin, f"{key}.{k}") for k, v in value.items()}
    if origin_type in (types.UnionType, typing.Union):
        raise ConfigError(f"{origin}: {key}: unsupported optional type")  # pragma: no cover
    raise ConfigError(f"{origin}: {key}: unsupported type {hint!r}")  # pragma: no cover


def _check_consistency(settings: Settings, origin: str) -> None:
    b = settings.bakong
    if b.environment == "custom" and not b.base_url:
        raise ConfigError(f"{origin}: bakong.base_url: required when bakong.environment is 'custom'")
    if b.environment in ("production", "nbc-test") and not b.token:
        raise ConfigError(
            f"{origin}: bakong.token: required for the {b.environment} environment "
            "(or set BAKONG_CONSOLE_BAKONG_TOKEN)"
        )
    if b.daily_budget < 0:
        raise ConfigError(f"{origin}: bakong.daily_budget: must be 0 (automatic) or more")
    if b.token_probe_seconds <= 0:
        raise ConfigError(f"{origin}: bakong.token_probe_seconds: must be greater than 0")
    if b.unhealthy_after_seconds <= 0:
        raise ConfigError(f"{origin}: bakong.unhealthy_after_seconds: must be greater than 0")
    p = settings.payments
    for key in ("dense_interval_seconds", "sparse_interval_seconds", "late_interval_seconds", "scarce_window_seconds", "tick_seconds"):
        if getattr(p, key) <= 0:
            raise ConfigError(f"{origin}: payments.{key}: must be greater than 0")
    if not 0 <= p.jitter < 1:
        raise ConfigError(f"{origin}: payments.jitter: must be at least 0 and below 1")
    d = settings.daemon
    for key in ("lease_seconds", "heartbeat_seconds", "stop_timeout_seconds"):
        if getattr(d, key) <= 0:
            raise ConfigError(f"{origin}: daemon.{key}: must be greater than 0")
    if settings.payments.default_timeout_minutes < 1:
        raise ConfigError(f"{origin}: payments.default_timeout_minutes: must be at least 1")
    if settings.subscriptions.cycle_days < 1:
        raise ConfigError(f"{origin}: subscriptions.cycle_days: must be at least 1")
    seen: set[str] = set()
    for i, plan in enumerate(settings.subscriptions.plans):
        where = f"{origin}: subscriptions.plans[{i}]"
        if not plan.code.strip() or not plan.name.strip() or not plan.price.strip():
            raise ConfigError(f"{where}: code, name and price are required")
        if plan.code.strip() in seen:
            raise ConfigError(f"{where}: plan code {plan.code!r} appears twice")
        seen.add(plan.code.strip())
        try:
            parse_amount(plan.price, plan.currency)
        except InvalidInput as exc:
            raise ConfigError(f"{where}.price: {exc.message}") from None
    m = settings.merchant
    if m.type == "merchant" and (not m.merchant_id or not m.acquiring_bank):
        raise ConfigError(
            f"{origin}: merchant.merchant_id and merchant.acquiring_bank: required when merchant.type is 'merchant'"
        )
    backend = settings.api.rate_limit_backend
    if backend not in ("memory", "redis") and not backend.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"{origin}: api.rate_limit_backend: must be 'memory', 'redis' or a redis:// URL, got {redact_url(backend)!r}")
    if backend == "redis" and not settings.api.redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"{origin}: api.redis_url: must be a redis://, rediss:// or unix:// URL")
    try:
        settings.hours.opening_hours()
    except InvalidInput as exc:
        raise ConfigError(f"{origin}: hours.{exc.message}") from None
    problem = expected_payments_problem(settings.hours.expected_payments_per_day, allow_none=True)
    if problem:
        raise ConfigError(f"{origin}: hours.expected_payments_per_day: {problem}")
    terminal = settings.console.terminal
    if terminal and not is_terminal_name(terminal):
        raise ConfigError(f"{origin}: console.terminal: {TERMINAL_RULE}, got {terminal!r}")
    public_url = settings.web.public_url
    if public_url:
        parts = urlsplit(public_url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment or parts.username:
            raise ConfigError(f"{origin}: web.public_url: must be an http:// or https:// address like https://pay.example.com, got {public_url!r}")
    if settings.web.port == 0 or settings.web.port > 65535:
        raise ConfigError(f"{origin}: web.port: must be from 1 to 65535")
    display = settings.display
    if display.port == 0 or display.port > 65535:
        raise ConfigError(f"{origin}: display.port: must be from 1 to 65535")
    if display.public_url:
        parts = urlsplit(display.public_url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment or parts.username:
            raise ConfigError(f"{origin}: display.public_url: must be an http:// or https:// address like http://192.168.1.20:8082, got {display.public_url!r}")
    if display.pairing_code_seconds < 10:
        raise ConfigError(f"{origin}: display.pairing_code_seconds: must be at least 10")
    if not 1 <= display.pairing_attempts <= 20:
        raise ConfigError(f"{origin}: display.pairing_attempts: must be from 1 to 20")
    if display.paid_seconds <= 0:
        raise ConfigError(f"{origin}: display.paid_seconds: must be greater than 0")
    database = settings.database
    if not 1 <= database.pool_size <= 500:
        raise ConfigError(f"{origin}: database.pool_size: must be from 1 to 500")
    if database.backup_keep < 1:
        raise ConfigError(f"{origin}: database.backup_keep: must be at least 1 (the backup just taken is kept)")
    if parse_backup_at(settings.reconcile.at) is None:
        raise ConfigError(f"{origin}: reconcile.at: must be a time of day as HH:MM (00:00 to 23:59), got {settings.reconcile.at!r}")
    if not 1 <= settings.reconcile.spread_minutes <= 1440:
        raise ConfigError(f"{origin}: reconcile.spread_minutes: must be from 1 to 1440")
    if parse_backup_at(database.backup_at) is None:
        raise ConfigError(f"{origin}: database.backup_at: must be a time of day as HH:MM (00:00 to 23:59), got {database.backup_at!r}")
    url = settings.database.url
    if url and not (url.startswith("sqlite") or url.startswith("postgresql")):
        raise ConfigError(f"{origin}: database.url: must be a sqlite+aiosqlite:// or postgresql+asyncpg:// URL")
