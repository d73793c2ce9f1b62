"""Encryption at rest: AES-256-GCM, key ids, rotation, and no plaintext fallback."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from engine.config import load_settings
from engine.crypto import DataCipher, default_key_file, generate_key_spec, load_data_cipher, parse_key_spec
from engine.db import state
from engine.db.rekey import reencrypt_all
from engine.db.storage import Storage
from engine.errors import DataKeyError


def cipher_of(*specs: str) -> DataCipher:
    keys = dict(parse_key_spec(s) for s in specs)
    return DataCipher(parse_key_spec(specs[0])[0], keys)


def test_roundtrip_and_context_binding() -> None:
    c = cipher_of(generate_key_spec("a"))
    sealed = c.encrypt("whsec_abc", context="webhook_endpoints.secret")
    assert sealed.startswith("v1:a:") and "whsec_abc" not in sealed
    assert c.decrypt(sealed, context="webhook_endpoints.secret") == "whsec_abc"
    with pytest.raises(DataKeyError, match="does not open"):
        c.decrypt(sealed, context="payments.payer_account")
    assert c.encrypt("x", context="c") != c.encrypt("x", context="c")  # fresh nonce each time


def test_unknown_key_id_is_a_clear_error() -> None:
    old = cipher_of(generate_key_spec("old"))
    new = cipher_of(generate_key_spec("new"))
    with pytest.raises(DataKeyError, match="key 'old'.*previous_data_keys"):
        new.decrypt(old.encrypt("s", context="c"), context="c")


def test_repr_never_shows_key_material() -> None:
    spec = generate_key_spec("k")
    assert spec.split(":")[1] not in repr(cipher_of(spec))


@pytest.mark.parametrize("spec", ["nokeyid", "k:not-base64!!", "k:" + "QUJD", "bad id:QUJD"])
def test_bad_key_specs_are_rejected(spec: str) -> None:
    with pytest.raises(DataKeyError):
        parse_key_spec(spec)


def test_embedded_default_generates_a_private_key_file() -> None:
    settings = load_settings()
    cipher = load_data_cipher(settings)
    path = default_key_file()
    assert path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_data_cipher(settings).keys == cipher.keys  # stable across starts


def test_external_database_without_key_fails_instead_of_plaintext(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[database]\nurl = "postgresql+asyncpg://postgres@127.0.0.1/x"\n', encoding="utf-8")
    with pytest.raises(DataKeyError, match="no data encryption key"):
        load_data_cipher(load_settings(cfg))


def test_key_from_env_and_previous_keys(tmp_path: Path) -> None:
    active, old = generate_key_spec("k2"), generate_key_spec("k1")
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[security]\nprevious_data_keys = ["{old}"]\n', encoding="utf-8")
    cipher = load_data_cipher(load_settings(cfg, environ={"BAKONG_CONSOLE_DATA_KEY": active}))
    assert cipher.active_id == "k2" and set(cipher.keys) == {"k1", "k2"}


async def test_reencrypt_all_moves_every_secret_to_the_active_key(storage: Storage) -> None:
    old_spec, new_spec = generate_key_spec("old"), generate_key_spec("new")
    storage.cipher = cipher_of(old_spec)
    async with storage.transaction() as tx:
        await state.set_secret(tx, "bakong_token", "tok-1")
        await state.set_secret(tx, "sandbox_key", "tok-2")
    storage.cipher = cipher_of(new_spec, old_spec)
    assert await reencrypt_all(storage) == 2
    assert await reencrypt_all(storage) == 0
    storage.cipher = cipher_of(new_spec)  # the old key can now be dropped
    async with storage.read() as tx:
        assert await state.get_secret(tx, "bakong_token") == "tok-1"
        assert await state.get_secret(tx, "sandbox_key") == "tok-2"
