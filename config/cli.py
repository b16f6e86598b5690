"""The ``flask --app wsgi …`` commands: schema, users, tokens, audit."""

from __future__ import annotations

import secrets
import sys
from datetime import timedelta
from pathlib import Path

import click
from alembic import command as alembic_command
from alembic.config import Config as AlembicConfig
from flask import Flask
from flask.cli import AppGroup

from config.database import runtime
from workflows.accounts import create_token, create_user, revoke_token
from workflows.audit import verify_chain, write_anchor
from workflows.db import transaction
from workflows.errors import DomainError
from workflows.vocabulary import EVERYONE, role_list

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"

db_cli = AppGroup("db", help="Create and migrate the schema.")
users_cli = AppGroup("users", help="Manage people who log in.")
tokens_cli = AppGroup("tokens", help="Manage API bearer tokens.")
audit_cli = AppGroup("audit", help="Check and anchor the audit log.")


def alembic_config(database_url: str) -> AlembicConfig:
    """Alembic pointed at our migrations and the given database."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade_database(database_url: str, revision: str = "head") -> None:
    """Migrate the database to ``revision`` (tests and the CLI share this)."""
    if database_url.startswith("sqlite:///"):
        Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    alembic_command.upgrade(alembic_config(database_url), revision)


@db_cli.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Migrate the schema to the newest revision (creates it on an empty database)."""
    upgrade_database(runtime().settings.database_url, revision)
    click.echo(f"database at {revision}")


@users_cli.command("create")
@click.argument("username")
@click.option(
    "--role", required=True, type=click.Choice(role_list(EVERYONE))
)
@click.option("--agency", "agency", default=None, help="Agency code, for agency users.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def users_create(username: str, role: str, agency: str | None, password_stdin: bool) -> None:
    """Create a user who can log in (with a password) or use tokens."""
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    known = set(runtime().catalogs.get("agencies", {}) or {}) or None
    session = runtime().session()
    try:
        with transaction(session):
            user = create_user(session, username, role, agency, password, known_agencies=known)
    except DomainError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        session.close()
    click.echo(
        f"created {user.role} {user.username}"
        + (f" ({user.agency_code})" if user.agency_code else "")
    )


@tokens_cli.command("create")
@click.argument("username")
def tokens_create(username: str) -> None:
    """Issue a bearer token; it is printed once, alone on the last line."""
    session = runtime().session()
    try:
        with transaction(session):
            token = create_token(session, username)
    except DomainError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        session.close()
    click.echo(f"token for {username} (shown once, store it now):")
    click.echo(token)


@tokens_cli.command("revoke")
@click.argument("prefix")
def tokens_revoke(prefix: str) -> None:
    """Revoke tokens by their first 10 characters."""
    session = runtime().session()
    with transaction(session):
        count = revoke_token(session, prefix)
    session.close()
    click.echo(f"revoked {count} token(s)")


@audit_cli.command("verify")
def audit_verify() -> None:
    """Check every chain, head and anchor; say which key verified which events.

    Exit 1 naming the first broken link.
    """
    session = runtime().session()
    try:
        report = verify_chain(
            session, anchor_period=timedelta(seconds=runtime().settings.audit_anchor_seconds)
        )
    finally:
        session.close()
    for warning in report.warnings:
        click.echo(f"WARNING: {warning}", err=True)
    if report.ok:
        for key_range in report.keys:
            click.echo(key_range.describe())
        click.echo(
            f"audit chain intact: {report.checked} events verified in {report.chains} "
            f"chain(s), {report.anchors} anchor(s)"
        )
        return
    where = f"event {report.broken_at}" if report.broken_at is not None else "an anchor or head"
    click.echo(
        f"audit chain BROKEN at {where}: {report.problem} "
        f"({report.checked} events before it verified)",
        err=True,
    )
    sys.exit(1)


@audit_cli.command("anchor")
def audit_anchor() -> None:
    """Sign the chain heads that moved now (the worker does it every AUDIT_ANCHOR_SECONDS)."""
    session = runtime().session()
    try:
        with transaction(session):
            anchor = write_anchor(session)
            seq, count = (anchor.seq, len(anchor.entries)) if anchor else (None, 0)
    finally:
        session.close()
    click.echo(f"anchor {seq}: {count} chain head(s)" if seq else "nothing moved; no anchor")


@audit_cli.command("new-key")
def audit_new_key() -> None:
    """Print a new key for AUDIT_KEYS (prepend it: the first signs, all verify)."""
    click.echo(secrets.token_urlsafe(32))


services_cli = AppGroup("services", help="The service provider directory.")


@services_cli.command("import")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
def import_services(path: Path) -> None:
    """Import an Open Referral HSDS data package (a folder of CSVs); safe to repeat."""
    from workflows.hsds import HsdsError, import_package

    with runtime().session() as session:
        try:
            with transaction(session):
                report = import_package(session, path)
        except HsdsError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(report.summary())
    for label, ids in (("created", report.created), ("updated", report.updated)):
        if ids:
            click.echo(f"{label}: {', '.join(ids)}")


def init_app(app: Flask) -> None:
    for group in (db_cli, users_cli, tokens_cli, audit_cli, services_cli):
        app.cli.add_command(group)
    from workflows.diagram_cli import diagrams_command

    app.cli.add_command(diagrams_command)
    from referrals.cli import worker_cli

    app.cli.add_command(worker_cli)
    from config.security_cli import pii_cli, retention_cli

    app.cli.add_command(pii_cli)
    app.cli.add_command(retention_cli)
    from intake.staff.research_cli import export_cli, statistics_cli

    app.cli.add_command(export_cli)
    app.cli.add_command(statistics_cli)
