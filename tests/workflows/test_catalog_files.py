"""config/indicators.yaml and config/routing.yaml: a broken file fails start-up naming the line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from config.app import create_app
from config.settings import DEFAULT_CONFIG_DIR
from workflows.catalog_files import CatalogError
from workflows.routing import load_routing
from workflows.screening import load_indicators

RULE = """rules:
  - name: ok_rule
    when: {minor: true, commercial_sex: true}
    refer: [FBI]
    basis: mandatory
    deadline: 24h
    reason: fine
  - name: broken_rule
    when: {minor: true, commercial_sex: true, shoe_size: 9}
    refer: [FBI]
    basis: mandatory
    deadline: 24h
    reason: not fine
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_catalogs_load() -> None:
    indicators = load_indicators(DEFAULT_CONFIG_DIR / "indicators.yaml")
    assert len(indicators.venues) == 25
    assert {i.type for i in indicators.indicators.values()} == {"sex", "labor", "general"}
    assert {i.element for i in indicators.indicators.values()} == {"act", "means", "purpose"}
    assert all(set(i.question) == {"en", "es"} for i in indicators.indicators.values())
    routing = load_routing(DEFAULT_CONFIG_DIR / "routing.yaml", indicators)
    assert [r.name for r in routing.rules][:3] == [
        "imminent_danger", "minor_commercial_sex", "foreign_national_minor"]


def test_an_unknown_fact_in_a_rule_names_the_rule_and_its_line(tmp_path: Path) -> None:
    with pytest.raises(CatalogError) as error:
        load_routing(_write(tmp_path, "routing.yaml", RULE))
    assert "line 9" in str(error.value) and "broken_rule" in str(error.value)
    assert "shoe_size" in str(error.value)


@pytest.mark.parametrize(
    ("change", "line", "words"),
    [
        (("deadline: 24h\n    reason: not", "deadline: soon\n    reason: not"), 12, "deadline"),
        (("basis: mandatory\n    deadline: 24h\n    reason: not",
          "basis: maybe\n    deadline: 24h\n    reason: not"), 11, "basis"),
        (("refer: [FBI]\n    basis: mandatory\n    deadline: 24h\n    reason: not",
          "refer: [fbi]\n    basis: mandatory\n    deadline: 24h\n    reason: not"), 10, "refer"),
        (("{minor: true, commercial_sex: true, shoe_size: 9}", "{minor: [true"), 10,
         "expected"),
    ],
)
def test_broken_routing_rules_name_their_line(tmp_path: Path, change, line, words) -> None:
    text = RULE.replace(*change)
    if "shoe_size" in text:
        text = text.replace("shoe_size: 9", "level: none")
    with pytest.raises(CatalogError) as error:
        load_routing(_write(tmp_path, "routing.yaml", text))
    assert f"line {line}" in str(error.value), str(error.value)
    assert words in str(error.value)


def test_a_race_indicator_is_refused_naming_its_line(tmp_path: Path) -> None:
    text = (DEFAULT_CONFIG_DIR / "indicators.yaml").read_text(encoding="utf-8")
    text = text.replace("  - code: debt_to_employer\n", "  - code: same_race_as_employer\n")
    lines = text.splitlines()
    expected = next(i for i, t in enumerate(lines, 1) if "same_race_as_employer" in t)
    with pytest.raises(CatalogError) as error:
        load_indicators(_write(tmp_path, "indicators.yaml", text))
    assert f"line {expected}" in str(error.value) and "race" in str(error.value)


def test_a_missing_spanish_question_names_the_indicator(tmp_path: Path) -> None:
    text = (DEFAULT_CONFIG_DIR / "indicators.yaml").read_text(encoding="utf-8")
    start = text.index("  - code: not_free_to_leave")
    es = text.index("      es:", start)
    text = text[:es] + text[text.index("\n", es) + 1:]
    with pytest.raises(CatalogError) as error:
        load_indicators(_write(tmp_path, "indicators.yaml", text))
    assert "not_free_to_leave" in str(error.value) and "line" in str(error.value)


def test_the_app_refuses_to_start_with_a_broken_routing_file(settings, tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, config_dir, ignore=shutil.ignore_patterns("*.py"))
    _write(config_dir, "routing.yaml", RULE)
    with pytest.raises(CatalogError) as error:
        create_app(settings.with_overrides(config_dir=config_dir))
    assert "routing.yaml, line 9" in str(error.value)


@pytest.mark.parametrize(
    "when",
    [
        "{minor: true, foreign_national: true}",
        "{foreign_national: true}",
        "{victim_age: 15}",
        "{foreign_national: true, caller_type: victim}",
        "{any: [{foreign_national: true}, {commercial_sex: true}]}",
        "{foreign_national: true, not: {commercial_sex: false}}",
        "{foreign_national: true, commercial_sex: false}",
        "{foreign_national: true, trafficking_type: [sex, unknown]}",
    ],
)
@pytest.mark.parametrize("agency", ["ICE", "FBI"])
def test_a_law_enforcement_rule_on_nationality_or_age_alone_is_refused_at_load(
    tmp_path: Path, when: str, agency: str
) -> None:
    text = f"""rules:
  - name: by_nationality
    when: {when}
    refer: [{agency}]
    basis: mandatory
    deadline: 24h
    reason: nationality alone
"""
    with pytest.raises(CatalogError) as error:
        load_routing(_write(tmp_path, "routing.yaml", text))
    message = str(error.value)
    assert "line 3" in message and "by_nationality" in message and agency in message
    assert "nationality, age or caller alone" in message


@pytest.mark.parametrize(
    "when",
    [
        "{minor: true, foreign_national: true, trafficking_indicated: true}",
        "{foreign_national: true, indicators: [debt_to_employer]}",
        "{any: [{cross_border: true}, {documents_confiscated: true}]}",
        "{all: [{foreign_national: true}, {trafficking_type: [sex, labor]}]}",
    ],
)
def test_a_rule_that_needs_a_sign_of_trafficking_loads(tmp_path: Path, when: str) -> None:
    text = f"""rules:
  - name: with_a_sign
    when: {when}
    refer: [ICE]
    basis: mandatory
    deadline: 24h
    reason: a sign of trafficking
"""
    assert load_routing(_write(tmp_path, "routing.yaml", text)).rules[0].name == "with_a_sign"


def test_services_may_still_be_offered_on_nationality_alone(tmp_path: Path) -> None:
    text = """rules:
  - name: services_for_foreign_victims
    when: {foreign_national: true}
    refer: [HHS]
    basis: consent
    consent: services
    deadline: 72h
    reason: services
"""
    assert load_routing(_write(tmp_path, "routing.yaml", text)).rules[0].agencies == ("HHS",)
