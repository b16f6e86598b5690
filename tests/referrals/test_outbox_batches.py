"""Outbox rows go to RQ in batches: one job per queue and up to JOB_ROWS rows, each row
keeping its own semantics (referrals.relay, referrals.tasks.run_outbox_batch)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import update

from referrals import tasks
from referrals.cli import worker_queues
from referrals.relay import batch_job_id, batches, claim_due, relay_once
from tests.referrals.casework import referral_state, screen_and_approve, submit_tip
from tests.referrals.conftest import agency_env
from workflows.db import transaction, utcnow
from workflows.outbox import EMERGENCY_RANK, OutboxMessage, add_outbox_message


def _approved(app, client, operator, supervisor, count: int) -> list[int]:
    return [
        referral_id
        for n in range(count)
        for referral_id in screen_and_approve(
            app, submit_tip(client, narrative=f"Tip {n}: a 15-year-old is sold online."),
            operator, supervisor,
        )
    ]


def test_one_failing_row_is_retried_alone_and_the_rest_of_its_batch_is_delivered(
    app, client, operator, supervisor, agency, delivery_runtime, db_session, monkeypatch
) -> None:
    runtime = delivery_runtime(env=agency_env(agency.url), delivery_backoff_seconds=60)
    referral_ids = _approved(app, client, operator, supervisor, 3)
    claims = claim_due(db_session, runtime)
    [batch] = [b for b in batches(claims) if b[0].kind == "deliver_referral"]
    assert len(batch) == 3 and len({batch_job_id(runtime, c) for c in batch}) == 1
    rows = [[claim.outbox_id, claim.dispatch] for claim in batch]

    broken = batch[1].outbox_id
    real = tasks.execute_outbox_message

    def flaky(rt, outbox_id, dispatch):  # type: ignore[no-untyped-def]
        if outbox_id == broken:
            raise RuntimeError("the worker tripped on this row")
        return real(rt, outbox_id, dispatch)

    monkeypatch.setattr(tasks, "job_runtime", lambda: runtime)
    monkeypatch.setattr(tasks, "execute_outbox_message", flaky)
    assert tasks.run_outbox_batch(rows) == {"done": 2, "failed": 1}

    db_session.expire_all()
    failed = db_session.get(OutboxMessage, broken)
    assert failed.done_at is None and failed.last_error == "job error: RuntimeError"
    assert failed.available_at > utcnow() + timedelta(seconds=30)  # its own backoff
    states = [referral_state(app, r) for r in referral_ids]
    assert states.count("sent") == 2 and states.count("queued") == 1
    assert len(agency.requests) == 2

    # The same job again (RQ ran it twice): the two delivered rows are done and are
    # skipped; the failed row, still on this dispatch, is tried again.
    monkeypatch.setattr(tasks, "execute_outbox_message", real)
    assert tasks.run_outbox_batch(rows) == {"skipped": 2, "done": 1}
    assert all(referral_state(app, r) == "sent" for r in referral_ids)
    assert len(agency.requests) == len(agency.packets) == 3  # each referral sent once


def test_a_leased_row_whose_batch_still_waits_is_not_dispatched_again(
    app, client, operator, supervisor, delivery_runtime, db_session, worker_redis_url
) -> None:
    from redis import Redis

    namespace = f"batchwait-{uuid.uuid4().hex[:8]}-"
    runtime = delivery_runtime(redis_namespace=namespace, redis_url=worker_redis_url)
    _approved(app, client, operator, supervisor, 3)
    redis = Redis.from_url(worker_redis_url)
    try:
        assert relay_once(runtime, redis) >= 3  # no worker: the jobs wait in the queue
        deliveries = update(OutboxMessage).where(OutboxMessage.kind == "deliver_referral")
        with transaction(db_session):  # every lease runs out while the jobs wait
            db_session.execute(deliveries.values(lease_until=utcnow() - timedelta(seconds=1)))

        assert relay_once(runtime, redis) == 0  # each row found its batch's job waiting

        db_session.expire_all()
        rows = [m for m in db_session.query(OutboxMessage).all()
                if m.kind == "deliver_referral"]
        assert len(rows) == 3 and {m.attempts for m in rows} == {1}
        assert all(m.lease_until > utcnow() for m in rows)  # a longer lease instead
    finally:
        for key in redis.scan_iter(f"*{namespace}*"):
            redis.delete(key)
        redis.close()


def test_an_emergency_is_claimed_and_taken_before_an_older_routine_backlog(
    app, client, operator, supervisor, delivery_runtime, db_session, worker_redis_url
) -> None:
    from redis import Redis
    from rq import Queue
    from rq.serializers import JSONSerializer

    namespace = f"lane-{uuid.uuid4().hex[:8]}-"
    runtime = delivery_runtime(redis_namespace=namespace, redis_url=worker_redis_url)
    routine = _approved(app, client, operator, supervisor, 3)
    redis = Redis.from_url(worker_redis_url)
    try:
        assert relay_once(runtime, redis) >= 3  # the backlog waits in RQ: no worker runs
        with transaction(db_session):  # then an emergency: a page and a delivery
            page = add_outbox_message(db_session, "notify", payload={"kind": "emergency_page"},
                                      priority_rank=EMERGENCY_RANK)
            late = add_outbox_message(db_session, "deliver_referral", ref_id=routine[0])
            urgent = add_outbox_message(db_session, "deliver_referral", ref_id=routine[1],
                                        priority_rank=EMERGENCY_RANK)
        # Claimed by rank before age: a pass with room for two takes both emergency rows
        # (the routine one is older than the second), and they share the emergency lane.
        claims = claim_due(db_session, runtime, limit=2)
        claims += claim_due(db_session, runtime)
        assert [c.outbox_id for c in claims] == [page.id, urgent.id, late.id]
        assert [c.outbox_id for c in batches(claims)[0]] == [page.id, urgent.id]
        assert {c.purpose for c in claims} == {"emergency", "referrals"}

        with transaction(db_session):  # give them back; the relay enqueues them itself
            db_session.execute(update(OutboxMessage).where(
                OutboxMessage.id.in_([page.id, urgent.id, late.id])
            ).values(lease_until=None))
        assert relay_once(runtime, redis) == 3
        # What a worker takes next, with its own queue order: the emergency batch,
        # though three routine batches were queued before it.
        job, queue = Queue.dequeue_any(worker_queues(runtime, redis), None,
                                       connection=redis, serializer=JSONSerializer)
        assert queue.name == f"{namespace}emergency"
        assert job.args[0] == [[page.id, 2], [urgent.id, 2]]
    finally:
        for key in redis.scan_iter(f"*{namespace}*"):
            redis.delete(key)
        redis.close()
