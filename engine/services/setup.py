"""Going live: one run of setup, how each answer is checked, and writing the result.

Both faces of setup (the console's setup screen and the plain prompts of ``bakong-console
setup``, or its flags) walk ``SETUP_FIELDS`` (the questions, ``setup_fields``) and ask a ``SetupSession`` about every answer, so a
rule is written once:

- ``check(name, answers)``: the answer's own rules, at once (KHQR field rules through
  ``engine.merchant``, opening hours through ``engine.hours``, the token's expiry read locally);
- ``check_account``, ``check_database``: what only a request can tell (Bakong's
  ``check_bakong_account``; a PostgreSQL URL connected to on the spot, ``setup_database``);
- ``save(answers)``: everything again, then the data key file (generated when there is none, 0600)
  and the config file (0600, atomic, refused over an existing one without ``force``); an empty
  PostgreSQL database is migrated. Nothing is written while any answer is wrong.
- ``diagnose(settings)``: Bakong's one-line verdict on the result, with what to do about it.

Answers are text, keyed by field name (``"merchant.name"``, ``"hours.mon"``); secrets are the
secret itself (a face shows "keep current" for the value it was handed as the default).

Why one module of about 440 lines: it is one class, the session, whose checks and whose save
share its state (the config path, the defaults it was handed, the Bakong client it makes) and
each other (``save`` and ``validate`` run every ``check``). What stands apart already lives
apart: the questions in ``setup_fields``, the database answer in ``setup_database``, the file
writing in ``engine.config_file``.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from engine.bakong.budget import InMemoryRequestLedger
from engine.bakong.client import BakongClient
from engine.bakong.environments import BASE_URLS
from engine.bakong.models import AccountInfo, Diagnosis
from engine.bakong.token import BakongToken, TokenInfo
from engine.clock import PHNOM_PENH, Clock, SystemClock
from engine.config import ENV_OVERRIDES, MerchantSettings, Settings, load_settings, parse_config_text, read_config_file
from engine.config_file import config_target_path, render_config, write_config_file, write_private_file
from engine.crypto import default_key_file, generate_key_spec
from engine.db.migrate import head_revision
from engine.errors import (
    AccountNotFound,
    BakongError,
    ConfigError,
    InvalidInput,
    StorageError,
)
from engine.hours import WEEKDAYS, format_day, parse_day, parse_expected_payments
from engine.merchant import merchant_field_errors, merchant_preview
from engine.khqr import KHQRError, KHQRResult
from engine.services.checks import DIAGNOSIS_ADVICE
from engine.services.setup_database import (
    DatabaseProbe,
    check_data_key_file,
    check_database_answer,
    data_key_problem,
    database_url,
    prepare_database,
    probe_database,
)
from engine.services.setup_fields import ENVIRONMENTS, FIELDS, SETUP_FIELDS, FieldCheck, SetupField, SetupResult

__all__ = [
    "DatabaseProbe",
    "FieldCheck",
    "SETUP_FIELDS",
    "SetupField",
    "SetupResult",
    "SetupSession",
    "read_token_file",
    "setup_reason",
]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
#: Bakong's renew_token refuses longer addresses.
EMAIL_MAX = 30


def _declares_hours(text: str) -> bool:
    """Whether a weekday's answer declares open hours (a wrong one gets its own message)."""
    try:
        return bool(parse_day(text))
    except InvalidInput:
        return False


def setup_reason(explicit: str | Path | None = None, *, environ: Mapping[str, str] | None = None) -> str | None:
    """Why the console should open setup before anything else, or None.

    The trigger: a config file was named (``--config`` or ``$BAKONG_CONSOLE_CONFIG``) that does
    not exist yet, or the config file is for real Bakong (production, nbc-test or custom) but has
    no token (neither in the file nor the environment) or still names the sandbox's merchant
    account. Running with no config at all stays the one-command sandbox.
    """
    env = os.environ if environ is None else environ
    named = explicit or env.get("BAKONG_CONSOLE_CONFIG")
    target = config_target_path(explicit, environ=env)
    if not target.exists():
        return f"no config file at {target}" if named else None
    try:
        current = read_config_file(target)
    except ConfigError:
        return None  # a broken file gets its one-line error, not a form
    if current.is_sandbox:
        return None
    if not current.bakong.token and not env.get(ENV_OVERRIDES[("bakong", "token")]):
        return f"{target} is for {current.bakong.environment} but has no Bakong token"
    if current.merchant.bakong_account_id == MerchantSettings().bakong_account_id:
        return f"{target} is for {current.bakong.environment} but still names the sandbox's merchant account"
    return None


class SetupSession:
    """One run of setup, writing to ``path``; ``current`` is what the file there says now."""

    def __init__(
        self,
        path: Path,
        *,
        force: bool = False,
        environ: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.path = path.expanduser()
        self.force = force
        self.environ = os.environ if environ is None else environ
        self.clock = clock or SystemClock()
        self.transport = transport
        self.current: Settings | None = None
        if self.path.exists():
            try:
                self.current = read_config_file(self.path)
            except ConfigError:
                if not force:
                    raise
                # Replacing a file that does not read: start from the defaults, not from it.
        self._database_probes: dict[str, DatabaseProbe] = {}
        #: Bakong's answer per (base URL, token, account): a second look costs no second request.
        self._accounts: dict[tuple[str, str, str], FieldCheck] = {}

    @classmethod
    def for_config(cls, explicit: str | Path | None = None, **kwargs: object) -> SetupSession:
        environ = kwargs.get("environ")
        return cls(config_target_path(explicit, environ=environ), **kwargs)  # type: ignore[arg-type]

    def refuse_overwrite(self) -> None:
        """Stop before any question when the file exists and ``force`` was not given."""
        if self.path.exists() and not self.force:
            raise ConfigError(f"{self.path} exists: run `bakong-console setup --force` to change it (its values are offered as defaults)")

    # --- defaults -------------------------------------------------------------------------------

    def defaults(self) -> dict[str, str]:
        """Every answer as the current file gives it (or a production-minded default)."""
        cur = self.current or Settings()
        sandbox_merchant = MerchantSettings()
        out: dict[str, str] = {
            "environment": cur.bakong.environment if cur.bakong.environment in ENVIRONMENTS else "production",
            "base_url": cur.bakong.base_url,
            "token": cur.bakong.token or self.environ.get(ENV_OVERRIDES[("bakong", "token")], ""),
            "email": cur.bakong.email,
            "currency": cur.payments.currency,
            "database": "sqlite" if not cur.database.url else cur.database.url,
            "data_key_file": cur.security.data_key_file or str(default_key_file()),
        }
        for key in dataclasses.asdict(cur.merchant):
            value = str(getattr(cur.merchant, key))
            # The sandbox's own name and account are no default for going live.
            if key in ("name", "bakong_account_id") and value == getattr(sandbox_merchant, key):
                value = ""
            out[f"merchant.{key}"] = value
        for day in WEEKDAYS:
            out[f"hours.{day}"] = getattr(cur.hours, day)
        expected = cur.hours.expected_payments_per_day
        out["hours.expected_payments_per_day"] = str(expected) if expected else ""
        return out

    @property
    def keeps_inline_data_key(self) -> bool:
        """The current file holds the data key itself (security.data_key): setup keeps it there."""
        return bool(self.current and self.current.security.data_key)

    def applicable(self, answers: Mapping[str, str]) -> list[SetupField]:
        fields = [f for f in SETUP_FIELDS if f.applies(answers)]
        if self.keeps_inline_data_key:
            fields = [f for f in fields if f.name != "data_key_file"]
        return fields

    # --- checks -----------------------------------------------------------------------------------

    def check(self, name: str, answers: Mapping[str, str]) -> FieldCheck:
        """The rules of one answer (no request): its kept value, or why not."""
        value = str(answers.get(name, "")).strip()
        field = FIELDS.get(name)
        if field is None:
            raise InvalidInput(f"setup has no question {name!r}", field=name)
        if field.choices:
            match = next((c for c in field.choices if c.lower() == value.lower()), None)
            if match is None:
                return FieldCheck(value, f"must be one of {', '.join(field.choices)}")
            value = match
        if name.startswith("merchant."):
            return self._check_merchant(name, value, answers)
        if name == "hours.expected_payments_per_day":
            return self._check_expected_payments(value, answers)
        if name.startswith("hours."):
            try:
                return FieldCheck(format_day(parse_day(value)))
            except InvalidInput as exc:
                return FieldCheck(value, exc.message)
        checker = getattr(self, f"_check_{name}", None)
        return checker(value, answers) if checker else FieldCheck(value)

    def merchant_of(self, answers: Mapping[str, str]) -> MerchantSettings:
        values = {}
        for key in dataclasses.asdict(MerchantSettings()):
            raw = str(answers.get(f"merchant.{key}", "")).strip()
            values[key] = raw
        values["type"] = values["type"] or "individual"
        if values["type"] == "merchant":
            values["account_information"] = ""
        else:
            values["merchant_id"] = ""
        return MerchantSettings(**values)

    def _check_merchant(self, name: str, value: str, answers: Mapping[str, str]) -> FieldCheck:
        key = name.removeprefix("merchant.")
        merchant = dataclasses.replace(self.merchant_of(answers), **{key: value})
        error = merchant_field_errors(merchant).get(key)
        if error is None and key in ("merchant_id", "acquiring_bank") and merchant.type == "merchant" and not value:
            error = "required for a merchant (KHQR tag 30)"
        return FieldCheck(value, error)

    def _check_environment(self, value: str, answers: Mapping[str, str]) -> FieldCheck:
        return FieldCheck(value, note=BASE_URLS.get(value, ""))

    def _check_base_url(self, value: str, answers: Mapping[str, str]) -> FieldCheck:
        env = str(answers.get("environment", "production")).strip().lower()
        if not value:
            if env == "custom":
                return FieldCheck(value, "required for the custom environment: your relay's or sandbox's https:// URL")
            host = BASE_URLS.get(env)
            return FieldCheck(value, note=f"Bakong's own host: {host}" if host else "")
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return FieldCheck(value, "write a URL such as https://relay.example.com")
        if parts.query or parts.fragment:
            return FieldCheck(value, "a base URL has no ?query or #fragment")
        return FieldCheck(value.rstrip("/"))

    def token_info(self, token: str) -> TokenInfo:
        return BakongToken(token).info(self.clock.now())

    def _check_token(self, value: str, answers: Mapping[str, str]) -> FieldCheck:
        if not value:
            return FieldCheck(value, "required: the Bakong token from https://api-bakong.nbc.gov.kh")
        if any(c.isspace() for c in value):
            return FieldCheck(value, "a token has no spaces or line breaks")
        info = self.token_info(value)
        if info.expires_at is None:
            return FieldCheck(value, note=f"{info.fingerprint}: expiry unknown (not a JWT; a relay's own token?)")
        expires = info.expires_at.astimezone(PHNOM_PENH)
        if info.expired:
            return FieldCheck(value, f"this token expired on {expires:%Y-%m-%d %H:%M}: get a new one at https://api-bakong.nbc.gov.kh")
        return FieldCheck(value, note=f"{info.fingerprint}: expires {expires:%Y-%m-%d %H:%M} Phnom Penh ({info.days_left} days)")

    def _check_email(self, value: str, answers: Mapping[str, str]) -> FieldCheck:
        if not value:
            return FieldCheck(value, note="none: the token is not renewed automatically (it lasts 90 days)")
        if len(value) > EMAIL_MAX:
            return FieldCheck(value, f"Bakong accepts e-mail addresses of at most {EMAIL_MAX} characters")
        if not _EMAIL.match(value):
            return FieldCheck(value, "not an e-mail address")
        return FieldCheck(value, note="the token is renewed with it before it expires")

    def _check_currency(self, value: str, answers: Mapping[str, str]) -> FieldCheck:
        return FieldCheck(value)

    def _check_expected_payments(self, value: str, answers: Mapping[str, str]) -> FieldCheck:
        try:
            count = parse_expected_payments(value)
        except InvalidInput as exc:
            return FieldCheck(value, exc.message)
        if not count:
            return FieldCheck("", note="not known: the first day's checks stay cheap until its own payments show a pace")
        if not any(_declares_hours(str(answers.get(f"hours.{day}", ""))) for day in WEEKDAYS):
            return FieldCheck(str(count), note="used on the days with opening hours: declare them above")
        return FieldCheck(str(count), note=f"the first day is planned for about {count:,}; its own payments correct that as they come")

    def _check_database(self, value: str, answers: Mapping[str, str]) -> FieldCheck:
        return check_database_answer(value)

    def _check_data_key_file(self, value: str, answers: Mapping[str, str]) -> FieldCheck:
        return check_data_key_file(value)

    # --- checks that ask someone -------------------------------------------------------------------

    def _bakong_client(self, answers: Mapping[str, str]) -> BakongClient:
        env = str(answers.get("environment", "production")).strip() or "production"
        base = str(answers.get("base_url", "")).strip().rstrip("/") or BASE_URLS.get(env, "")
        return BakongClient(
            base_url=base,
            clock=self.clock,
            ledger=InMemoryRequestLedger(),
            token=str(answers.get("token", "")).strip() or None,
            environment=env,
            transport=self.transport,
            max_retries=0,
        )

    async def check_account(self, answers: Mapping[str, str]) -> FieldCheck:
        """The Bakong account, asked of Bakong itself (one metered request)."""
        local = self.check("merchant.bakong_account_id", answers)
        if not local.ok:
            return local
        account = local.value
        client = self._bakong_client(answers)
        key = (client.base_url, client.fingerprint, account)
        cached = self._accounts.get(key)
        if cached is not None:
            await client.aclose()
            return cached
        try:
            async with client:
                info: AccountInfo = await client.check_bakong_account(account)
        except AccountNotFound:
            found = FieldCheck(account, f"Bakong has no account {account}: check it in your bank app")
        except BakongError as exc:
            # Not cached: the next look may get through (a relay set meanwhile, the network back).
            return FieldCheck(account, note=f"not checked with Bakong: {exc.message}", warning=True)
        else:
            if not info.can_take_payments:
                why = "frozen" if info.frozen else f"status {info.account_status}" if info.account_status else "it cannot receive"
                found = FieldCheck(account, f"Bakong says {account} cannot receive payments ({why})")
            else:
                holder = f" ({info.full_name})" if info.full_name else ""
                found = FieldCheck(account, note=f"Bakong: {account}{holder} can receive payments")
        self._accounts[key] = found
        return found

    async def probe_database(self, value: str) -> DatabaseProbe:
        """Connect to the database now (PostgreSQL) and read its schema revision (kept for ``save``)."""
        probe = await probe_database(value)
        if probe.url:
            self._database_probes[probe.url] = probe
        return probe

    async def check_database(self, answers: Mapping[str, str]) -> FieldCheck:
        local = self.check("database", answers)
        if not local.ok or local.value == "sqlite" or local.value.startswith("sqlite"):
            return local
        try:
            probe = await self.probe_database(local.value)
        except StorageError as exc:
            return FieldCheck(local.value, f"cannot connect: {exc.message}")
        head = head_revision()
        state = (
            "empty: it is migrated when setup saves" if probe.revision is None
            else "schema up to date" if probe.revision == head
            else f"schema at {probe.revision}, behind {head}: run `bakong-console db upgrade` after setup"
        )  # fmt: skip
        return FieldCheck(local.value, note=f"{probe.describe} answers; {state}")

    def preview(self, answers: Mapping[str, str]) -> KHQRResult | None:
        """A static KHQR of the merchant as answered so far (None while a field breaks a rule)."""
        merchant = self.merchant_of(answers)
        currency = str(answers.get("currency", "KHR")).strip().upper() or "KHR"
        try:
            return merchant_preview(merchant, currency if currency in ("KHR", "USD") else "KHR", now_ms=int(self.clock.now().timestamp() * 1000))
        except KHQRError:
            return None

    # --- the result ------------------------------------------------------------------------------

    def settings_for(self, answers: Mapping[str, str]) -> Settings:
        """The settings the answers make: the current file's other keys kept as they are."""
        base = self.current or Settings()
        kept = {name: self.check(name, answers).value for name in FIELDS if name in answers}
        url = database_url(kept.get("database", "sqlite"))
        security = base.security
        if not self.keeps_inline_data_key:
            security = dataclasses.replace(security, data_key_file=kept.get("data_key_file", security.data_key_file))
        return dataclasses.replace(
            base,
            merchant=self.merchant_of(kept),
            bakong=dataclasses.replace(
                base.bakong,
                environment=kept.get("environment", "production"),
                base_url=kept.get("base_url", ""),
                token=kept.get("token", ""),
                email=kept.get("email", ""),
            ),
            database=dataclasses.replace(base.database, url=url),
            security=security,
            payments=dataclasses.replace(base.payments, currency=kept.get("currency", base.payments.currency)),
            hours=dataclasses.replace(
                base.hours,
                **{day: kept.get(f"hours.{day}", "") for day in WEEKDAYS},
                expected_payments_per_day=(
                    parse_expected_payments(kept["hours.expected_payments_per_day"])
                    if "hours.expected_payments_per_day" in kept
                    else base.hours.expected_payments_per_day
                ),
            ),
            source=None,
        )

    async def validate(self, answers: Mapping[str, str]) -> tuple[dict[str, str], dict[str, FieldCheck]]:
        """Every applicable answer checked, requests included: (errors by field, checks by field)."""
        checks: dict[str, FieldCheck] = {}
        for field in self.applicable(answers):
            checks[field.name] = self.check(field.name, answers)
        if checks.get("merchant.bakong_account_id", FieldCheck("")).ok:
            checks["merchant.bakong_account_id"] = await self.check_account(answers)
        if checks["database"].ok:
            checks["database"] = await self.check_database(answers)
        errors = {name: c.error for name, c in checks.items() if c.error}
        if not errors:
            settings = self.settings_for(answers)
            try:
                parse_config_text(render_config(settings), origin=str(self.path))
            except ConfigError as exc:
                errors["config"] = exc.message
        if not errors:
            probe = self._database_probes.get(database_url(answers.get("database", "sqlite")))
            problem = await data_key_problem(probe, self.settings_for(answers), self.clock) if probe else None
            if problem:
                errors["data_key_file"] = problem
        return errors, checks

    async def save(self, answers: Mapping[str, str]) -> SetupResult:
        """Check everything, then write the data key file (when new) and the config file."""
        self.refuse_overwrite()
        errors, checks = await self.validate(answers)
        if errors:
            name, message = next(iter(errors.items()))
            label = FIELDS[name].label if name in FIELDS else name
            raise InvalidInput(f"{label}: {message}", field=name)
        settings = self.settings_for(answers)
        key_file: Path | None = None
        created = False
        if not self.keeps_inline_data_key and settings.security.data_key_file:
            key_file = Path(settings.security.data_key_file).expanduser()
            if not key_file.exists():
                write_private_file(key_file, generate_key_spec() + "\n")
                created = True
        written_at = f"{self.clock.now().astimezone(PHNOM_PENH):%Y-%m-%d %H:%M} Phnom Penh"
        write_config_file(self.path, settings, force=self.force, written_at=written_at)
        note = await prepare_database(settings)
        return SetupResult(self.path, load_settings(self.path, environ={}), key_file, created, note, checks)

    async def diagnose(self, settings: Settings) -> tuple[Diagnosis, str]:
        """Bakong's verdict on the saved settings, and what to do about it (one request)."""
        async with BakongClient.from_settings(
            settings.bakong, clock=self.clock, ledger=InMemoryRequestLedger(), transport=self.transport
        ) as client:
            diagnosis = await client.diagnose()
        return diagnosis, DIAGNOSIS_ADVICE[diagnosis.kind]


def read_token_file(path: str | Path) -> str:
    """A token from a file (``--token-file``): the first non-empty line."""
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read the token file {path}: {exc.strerror}", field="token") from None
    token = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if not token:
        raise InvalidInput(f"the token file {path} is empty", field="token")
    return token

