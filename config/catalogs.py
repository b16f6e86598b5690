"""Loading the YAML catalogs in HOTLINE_CONFIG_DIR; each loader lives with its domain.

A broken file fails at start-up with a message naming the file and the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from config.settings import Settings
from intake.catalog import load_intake_catalog
from referrals.agencies import load_agencies
from workflows.retention import load_retention_policy
from workflows.routing import load_routing
from workflows.screening import load_indicators


def load_all(config_dir: Path, settings: Settings) -> dict[str, Any]:
    """Every catalog, keyed by name; add a loader here when the domain grows one."""
    catalogs: dict[str, Any] = {}
    catalogs["intake"] = load_intake_catalog(config_dir / "intake.yaml")
    catalogs["agencies"] = load_agencies(config_dir / "agencies.yaml", settings)
    catalogs["retention"] = load_retention_policy(config_dir / "retention.yaml")
    catalogs["indicators"] = load_indicators(config_dir / "indicators.yaml")
    catalogs["routing"] = load_routing(config_dir / "routing.yaml", catalogs["indicators"])
    return catalogs
