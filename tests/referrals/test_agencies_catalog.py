"""config/agencies.yaml: codes, channels from the environment, broken files named by line."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import DEFAULT_CONFIG_DIR, Settings
from referrals.agencies import load_agencies
from workflows.catalog_files import CatalogError


def test_default_file_lists_the_federal_agencies_with_secrets_from_the_environment() -> None:
    settings = Settings(env={"AGENCY_FBI_WEBHOOK_URL": "https://fbi.example/in",
                             "AGENCY_FBI_WEBHOOK_SECRET": "s3cret",
                             "AGENCY_HHS_EMAIL": "otip@example.gov"})
    agencies = load_agencies(DEFAULT_CONFIG_DIR / "agencies.yaml", settings)

    assert {"FBI", "ICE", "HHS", "DOL_WHD"} <= set(agencies)
    assert agencies["FBI"].ready_channels == ("webhook",)
    assert agencies["FBI"].webhook_secret == "s3cret" and "s3cret" not in repr(agencies["FBI"])
    assert agencies["HHS"].ready_channels == ("email",)
    assert agencies["ICE"].deadline_minutes["emergency"] == 15


def test_optional_agency_is_configured_only_with_a_channel() -> None:
    path = DEFAULT_CONFIG_DIR / "agencies.yaml"
    bare = load_agencies(path, Settings(env={}))
    wired = load_agencies(path, Settings(env={"AGENCY_DOL_WHD_EMAIL": "whd@example.gov"}))

    assert not bare["DOL_WHD"].configured and bare["FBI"].configured
    assert wired["DOL_WHD"].configured


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("agencies:\n  - code: FBI\n    name: [unclosed\n", 4, "expected"),
        ("agencies:\n  - code: FBI\n    name: F\n  - code: fbi\n    name: x\n", 4, "code"),
        ("agencies:\n  - code: FBI\n    name: F\n    channels: [fax]\n", 2, "channels"),
        ("agencies:\n  - code: FBI\n    name: F\n  - code: FBI\n    name: G\n", 4, "twice"),
        ("agencies:\n\n  - code: ICE\n    name: I\n    deadlines: {soon: 5}\n", 3, "deadlines"),
    ],
)
def test_broken_file_names_the_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = tmp_path / "agencies.yaml"
    path.write_text(text)
    with pytest.raises(CatalogError) as raised:
        load_agencies(path, Settings())
    assert f"line {line}" in str(raised.value) and words in str(raised.value)
