"""Loading the YAML catalogs in HOTLINE_CONFIG_DIR; each loader lives with its domain.

A broken file fails at start-up with a message naming the file and the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from config.settings import Settings


class CatalogError(ValueError):
    """A configuration file is broken; the message names file and line."""


def read_yaml(path: Path) -> Any:
    """Parse one YAML file, turning parse errors into CatalogError with the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else "?"
        raise CatalogError(f"{path}, line {line}: {exc.problem}") from None


def load_all(config_dir: Path, settings: Settings) -> dict[str, Any]:
    """Every catalog, keyed by name. Loaders register below as the domain grows."""
    catalogs: dict[str, Any] = {}
    intake_file = config_dir / "intake.yaml"
    if intake_file.exists():
        catalogs["intake"] = read_yaml(intake_file)
    return catalogs
