"""Import a service directory published as an Open Referral HSDS data package (CSV).

HSDS (the Human Services Data Specification) is what 211s and referral directories
publish: ``organizations.csv``, ``services.csv``, ``locations.csv``,
``service_at_locations.csv``, ``addresses.csv`` (HSDS 3; ``physical_addresses.csv`` in
HSDS 2), ``languages.csv``, and the taxonomy links ``attributes.csv`` +
``taxonomy_terms.csv``. One directory entry per HSDS service; importing the same package
again changes nothing; a malformed file is refused whole, naming file, row and column.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from workflows.db import utcnow
from workflows.providers import SERVICE_TYPES, ServiceProvider

# Taxonomy terms (code or name, lower case) that mean one of our service types.
TYPE_WORDS = {
    "shelter": "shelter",
    "emergency shelter": "shelter",
    "housing": "shelter",
    "legal": "legal",
    "legal aid": "legal",
    "immigration legal services": "legal",
    "medical": "medical",
    "health care": "medical",
    "medical care": "medical",
    "mental health": "mental_health",
    "counseling": "mental_health",
    "youth": "youth",
    "runaway youth": "youth",
    "runaway and homeless youth": "youth",
    "dv": "dv",
    "domestic violence": "dv",
    "family violence": "dv",
    "labor": "labor",
    "labor rights": "labor",
    "employment rights": "labor",
    "interpretation": "interpretation",
    "translation": "interpretation",
    "interpretation/translation": "interpretation",
}
LANGUAGE_CODES = {"english": "en", "spanish": "es", "español": "es"}
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,190}\.[A-Za-z]{2,24}")
MAX_ROWS = 200_000


class HsdsError(ValueError):
    """The package is malformed; the message names the file, row and column."""


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line a person reads after an import."""
        return (
            f"{len(self.created)} created, {len(self.updated)} updated, "
            f"{len(self.unchanged)} unchanged"
        )


def _rows(
    folder: Path, name: str, required: tuple[str, ...], optional: bool = False
) -> list[dict[str, str]]:
    path = folder / name
    if not path.exists():
        if optional:
            return []
        raise HsdsError(f"{name}: missing from the data package")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        for column in required:
            if column not in columns:
                raise HsdsError(f"{name}: no column {column!r} (header row)")
        rows = []
        for number, row in enumerate(reader, start=2):  # row 1 is the header
            if number > MAX_ROWS:
                raise HsdsError(f"{name}: more than {MAX_ROWS} rows")
            for column in required:
                if not (row.get(column) or "").strip():
                    raise HsdsError(f"{name} row {number}, column {column!r}: empty")
            rows.append({k: (v or "").strip() for k, v in row.items() if k})
            rows[-1]["_row"] = str(number)
        return rows


def _float(name: str, row: dict[str, str], column: str, low: float, high: float) -> float | None:
    raw = row.get(column, "")
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise HsdsError(f"{name} row {row['_row']}, column {column!r}: not a number") from None
    if not low <= value <= high:
        raise HsdsError(f"{name} row {row['_row']}, column {column!r}: out of range")
    return value


def read_package(folder: Path) -> list[dict[str, Any]]:
    """The package's services as directory entries (nothing is stored here)."""
    organizations = {r["id"]: r for r in _rows(folder, "organizations.csv", ("id", "name"))}
    services = _rows(folder, "services.csv", ("id", "organization_id", "name"))
    locations = {r["id"]: r for r in _rows(folder, "locations.csv", ("id",), optional=True)}
    links = _rows(folder, "service_at_locations.csv", ("service_id", "location_id"), optional=True)
    address_file = (
        "addresses.csv" if (folder / "addresses.csv").exists() else "physical_addresses.csv"
    )
    addresses = {
        r["location_id"]: r for r in _rows(folder, address_file, ("location_id",), optional=True)
    }
    languages = _rows(folder, "languages.csv", ("service_id",), optional=True)
    terms = {r["id"]: r for r in _rows(folder, "taxonomy_terms.csv", ("id",), optional=True)}
    attributes = _rows(folder, "attributes.csv", ("link_id", "taxonomy_term_id"), optional=True)

    for loc in locations.values():
        _float("locations.csv", loc, "latitude", -90, 90)
        _float("locations.csv", loc, "longitude", -180, 180)
    entries = []
    for service in services:
        row = service["_row"]
        organization = organizations.get(service["organization_id"])
        if organization is None:
            raise HsdsError(
                f"services.csv row {row}, column 'organization_id': "
                f"no organization {service['organization_id']!r}"
            )
        email = service.get("email") or organization.get("email") or None
        if email and not _EMAIL.fullmatch(email):
            raise HsdsError(f"services.csv row {row}, column 'email': not an e-mail address")
        location = next(
            (
                locations.get(link["location_id"])
                for link in links
                if link["service_id"] == service["id"]
            ),
            None,
        )
        address = addresses.get(location["id"]) if location else None
        state = (address or {}).get("state_province", "").upper() or None
        if state and not re.fullmatch(r"[A-Z]{2}", state):
            raise HsdsError(
                f"{address_file} row {address['_row']}, column 'state_province': "  # type: ignore[index]
                "use the two-letter code"
            )
        types = set()
        for attribute in attributes:
            if attribute["link_id"] != service["id"]:
                continue
            term = terms.get(attribute["taxonomy_term_id"])
            if term is None:
                raise HsdsError(
                    f"attributes.csv row {attribute['_row']}, column "
                    f"'taxonomy_term_id': no term {attribute['taxonomy_term_id']!r}"
                )
            for word in (term.get("code", ""), term.get("name", "")):
                kind = TYPE_WORDS.get(word.lower())
                if kind:
                    types.add(kind)
        spoken = set()
        for language in languages:
            if language["service_id"] == service["id"]:
                word = (language.get("code") or language.get("name") or "").lower()
                spoken.add(LANGUAGE_CODES.get(word, word[:2]))
        entries.append(
            {
                "hsds_id": service["id"][:100],
                "name": service["name"][:300],
                "organization": organization["name"][:300],
                "description": (service.get("description") or None),
                "email": email,
                "service_types": sorted(t for t in types if t in SERVICE_TYPES),
                "languages": sorted(spoken - {""}),
                "city": ((address or {}).get("city") or None),
                "state": state,
                "latitude": _float("locations.csv", location, "latitude", -90, 90)
                if location
                else None,
                "longitude": _float("locations.csv", location, "longitude", -180, 180)
                if location
                else None,
            }
        )
    return entries


def import_package(session: Session, folder: Path) -> ImportReport:
    """Create or update one directory entry per HSDS service; the same file twice changes
    nothing. Everything is read and checked before anything is written."""
    entries = read_package(folder)
    report = ImportReport()
    existing = {p.hsds_id: p for p in session.scalars(select(ServiceProvider))}
    for entry in entries:
        provider = existing.get(entry["hsds_id"])
        if provider is None:
            session.add(ServiceProvider(**entry, updated_at=utcnow()))
            report.created.append(entry["hsds_id"])
            continue
        changed = {k: v for k, v in entry.items() if getattr(provider, k) != v}
        if not changed:
            report.unchanged.append(entry["hsds_id"])
            continue
        for key, value in changed.items():
            setattr(provider, key, value)
        provider.updated_at = utcnow()
        report.updated.append(entry["hsds_id"])
    session.flush()
    return report
