"""The payer's words: Khmer and English have the same keys, and the language is chosen in order
?lang=, cookie, [display] language."""

from __future__ import annotations

from bakong_console.web.i18n import LANGUAGE_COOKIE, TEXTS, language_of


def test_every_text_exists_in_both_languages_and_khmer_is_khmer() -> None:
    assert set(TEXTS["km"]) == set(TEXTS["en"])
    untranslated = [key for key in TEXTS["km"] if not any("\u1780" <= ch <= "\u17ff" for ch in TEXTS["km"][key])]
    assert untranslated == []


def test_the_language_is_asked_then_remembered_then_the_default() -> None:
    assert language_of({"lang": "en"}, {LANGUAGE_COOKIE: "km"}, "km") == ("en", True)
    assert language_of({}, {LANGUAGE_COOKIE: "en"}, "km") == ("en", False)
    assert language_of({"lang": "fr"}, {LANGUAGE_COOKIE: "xx"}, "en") == ("en", False)
    assert language_of({}, {}, "km") == ("km", False)
