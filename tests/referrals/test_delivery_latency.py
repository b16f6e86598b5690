"""Delivery latency from approval to the agency's receipt, with a running worker.

Measured and written to test-output/referral-latency.txt, never asserted: speed
belongs to bench/, this only proves every referral arrives and reports the figures.
"""

from __future__ import annotations

import os
import statistics
import time

import pytest

from tests.conftest import backend
from tests.referrals.casework import screen_and_approve, submit_tip
from tests.referrals.conftest import agency_env, wait_until
from workflows.models import Referral

# Ten in the suite (every one must arrive); LATENCY_REFERRALS=50 for the reported figures.
COUNT = int(os.environ.get("LATENCY_REFERRALS", "10"))


@pytest.mark.slow
def test_approved_referrals_all_arrive_and_latency_is_reported(
    app, client, operator, supervisor, agency, start_worker, output_dir
) -> None:
    worker = start_worker(**agency_env(agency.url))
    wait_until(lambda: "Listening on" in worker.log(), 60, "the worker to start")
    approved_at: dict[str, float] = {}
    runtime = app.extensions["runtime"]
    for n in range(COUNT):
        ids = screen_and_approve(app, submit_tip(client, narrative=f"Tip {n}: minor sold."),
                                 operator, supervisor)
        stamp = time.time()
        with runtime.session() as session:
            for referral_id in ids:
                approved_at[session.get(Referral, referral_id).idempotency_key] = stamp
        time.sleep(0.3)  # a steady trickle of approvals, not one burst

    wait_until(lambda: set(approved_at) <= set(agency.arrivals), 120, "all deliveries")
    in_order = [round((agency.arrivals[k] - approved_at[k]) * 1000) for k in approved_at]
    latencies = sorted(in_order)
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, round(0.99 * len(latencies)) - 1)]
    report = (
        f"backend={backend()} referrals={len(latencies)} approval->agency receipt: "
        f"p50={p50:.0f} ms p99={p99:.0f} ms max={latencies[-1]:.0f} ms\n"
        f"in approval order (ms): {in_order}\n"
    )
    (output_dir / f"referral-latency-{backend()}.txt").write_text(report)
    print(report)
    assert len(agency.packets) == COUNT
