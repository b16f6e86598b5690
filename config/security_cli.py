"""``flask --app wsgi pii …`` (keys) and ``flask --app wsgi retention …`` (purging)."""

from __future__ import annotations

from datetime import datetime

import click
from flask.cli import AppGroup

from config.database import runtime
from workflows.audit import record_event
from workflows.db import transaction, utcnow
from workflows.links import reindex_identifiers
from workflows.pii import generate_key
from workflows.retention import RetentionPolicy, purge_expired
from workflows.rotation import rotate_all

pii_cli = AppGroup("pii", help="Personal data at rest: encryption keys.")
retention_cli = AppGroup("retention", help="Purge closed cases past their retention period.")


@pii_cli.command("new-key")
def pii_new_key() -> None:
    """Print a fresh key to prepend to PII_ENCRYPTION_KEYS."""
    click.echo(generate_key())


@pii_cli.command("rotate")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 100_000))
def pii_rotate(batch_size: int) -> None:
    """Re-encrypt every encrypted column under the newest key (the first in the list).

    Safe to stop and run again; values already under the newest key are left alone.
    """
    session = runtime().session()
    try:
        report = rotate_all(session, batch_size=batch_size)
        with transaction(session):
            record_event(
                session,
                actor="system:cli",
                action="pii_rotate",
                detail={"checked": report.checked, "rotated": report.rotated},
            )
    finally:
        session.close()
    for table, count in report.per_table.items():
        if count:
            click.echo(f"  {table}: {count} value(s) re-encrypted")
    click.echo(
        f"rotated {report.rotated} of {report.checked} encrypted value(s); "
        "every value is now under the newest key"
    )


@pii_cli.command("reindex")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 100_000))
def pii_reindex(batch_size: int) -> None:
    """Recompute every identifier look-up hash (tips' links) under PII_LOOKUP_KEY.

    Run it after upgrading a database from revision 0001 and after changing
    PII_LOOKUP_KEY; safe to stop and run again.
    """
    session = runtime().session()
    try:
        count = reindex_identifiers(session, batch_size=batch_size)
        with transaction(session):
            record_event(session, actor="system:cli", action="pii_reindex",
                         detail={"rows": count})
    finally:
        session.close()
    click.echo(f"indexed the identifiers of {count} row(s)")


@retention_cli.command("purge")
@click.option(
    "--now",
    "now_text",
    default=None,
    help="Pretend it is this UTC time (ISO 8601), to preview or test; default: now.",
)
def retention_purge(now_text: str | None) -> None:
    """De-identify closed cases past their retention period (config/retention.yaml)."""
    try:
        now = datetime.fromisoformat(now_text) if now_text else utcnow()
    except ValueError:
        raise click.BadParameter(
            f"not an ISO 8601 time: {now_text!r}", param_hint="--now"
        ) from None
    if now.tzinfo is None:
        now = now.replace(tzinfo=utcnow().tzinfo)
    policy: RetentionPolicy = runtime().catalogs["retention"]
    session = runtime().session()
    try:
        count = purge_expired(session, now, policy)
    finally:
        session.close()
    click.echo(f"purged {count} case(s)")
