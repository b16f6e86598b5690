"""The agencies catalog (``config/agencies.yaml``): who receives referrals and how.

Endpoints and secrets come from the environment captured in ``Settings.env``
(``AGENCY_<CODE>_WEBHOOK_URL`` …), never from the file, so the file can be reviewed and
committed while the secrets stay in the deployment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from config.settings import Settings
from referrals.channels import REGISTRY, agency_channels
from workflows.catalog_files import CatalogError
from workflows.outcomes import OUTCOME_KINDS

PRIORITIES = ("emergency", "urgent", "routine")
_CODE = re.compile(r"^[A-Z][A-Z0-9_]{1,31}$")
_LINE = "__line__"


@dataclass(frozen=True)
class Agency:
    """One agency and its resolved channels."""

    code: str
    name: str
    channels: tuple[str, ...]
    deadline_minutes: dict[str, int]
    optional: bool = False
    outcomes: tuple[str, ...] = ()  # the outcome kinds it may record (workflows.outcomes)
    # By channel name, from AGENCY_<CODE>_<the channel's agency_setting>.
    addresses: dict[str, str | None] = field(default_factory=dict, repr=False)
    webhook_secret: str | None = field(default=None, repr=False)  # signed channels' key

    def endpoint(self, channel: str) -> str | None:
        """Where this channel reaches the agency, or None if it is not set up (a signed
        channel also needs the secret)."""
        spec = REGISTRY.get(channel)
        if spec is None or (spec.signed and not self.webhook_secret):
            return None
        return self.addresses.get(channel)

    @property
    def ready_channels(self) -> tuple[str, ...]:
        """The listed channels that have their endpoint (and secret) configured."""
        return tuple(c for c in self.channels if self.endpoint(c))

    @property
    def configured(self) -> bool:
        """Routing may refer to it: required agencies always, optional ones with a channel."""
        return not self.optional or bool(self.ready_channels)


class _LineLoader(yaml.SafeLoader):
    """A safe loader that remembers the line of every mapping, for error messages."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping[_LINE] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _parse(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else "?"
        raise CatalogError(f"{path}, line {line}: {exc.problem}") from None


def _agency(path: Path, entry: Any, settings: Settings, index: int) -> Agency:
    if not isinstance(entry, dict):
        raise CatalogError(f"{path}: agency #{index + 1} must be a mapping")
    line = entry.pop(_LINE, "?")

    def fail(message: str) -> CatalogError:
        return CatalogError(f"{path}, line {line}: {message}")

    unknown = set(entry) - {"code", "name", "channels", "deadlines", "optional", "outcomes"}
    if unknown:
        raise fail(f"unknown key(s) {', '.join(sorted(unknown))}")
    code = entry.get("code")
    if not isinstance(code, str) or not _CODE.match(code):
        raise fail(f"code must be 2-32 upper-case letters, digits or _, not {code!r}")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise fail(f"agency {code} needs a name")
    channels = entry.get("channels") or []
    known = agency_channels()
    if not isinstance(channels, list) or any(c not in known for c in channels):
        raise fail(f"agency {code}: channels must be a list of {', '.join(known)}")
    deadlines = dict(entry.get("deadlines") or {})
    deadlines.pop(_LINE, None)
    for priority, minutes in deadlines.items():
        if priority not in PRIORITIES or not isinstance(minutes, int) or minutes <= 0:
            raise fail(f"agency {code}: deadlines map {', '.join(PRIORITIES)} to minutes > 0")
    optional = entry.get("optional", False)
    if not isinstance(optional, bool):
        raise fail(f"agency {code}: optional must be true or false")
    outcomes = entry.get("outcomes") or []
    if not isinstance(outcomes, list) or any(k not in OUTCOME_KINDS for k in outcomes):
        raise fail(f"agency {code}: outcomes must be a list of {', '.join(OUTCOME_KINDS)}")
    return Agency(
        code=code,
        name=name.strip(),
        channels=tuple(channels),
        deadline_minutes=deadlines,
        optional=optional,
        outcomes=tuple(dict.fromkeys(outcomes)),
        addresses={
            name: settings.agency_env(code, setting)
            for name, setting in ((c.name, c.agency_setting) for c in REGISTRY.values())
            if setting is not None
        },
        webhook_secret=settings.agency_env(code, "WEBHOOK_SECRET"),
    )


def load_agencies(path: Path, settings: Settings) -> dict[str, Agency]:
    """Read and check the agencies file; a broken file raises CatalogError naming the line."""
    data = _parse(path)
    if not isinstance(data, dict) or not isinstance(data.get("agencies"), list):
        raise CatalogError(f"{path}, line 1: expected a top-level 'agencies:' list")
    agencies: dict[str, Agency] = {}
    for index, entry in enumerate(data["agencies"]):
        line = entry.get(_LINE, "?") if isinstance(entry, dict) else "?"
        agency = _agency(path, entry, settings, index)
        if agency.code in agencies:
            raise CatalogError(f"{path}, line {line}: agency {agency.code} is listed twice")
        agencies[agency.code] = agency
    return agencies
