"""Writing the configuration file: ``Settings`` as TOML that ``load_settings`` reads back unchanged.

``render_config`` writes the keys setup asks about (``SETUP_KEYS``) always, each with a comment
for the person who opens the file later, and every other key only where it differs from its
default (a re-run of setup keeps the ``[api]`` port or the plans someone added by hand). It walks
the ``Settings`` dataclasses, so a key added to ``engine.config`` is carried over without a change
here. ``write_config_file`` replaces the file atomically (a temporary file in the same directory,
then a rename) with mode 0600 — the file holds the Bakong token — and refuses to replace an
existing file unless forced. ``config_target_path`` says where setup writes.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.config import CONFIG_ENV, Settings, config_dir, parse_config_text
from engine.errors import ConfigError

__all__ = ["SETUP_KEYS", "config_target_path", "render_config", "toml_value", "write_config_file", "write_private_file"]

#: What setup asks for: always written, with a comment. Everything else only when not the default.
SETUP_KEYS: dict[str, tuple[str, ...]] = {
    "merchant": (
        "type", "name", "city", "bakong_account_id", "merchant_id", "acquiring_bank", "account_information",
        "mobile_number", "store_label", "terminal_label", "merchant_category_code",
    ),
    "bakong": ("environment", "base_url", "token", "email"),
    "database": ("url",),
    "security": ("data_key_file",),
    "payments": ("currency",),
    "hours": ("mon", "tue", "wed", "thu", "fri", "sat", "sun", "expected_payments_per_day"),
}  # fmt: skip

_COMMENTS: dict[tuple[str, str], str] = {
    ("merchant", "type"): '"individual" (KHQR tag 29) or "merchant" (tag 30: merchant id at an acquiring bank)',
    ("merchant", "name"): "shown to the payer; at most 25 characters",
    ("merchant", "city"): "at most 15 characters",
    ("merchant", "bakong_account_id"): "where the money goes: your Bakong account, name@bank",
    ("merchant", "merchant_id"): 'required when type = "merchant"',
    ("merchant", "acquiring_bank"): 'required when type = "merchant"',
    ("merchant", "account_information"): "individual only, optional",
    ("merchant", "mobile_number"): "optional (tag 62.02)",
    ("merchant", "store_label"): "optional (tag 62.03)",
    ("merchant", "terminal_label"): "optional (tag 62.07)",
    ("merchant", "merchant_category_code"): "4 digits (5999: miscellaneous retail)",
    ("bakong", "environment"): '"production", "nbc-test" (SIT), "custom" (base_url) or "sandbox"',
    ("bakong", "base_url"): "empty: the environment's own host; else your relay inside Cambodia",
    ("bakong", "token"): "the Bakong JWT; it lasts 90 days (BAKONG_CONSOLE_BAKONG_TOKEN overrides it)",
    ("bakong", "email"): "the registered e-mail: the token is renewed with it before it expires",
    ("database", "url"): "empty: the embedded SQLite file; or postgresql+asyncpg://user@host/db",
    ("security", "data_key_file"): "the AES-256 key for secrets at rest (0600); back it up: without it they are lost",
    ("payments", "currency"): "the currency new payments start in: KHR or USD",
    ("hours", "mon"): 'Phnom Penh time: "08:00-20:00", ranges separated by commas, "closed", or "" (not declared)',
    ("hours", "expected_payments_per_day"): "about how many KHQR payments a normal open day brings (0: not known); plans the first day",
}

_HEADER = """\
# bakong-console configuration, written by `bakong-console setup`{when}.
# Re-run `bakong-console setup --force` to change it (the values here are offered as defaults),
# check it with `bakong-console config check`, and see config.example.toml for every key.
# It holds the Bakong token: keep it readable by its owner only (mode 0600).
"""


def config_target_path(explicit: str | Path | None = None, *, environ: Mapping[str, str] | None = None) -> Path:
    """Where setup writes: ``--config`` > ``$BAKONG_CONSOLE_CONFIG`` > the XDG config dir."""
    env = os.environ if environ is None else environ
    if explicit:
        return Path(explicit).expanduser()
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV]).expanduser()
    return config_dir() / "config.toml"


def _string(text: str) -> str:
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _key(name: str) -> str:
    return name if name and all(c.isalnum() or c in "_-" for c in name) and name.isascii() else _string(name)


def toml_value(value: Any) -> str:
    """One value as TOML (strings, booleans, integers, floats, lists and tables of them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(str(k))} = {toml_value(v)}" for k, v in value.items()) + " }" if value else "{}"
    raise ConfigError(f"cannot write {type(value).__name__} {value!r} to the config file")


def _line(key: str, value: Any, comment: str | None) -> str:
    text = f"{_key(key)} = {toml_value(value)}"
    return f"{text:<40} # {comment}" if comment else text


def render_config(settings: Settings, *, written_at: str | None = None) -> str:
    """The file that makes ``load_settings`` return ``settings`` (env overrides aside)."""
    defaults = Settings()
    parts = [_HEADER.format(when=f" on {written_at}" if written_at else "")]
    for section_field in dataclasses.fields(Settings):
        if section_field.name == "source":
            continue
        name = section_field.name
        section = getattr(settings, name)
        default_section = getattr(defaults, name)
        owned = SETUP_KEYS.get(name, ())
        lines: list[str] = []
        tables: list[str] = []
        for key_field in dataclasses.fields(section):
            key = key_field.name
            value = getattr(section, key)
            if key in owned:
                lines.append(_line(key, value, _COMMENTS.get((name, key))))
            elif value != getattr(default_section, key):
                if isinstance(value, list) and value and dataclasses.is_dataclass(value[0]):
                    tables.extend(_array_of_tables(f"{name}.{key}", value))
                else:
                    lines.append(_line(key, value, None))
        if lines:
            parts.append(f"[{name}]\n" + "".join(line + "\n" for line in lines))
        parts.extend(tables)
    return "\n".join(parts)


def _array_of_tables(path: str, items: list[Any]) -> list[str]:
    out = []
    for item in items:
        body = "".join(_line(f.name, getattr(item, f.name), None) + "\n" for f in dataclasses.fields(item))
        out.append(f"[[{path}]]\n{body}")
    return out


def write_private_file(path: Path, text: str, *, force: bool = False) -> None:
    """Write ``text`` to ``path`` atomically with mode 0600 (its directory made 0700 if new).

    Without ``force`` an existing file is never replaced (ConfigError). The temporary file lives
    beside the target, so the rename never crosses a file system and a crash leaves either the
    old file or the new one, never half of one.
    """
    path = path.expanduser()
    if path.exists() and not force:
        raise ConfigError(f"{path} exists: run again with --force to replace it")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)  # whatever the umask said
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"{path}: cannot write: {exc.strerror}") from None


def write_config_file(path: Path, settings: Settings, *, force: bool = False, written_at: str | None = None) -> str:
    """Render ``settings`` and write them to ``path`` (0600, atomic; ``force`` to replace).

    The text is read back through the same loader the engine uses before it replaces anything,
    so a file setup writes always loads to the settings it was given.
    """
    text = render_config(settings, written_at=written_at)
    reread = parse_config_text(text, origin=str(path))
    if dataclasses.replace(reread, source=None) != dataclasses.replace(settings, source=None):
        raise ConfigError(f"{path}: the rendered configuration does not read back the same (not written)")
    write_private_file(path, text, force=force)
    return text
