"""Test rows from factory_boy factories, with realistic defaults (issue 12).

A test names only what its assertion is about (``CaseFactory(state="closed")``); the
factory fills in the rest the way the domain would (a reference, a deadline from the
priority, a legal basis for a referral). Rows go through a plain ``session.add`` and a
flush: no lifecycle, no audit event. Where a test is about what the domain functions do,
it drives them (tests/flows.py) instead.

The session: the ``db_session`` fixture binds every factory to itself for the test;
code holding another session (``runtime.session()``) names it:
``UserFactory.in_session(session, role="supervisor")``. Persistence is a flush, not a
commit: the row has its id at once, and it is committed by the test's own commit or
``transaction(session)``, so a factory inside a transaction never ends it early.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import factory
import factory.random
from factory.alchemy import SQLAlchemyModelFactory
from sqlalchemy.orm import Session

from intake.models import Signal, SmsConversation, TipMessage
from referrals.models import Notification
from workflows.cases import new_reference
from workflows.db import utcnow
from workflows.deadlines import DEFAULT_CASE_DEADLINES
from workflows.models import PRIORITY_RANK, Case, Priority, PublishedStatistics, Referral, User
from workflows.outbox import OutboxMessage
from workflows.pii import lookup_hash
from workflows.providers import ServiceProvider

# The same fake names, narratives and places on every run (reseeded per test too).
SEED = "hotline-tests"

_sessions: list[Session] = []


def _current_session() -> Session:
    if not _sessions:
        raise RuntimeError(
            "no session for the factories: ask for the db_session fixture, or use "
            "Factory.in_session(session, ...)"
        )
    return _sessions[-1]


@contextmanager
def bound_to(session: Session) -> Iterator[Session]:
    """Every factory creates its rows in ``session`` inside the block (nested blocks win)."""
    _sessions.append(session)
    try:
        yield session
    finally:
        _sessions.pop()


def reseed() -> None:
    """Faker and factory_boy's random from a fixed seed: a failing test fails the same way."""
    factory.random.reseed_random(SEED)


reseed()


def fictional_phone(n: int) -> str:
    """+1 202-555-01xx: the range set aside for fiction, never a real subscriber."""
    return f"+120255501{n % 100:02d}"


class BaseFactory(SQLAlchemyModelFactory):
    """Flush into the bound session (see the module docstring)."""

    class Meta:
        abstract = True
        # Read at each create: a session set on a base factory's _meta would not reach
        # its subclasses, whose options were copied when they were defined.
        sqlalchemy_session_factory = _current_session
        sqlalchemy_session_persistence = "flush"

    @classmethod
    def in_session(cls, session: Session, **kwargs: Any) -> Any:
        """Create one row (and its sub-rows) in ``session`` rather than the bound one."""
        with bound_to(session):
            return cls(**kwargs)


class UserFactory(BaseFactory):
    """A staff member without a password (they act through the domain, not a login);
    one with that user name already there is reused, as the flows' helpers did."""

    class Meta:
        model = User
        sqlalchemy_get_or_create = ("username",)

    class Params:
        agency = factory.Trait(role="agency", agency_code="FBI")

    username = factory.Sequence(lambda n: f"user{n}")
    role = "operator"
    agency_code = None


class CaseFactory(BaseFactory):
    """A case as ``open_case`` leaves it (reference, deadline from its priority), in any
    state; no audit event and no signal unless the test adds them."""

    class Meta:
        model = Case

    class Params:
        closed = factory.Trait(
            state="closed", deadline=None, closed_at=factory.LazyFunction(utcnow)
        )

    reference = factory.LazyFunction(new_reference)
    state = "received"
    priority = Priority.ROUTINE.value
    priority_rank = factory.LazyAttribute(lambda o: PRIORITY_RANK[Priority(o.priority)])
    created_at = factory.LazyFunction(utcnow)
    deadline = factory.LazyAttribute(
        lambda o: o.created_at + DEFAULT_CASE_DEADLINES[o.priority]
    )
    incident_state = "TX"


class SignalFactory(BaseFactory):
    """One contact on a case, per channel: ``SignalFactory(voice=True)``,
    ``SignalFactory(sms=True)``, ``SignalFactory(operator=True)``; web by default."""

    class Meta:
        model = Signal

    class Params:
        voice = factory.Trait(
            channel="voice",
            call_sid=factory.Sequence(lambda n: f"CA{n:032x}"),
            from_phone=factory.Sequence(fictional_phone),
            call_status="completed",
        )
        sms = factory.Trait(channel="sms", from_phone=factory.Sequence(fictional_phone))
        whatsapp = factory.Trait(
            channel="whatsapp",
            from_phone=factory.Sequence(lambda n: f"whatsapp:{fictional_phone(n)}"),
        )
        operator = factory.Trait(channel="operator", caller_type="community_member")

    case = factory.SubFactory(CaseFactory)
    channel = "web"
    language = "en"
    # Lorem words: no number, name or address that could link it to another case.
    narrative = factory.Faker("sentence", nb_words=10)


class TipMessageFactory(BaseFactory):
    """A tipster's follow-up message on a case."""

    class Meta:
        model = TipMessage

    case = factory.SubFactory(CaseFactory)
    direction = "in"
    author = "tipster"
    body = factory.Faker("sentence", nb_words=8)


class ReferralFactory(BaseFactory):
    """A referral of a case to an agency, in any state, on a mandatory rule's basis
    unless the test gives another."""

    class Meta:
        model = Referral

    case = factory.SubFactory(CaseFactory)
    agency_code = "FBI"
    state = "pending"
    mandatory = True
    rule = "minor_commercial_sex"
    reason = factory.LazyAttribute(lambda o: f"{o.agency_code}: a minor in commercial sex")
    legal_basis = factory.LazyAttribute(lambda o: {"type": "mandatory", "rule": o.rule})
    idempotency_key = factory.Sequence(lambda n: f"referral-{n}")
    send_by = factory.LazyFunction(lambda: utcnow() + timedelta(hours=24))
    deadline = factory.SelfAttribute("send_by")


class SmsConversationFactory(BaseFactory):
    """A texter's open question sequence, on an SMS signal (a new one unless given)."""

    class Meta:
        model = SmsConversation

    class Params:
        phone = factory.Sequence(fictional_phone)
        signal = factory.SubFactory(SignalFactory, sms=True)

    phone_hash = factory.LazyAttribute(lambda o: lookup_hash(o.phone))
    case_id = factory.SelfAttribute("signal.case_id")
    signal_id = factory.SelfAttribute("signal.id")


class NotificationFactory(BaseFactory):
    """A text the service sends, still pending."""

    class Meta:
        model = Notification

    kind = "tipster_reply"
    channel = "sms"
    recipient = factory.Sequence(fictional_phone)
    recipient_hash = factory.LazyAttribute(lambda o: lookup_hash(o.recipient))
    body = factory.Faker("sentence", nb_words=8)


class OutboxMessageFactory(BaseFactory):
    """Work the outbox has yet to hand to the queue."""

    class Meta:
        model = OutboxMessage

    kind = "notify"
    payload = factory.LazyFunction(dict)


class ServiceProviderFactory(BaseFactory):
    """One service of an HSDS provider."""

    class Meta:
        model = ServiceProvider

    hsds_id = factory.Sequence(lambda n: f"hsds-{n}")
    name = factory.LazyAttribute(lambda o: f"{o.organization} shelter")
    organization = factory.Faker("company")
    email = factory.Faker("email", domain="example.org")
    service_types = factory.LazyFunction(lambda: ["shelter"])
    city = factory.Faker("city")
    state = "TX"


class PublishedStatisticsFactory(BaseFactory):
    """A published period's figures (empty unless given)."""

    class Meta:
        model = PublishedStatistics

    period = "2020"
    counts = factory.LazyFunction(dict)
    figures = factory.LazyFunction(dict)
