"""How big each benchmark is: the full run and the smoke run (tiny, to check it works)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    concurrency: tuple[int, ...] = (1, 8, 32, 128)
    seconds: float = 8.0
    repeats: int = 3
    paced_rates: tuple[float, ...] = (100.0, 300.0)
    paced_seconds: float = 15.0
    raw_insert_seconds: float = 5.0
    transitions: int = 400
    deliveries: int = 1500
    delivery_workers: tuple[int, ...] = (1, 2, 4)
    idle_deliveries: int = 50
    delivery_cap_seconds: float = 75.0
    backlog: int = 1000  # deliveries queued while approvals are timed
    backlog_approvals: int = 20
    web_processes: tuple[int, ...] = (1, 2, 4)
    scaleout_seconds: float = 10.0
    soak_seconds: float = 600.0
    soak_rate: float = 50.0  # tips/s, paced
    soak_referrals_per_second: float = 10.0  # queued for delivery beside the tips
    memory_cap_seconds: float = 240.0
    cases: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    query_repeats: int = 50
    memory_requests: int = 100_000
    memory_jobs: int = 3_000
    research_cases: tuple[int, ...] = (10_000, 100_000)


FULL = Sizes()
SMOKE = Sizes(
    concurrency=(2,),
    seconds=2.0,
    repeats=1,
    paced_rates=(10.0,),
    paced_seconds=0.5,
    raw_insert_seconds=0.3,
    transitions=5,
    deliveries=5,
    delivery_workers=(1,),
    idle_deliveries=2,
    delivery_cap_seconds=60.0,
    backlog=5,
    backlog_approvals=2,
    web_processes=(1,),
    scaleout_seconds=1.0,
    soak_seconds=6.0,
    soak_rate=5.0,
    soak_referrals_per_second=2.0,
    memory_cap_seconds=30.0,
    cases=(200,),
    query_repeats=5,
    memory_requests=50,
    memory_jobs=5,
    research_cases=(200,),
)
