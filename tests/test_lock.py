"""requirements.lock: what production installs, runtime only, every package hashed, in
step with requirements.txt's runtime pins (issue 11 item 14)."""

from __future__ import annotations

import re
import sys

from config.settings import ROOT

sys.path.insert(0, str(ROOT / ".ci"))
from lock import runtime_requirements

LOCK = ROOT / "requirements.lock"


def _locked() -> dict[str, str]:
    return {
        name.lower(): version
        for name, version in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", LOCK.read_text(), re.M)
    }


def test_every_runtime_pin_is_locked_at_its_version() -> None:
    locked = _locked()
    for line in runtime_requirements((ROOT / "requirements.txt").read_text()):
        name, version = line.split("==")
        name = re.sub(r"\[.*\]", "", name).lower()
        assert locked.get(name) == version, f"{name}: requirements.txt {version}, lock " \
                                            f"{locked.get(name)}; run make lock"


def test_every_locked_package_carries_hashes() -> None:
    entries = re.split(r"\n(?=[A-Za-z0-9_.-]+==)", LOCK.read_text())
    packages = [e for e in entries if re.match(r"[A-Za-z0-9_.-]+==", e)]
    assert packages
    assert all("--hash=sha256:" in entry for entry in packages)


def test_test_tools_stay_out_of_production() -> None:
    locked = _locked()
    for tool in ("pytest", "pytest-xdist", "hypothesis", "schemathesis", "playwright", "ruff",
                 "pip-audit", "pip-tools", "aiosmtpd", "factory-boy", "faker"):
        assert tool not in locked, tool
