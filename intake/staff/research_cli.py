"""``flask --app wsgi export research --from … --to … --out DIR``: the extract as files."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click
from flask.cli import AppGroup

from config.database import runtime
from workflows.audit import record_event
from workflows.datapackage import stream_package, unpack_package
from workflows.db import transaction, utcnow
from workflows.publication import publish_due
from workflows.research import ExportError, Vocabulary, case_records, date_range

export_cli = AppGroup("export", help="De-identified extracts.")
statistics_cli = AppGroup("statistics", help="Public statistics.")


@statistics_cli.command("publish")
def publish_statistics() -> None:
    """Publish every ended month and year not yet published (the worker does it hourly)."""
    rt = runtime()
    session = rt.session()
    try:
        done = publish_due(session, utcnow(), rt.settings.statistics_k,
                           Vocabulary.from_catalogs(rt.catalogs))
    finally:
        session.close()
    click.echo(f"published {len(done)} period(s)" + (": " + ", ".join(done) if done else ""))


@export_cli.command("research")
@click.option("--from", "start", required=True, type=click.DateTime(["%Y-%m-%d"]))
@click.option("--to", "end", required=True, type=click.DateTime(["%Y-%m-%d"]))
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--k", "k", type=click.IntRange(min=2), default=None,
              help="Cases that must share each combination (default: STATISTICS_K).")
def export_research(start: datetime, end: datetime, out: Path, k: int | None) -> None:
    """Write the research Data Package (datapackage.json and CSVs) into DIR."""
    rt = runtime()
    try:
        first, after = date_range(start.date(), end.date())
    except ExportError as exc:
        raise click.BadParameter(str(exc), param_hint="--to") from None
    vocab = Vocabulary.from_catalogs(rt.catalogs)
    session = rt.session()
    try:
        with transaction(session):
            record_event(session, actor="cli", action="research_export",
                         detail={"from": start.date().isoformat(), "to": end.date().isoformat()})
        files = unpack_package(
            stream_package(lambda: case_records(session, first, after, vocab), vocab,
                           k or rt.settings.statistics_k, start.date(), end.date(), utcnow()),
            out,
        )
    finally:
        session.close()
    click.echo(f"wrote {len(files)} files to {out}: " + ", ".join(p.name for p in files))
