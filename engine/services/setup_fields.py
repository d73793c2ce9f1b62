"""The questions of setup: each field (its label, section, hint and choices) and an answer's check.

``SETUP_FIELDS`` is the one list both faces of setup walk (the console's screen and the prompts of
``bakong-console setup``); ``engine.services.setup`` checks the answers and writes the result.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from engine.config import Settings
from engine.hours import WEEKDAYS

__all__ = ["ENVIRONMENTS", "FIELDS", "SETUP_FIELDS", "FieldCheck", "SetupField", "SetupResult"]

ENVIRONMENTS = ("production", "nbc-test", "custom")


@dataclass(frozen=True)
class SetupField:
    """One question of setup."""

    name: str
    label: str
    section: str
    hint: str = ""
    choices: tuple[str, ...] = ()
    secret: bool = False

    def applies(self, answers: Mapping[str, str]) -> bool:
        """Whether the question is asked, given the answers so far (merchant type, environment)."""
        kind = answers.get("merchant.type", "individual")
        if self.name == "merchant.merchant_id":
            return kind == "merchant"
        if self.name == "merchant.account_information":
            return kind != "merchant"
        return True


_DAY_NAMES = dict(zip(WEEKDAYS, ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"), strict=True))

SETUP_FIELDS: tuple[SetupField, ...] = (
    SetupField("environment", "Bakong", "Bakong", "production, nbc-test (NBC's SIT) or custom (base URL below)", ENVIRONMENTS),
    SetupField("base_url", "Base URL", "Bakong", "empty: Bakong's own host; else your relay inside Cambodia (https://...)"),
    SetupField("token", "Token", "Bakong", "the Bakong JWT from api-bakong.nbc.gov.kh (not shown as you type)", secret=True),
    SetupField("email", "Renewal e-mail", "Bakong", "the registered e-mail: the token (90 days) renews itself with it"),
    SetupField("merchant.type", "Merchant type", "Merchant", "individual (KHQR tag 29) or merchant (tag 30)", ("individual", "merchant")),
    SetupField("merchant.name", "Name", "Merchant", "shown to the payer, at most 25 characters"),
    SetupField("merchant.city", "City", "Merchant", "at most 15 characters"),
    SetupField("merchant.bakong_account_id", "Bakong account", "Merchant", "where the money goes: name@bank (checked with Bakong)"),
    SetupField("merchant.merchant_id", "Merchant id", "Merchant", "from your acquiring bank"),
    SetupField("merchant.acquiring_bank", "Acquiring bank", "Merchant", "the bank's name (required for a merchant)"),
    SetupField("merchant.account_information", "Account info", "Merchant", "optional"),
    SetupField("merchant.mobile_number", "Mobile number", "Merchant", "optional"),
    SetupField("merchant.store_label", "Store label", "Merchant", "optional"),
    SetupField("merchant.terminal_label", "Terminal label", "Merchant", "optional"),
    SetupField("merchant.merchant_category_code", "Category code", "Merchant", "4 digits (5999: retail)"),
    SetupField("currency", "Currency", "Merchant", "new payments start in KHR or USD", ("KHR", "USD")),
    SetupField("database", "Database", "Database", "sqlite (embedded file) or a postgresql://user@host/db URL (tested now)"),
    SetupField("data_key_file", "Data key file", "Database", "the AES-256 key for secrets at rest (made when missing, 0600)"),
    *(
        SetupField(f"hours.{day}", _DAY_NAMES[day], "Hours", 'Phnom Penh time: 08:00-20:00, several separated by commas, "closed" or empty')
        for day in WEEKDAYS
    ),
    SetupField(
        "hours.expected_payments_per_day", "Payments a day", "Hours",
        "about how many KHQR payments on a normal open day? (plans the first day's checks; empty: not known)",
    ),
)
#: Each question by its name.
FIELDS = {f.name: f for f in SETUP_FIELDS}


@dataclass(frozen=True)
class FieldCheck:
    """An answer as setup will keep it (normalised), or why it cannot be kept; ``note`` is what
    the face shows beside an accepted answer (the token's expiry, the account holder...)."""

    value: str
    error: str | None = None
    note: str = ""
    #: The answer is kept but something could not be checked (Bakong unreachable): say so.
    warning: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class SetupResult:
    """What ``save`` wrote."""

    config_path: Path
    settings: Settings
    data_key_file: Path | None
    data_key_created: bool
    database_note: str
    #: Every answer's check as saved (notes to show: the token's expiry, the account holder...).
    checks: dict[str, FieldCheck] = dataclasses.field(default_factory=dict)
