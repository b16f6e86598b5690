"""The Prometheus counters: events, counted where they happen (web and worker layers).

Under gunicorn, ``PROMETHEUS_MULTIPROC_DIR`` makes prometheus_client keep each
process's counts in a file of that directory, and ``/metrics`` (``config.monitoring``)
adds them up; it must be set before prometheus_client is imported, so in the
environment, not in code. State (outbox lag, queue depth, spool size) is not counted
here: it is read when scraped. No label ever holds personal data: channels, agency
codes and outcome words only.
"""

from __future__ import annotations

from prometheus_client import Counter

from intake.models import CHANNELS

TIPS = Counter(
    "hotline_tips",
    "Tips stored (a call, a text conversation, a web tip, a chat, an operator's log), "
    "by channel",
    ["channel"],
)
DELIVERIES = Counter(
    "hotline_deliveries",
    "Referral delivery tries by agency and outcome (delivered, failed), and referrals "
    "given up on after their last failed try (gave_up)",
    ["agency", "outcome"],
)
DEADLINE_BREACHES = Counter(
    "hotline_deadline_breaches",
    "Deadlines newly found passed by the deadline watch (each notified once), by "
    "subject: case, referral, question (an agency's, unanswered), emergency_1 and "
    "emergency_2 (re-pages)",
    ["subject"],
)

DELIVERY_OUTCOMES = ("delivered", "failed", "gave_up")
BREACH_SUBJECTS = ("case", "referral", "question", "emergency_1", "emergency_2")



def start_series(agencies: list[str]) -> None:
    """Make every known series exist at 0 (a rate over a series that appears with its
    first event misses that event); called at start-up, not at import."""
    for channel in CHANNELS:
        TIPS.labels(channel=channel)
    for subject in BREACH_SUBJECTS:
        DEADLINE_BREACHES.labels(subject=subject)
    for agency in agencies:
        for outcome in DELIVERY_OUTCOMES:
            DELIVERIES.labels(agency=agency, outcome=outcome)


def count_delivery(agency: str, outcome: str) -> None:
    """One delivery try ended (``outcome`` one of DELIVERY_OUTCOMES)."""
    DELIVERIES.labels(agency=agency, outcome=outcome).inc()


def count_breaches(subjects: dict[str, int]) -> None:
    """The deadline watch committed these new breaches (subject -> how many)."""
    for subject, count in subjects.items():
        if count:
            DEADLINE_BREACHES.labels(subject=subject).inc(count)
