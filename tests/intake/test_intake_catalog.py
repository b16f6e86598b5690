"""config/intake.yaml: the shipped one loads; a broken one fails naming file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import DEFAULT_CONFIG_DIR
from intake.catalog import VOICE_PROMPTS, load_intake_catalog
from workflows.catalog_files import CatalogError
from workflows.vocabulary import LANGUAGES

SHIPPED = DEFAULT_CONFIG_DIR / "intake.yaml"


def test_the_shipped_catalog_has_every_prompt_in_both_languages() -> None:
    catalog = load_intake_catalog(SHIPPED)
    for key in VOICE_PROMPTS:
        assert all(catalog.prompt(key, lang, reference="R", passphrase="P") for lang in LANGUAGES)
    assert [q.key for q in catalog.questions] == [
        "location", "minor", "safe_now", "callback", "heard_from"]
    # The heard-from choices are filled in at load time, in each language, in digit order.
    assert "1 a friend or relative" in catalog.questions[-1].text["en"]
    assert "7 otra forma" in catalog.questions[-1].text["es"]
    assert "2 for social media" in catalog.prompt("heard_from", "en")
    assert "2 para redes sociales" in catalog.prompt("heard_from", "es")
    assert catalog.voicemail_max_seconds <= 120
    assert catalog.say_language == {"en": "en-US", "es": "es-MX"}


def _broken(tmp_path: Path, old: str, new: str) -> Path:
    text = SHIPPED.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "intake.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("old", "new", "named"),
    [
        ("      es: Para español, oprima 2.\n", "", "voice.prompts.language_menu"),
        ("voicemail_max_seconds: 120", "voicemail_max_seconds: 300", "voicemail_max_seconds"),
        ('      emergency_on: "no"', "      emergency_on: maybe", "emergency_on"),
        ('    voicemail: "3"', '    voicemail: "2"', "voice.menu_digits"),
        ("hotline_number: ", "hotline_number: [unclosed\n", "line"),
    ],
)
def test_a_broken_catalog_names_file_line_and_key(tmp_path, old, new, named) -> None:
    path = _broken(tmp_path, old, new)
    with pytest.raises(CatalogError) as caught:
        load_intake_catalog(path)
    message = str(caught.value)
    assert str(path) in message and "line " in message and named in message
