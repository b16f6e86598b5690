"""The relay's LISTEN connection (referrals.relay.OutboxListener): woken by a committed
outbox row, not by a rolled-back one, and never stopped by losing its connection."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from referrals.relay import OutboxListener
from workflows.db import transaction
from workflows.outbox import add_notification


def test_a_commit_wakes_the_listener_a_rollback_does_not_and_a_lost_connection_comes_back(
    app,
) -> None:
    runtime = app.extensions["runtime"]
    listener = OutboxListener.for_runtime(runtime)
    if listener is None:
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    stop = threading.Event()
    try:
        assert listener.wait(10, stop) is True  # nothing heard yet: the relay looks once
        assert listener.wait(0.3, stop) is False

        with runtime.session() as session:
            add_notification(session, "spool_drained")
            session.rollback()
        assert listener.wait(0.5, stop) is False  # a rolled-back row wakes nobody

        with runtime.session() as session, transaction(session):
            add_notification(session, "spool_drained")
        assert listener.wait(10, stop) is True

        # The server drops the connection (a restart, a failover): the relay is told to
        # look (a notice may have been lost), then is woken by commits again.
        backend = listener.connection.info.backend_pid
        with runtime.engine.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
        assert listener.wait(15, stop) is True
        assert listener.connection is not None and listener.connection.info.backend_pid != backend
        with runtime.session() as session, transaction(session):
            add_notification(session, "spool_drained")
        assert listener.wait(10, stop) is True
    finally:
        listener.close()
