"""The case and referral lifecycles, kept as data: STATES and TRANSITIONS lists.

One class-level ``Machine`` per lifecycle (``model=None``): rows are never added to it,
so loading a row never resets its state (``add_model`` would set the initial state), and
nothing is held alive between requests. Triggering goes through
``machine.events[name].trigger(row, ctx=…)``, the cheapest path (transitions' FAQ).
The ``state`` column is the truth; ``auto_transitions=False`` so no ``to_<state>()``
bypasses the guards. A guard that fails records why on the context, and the caller
raises that error: a failed condition is never silently ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from transitions import EventData, Machine

from workflows.db import utcnow
from workflows.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound
from workflows.models import User
from workflows.vocabulary import DESK, SUPERVISOR

RESOLUTION_CODES = (
    "information_only",
    "no_indicators",
    "duplicate",
    "referred",
    "services_provided",
    "unable_to_contact",
    "caller_declined",
    "other",
)


@dataclass
class Context:
    """Who fires an event, why, with what; the guard that said no, if one did."""

    actor: User | None
    reason: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    now: datetime = field(default_factory=utcnow)
    plan: Any = None  # routing decision for submit_for_approval / escalate
    # Set when a referral event follows from a case event the actor was allowed to fire
    # (escalate queues without a supervisor; close and reject withdraw pending referrals).
    cascade: bool = False
    failure: DomainError | None = None
    catalogs: dict[str, Any] = field(default_factory=dict)  # the loaded config catalogs


class Guard:
    """A named condition; when it does not hold it leaves its error on the context."""

    def __init__(self, name: str, check: Callable[[Any, Context], bool], error: DomainError):
        self.name = name
        self._check = check
        self.error = error
        self.__name__ = name  # shown in the library's debug log

    def __call__(self, event: EventData) -> bool:
        ctx: Context = event.kwargs["ctx"]
        if self._check(event.model, ctx):
            return True
        ctx.failure = self.error
        return False

    def __repr__(self) -> str:
        return f"Guard({self.name})"


def role_in(roles: frozenset[str], what: str) -> Guard:
    """Only these roles may fire the event (else 403)."""
    return Guard(
        f"role_in_{'_'.join(sorted(roles))}",
        lambda _m, ctx: ctx.actor is not None and ctx.actor.role in roles,
        Forbidden(f"only {' or '.join(sorted(roles))} may {what}"),
    )


def needs_reason(what: str) -> Guard:
    """The event must say why (422 naming ``reason``)."""
    return Guard(
        "has_reason",
        lambda _m, ctx: bool(ctx.reason and ctx.reason.strip()),
        InvalidInput(f"{what} needs a reason", field="reason"),
    )


def _own_agency(referral: Any, ctx: Context) -> bool:
    actor = ctx.actor
    return (
        actor is not None
        and actor.role == "agency"
        and actor.agency_code is not None
        and actor.agency_code == referral.agency_code
    )


# Existence must not leak to another agency: the same 404 as for a missing referral.
OWN_AGENCY = Guard("own_agency", _own_agency, NotFound("no such referral"))
SYSTEM = Guard(
    "system", lambda _m, ctx: ctx.actor is None, Forbidden("only the delivery worker may do this")
)
SUPERVISOR_OR_SYSTEM = Guard(
    "supervisor_or_system",
    lambda _m, ctx: ctx.actor is None or ctx.actor.role == "supervisor",
    Forbidden("only a supervisor may do this"),
)
APPROVER = Guard(
    "approver",
    lambda _m, ctx: ctx.actor is None
    or ctx.actor.role == "supervisor"
    or (ctx.cascade and ctx.actor.role in DESK),
    Forbidden("only a supervisor may queue a referral (or anyone on the emergency path)"),
)
WITHDRAWER = Guard(
    "withdrawer",
    lambda _m, ctx: ctx.actor is not None
    and (ctx.actor.role == "supervisor" or (ctx.cascade and ctx.actor.role in DESK)),
    Forbidden("only a supervisor may withdraw a referral"),
)
HAS_SCREENING = Guard(
    "has_screening",
    lambda case, _ctx: bool(case.screening),
    Conflict("screen the case first (PUT …/screening)", field="screening"),
)
HAS_REFERRALS = Guard(
    "has_referrals",
    lambda _case, ctx: bool(ctx.plan is not None and ctx.plan.referrals),
    Conflict("the screening recommends no referral; close the case instead", field="event"),
)
HAS_RESOLUTION = Guard(
    "has_resolution_code",
    lambda _case, ctx: ctx.data.get("resolution_code") in RESOLUTION_CODES,
    InvalidInput(
        f"close needs resolution_code, one of {', '.join(RESOLUTION_CODES)}",
        field="resolution_code",
    ),
)
HAS_OUTCOME = Guard(
    "has_outcome",
    lambda _r, ctx: isinstance(ctx.data.get("outcome"), dict) and bool(ctx.data["outcome"]),
    InvalidInput("record_outcome needs an outcome object", field="outcome"),
)
HAS_TARGET_AGENCY = Guard(
    "has_target_agency",
    lambda referral, ctx: isinstance(ctx.data.get("agency"), str)
    and ctx.data["agency"] != referral.agency_code,
    InvalidInput("reroute needs another agency's code", field="agency"),
)

UNACKNOWLEDGED_EMERGENCY = Guard(
    "unacknowledged_emergency",
    lambda case, _ctx: case.emergency_at is not None and case.emergency_acknowledged_at is None,
    Conflict("this case has no unacknowledged emergency page", field="event"),
)

CASE_STATES = ["received", "screening", "awaiting_info", "pending_approval", "referred", "closed"]
OPEN_CASE_STATES = ("received", "screening", "awaiting_info", "pending_approval")

CASE_TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "start_screening", "source": "received", "dest": "screening",
     "conditions": [role_in(DESK, "screen")]},
    {"trigger": "request_info", "source": "screening", "dest": "awaiting_info",
     "conditions": [role_in(DESK, "ask for information"), needs_reason("request_info")]},
    {"trigger": "info_received", "source": "awaiting_info", "dest": "screening",
     "conditions": [role_in(DESK, "record information")]},
    {"trigger": "submit_for_approval", "source": "screening", "dest": "pending_approval",
     "conditions": [role_in(DESK, "submit for approval"), HAS_SCREENING, HAS_REFERRALS]},
    {"trigger": "approve", "source": "pending_approval", "dest": "referred",
     "conditions": [role_in(SUPERVISOR, "approve referrals")]},
    {"trigger": "reject", "source": "pending_approval", "dest": "screening",
     "conditions": [role_in(SUPERVISOR, "reject referrals"), needs_reason("reject")]},
    {"trigger": "escalate", "source": ["received", "screening", "awaiting_info",
                                       "pending_approval"], "dest": "referred",
     "conditions": [role_in(DESK, "escalate an emergency"), needs_reason("escalate"),
                    HAS_REFERRALS]},
    {"trigger": "close", "source": ["received", "screening", "awaiting_info"], "dest": "closed",
     "conditions": [role_in(DESK, "close a case"), HAS_RESOLUTION]},
    {"trigger": "close", "source": ["pending_approval", "referred"], "dest": "closed",
     "conditions": [role_in(SUPERVISOR, "close a referred case"), HAS_RESOLUTION]},
    {"trigger": "reopen", "source": "closed", "dest": "screening",
     "conditions": [role_in(SUPERVISOR, "reopen a case"), needs_reason("reopen")]},
    # Internal (dest None): the page is answered, the re-pages stop; audited like the rest.
    {"trigger": "acknowledge_emergency", "source": CASE_STATES[:-1], "dest": None,
     "conditions": [role_in(SUPERVISOR, "acknowledge an emergency page"),
                    UNACKNOWLEDGED_EMERGENCY]},
]

# Every event of the case lifecycle, in definition order (the API's enum of ``event``).
CASE_EVENTS = tuple(dict.fromkeys(t["trigger"] for t in CASE_TRANSITIONS))

REFERRAL_STATES = [
    "pending", "queued", "sent", "acknowledged", "accepted", "declined", "failed", "withdrawn",
]
# Referrals an agency has not yet taken up: their deadlines are still running.
AWAITING_AGENCY = ("pending", "queued", "sent", "failed")
ACTIVE_REFERRAL_STATES = ("pending", "queued", "sent", "acknowledged", "accepted", "failed")

REFERRAL_TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "queue", "source": "pending", "dest": "queued", "conditions": [APPROVER]},
    {"trigger": "mark_sent", "source": "queued", "dest": "sent", "conditions": [SYSTEM]},
    {"trigger": "fail", "source": "queued", "dest": "failed", "conditions": [SYSTEM]},
    {"trigger": "retry", "source": "failed", "dest": "queued",
     "conditions": [SUPERVISOR_OR_SYSTEM]},
    {"trigger": "acknowledge", "source": "sent", "dest": "acknowledged",
     "conditions": [OWN_AGENCY]},
    {"trigger": "accept", "source": ["sent", "acknowledged"], "dest": "accepted",
     "conditions": [OWN_AGENCY]},
    {"trigger": "decline", "source": ["sent", "acknowledged"], "dest": "declined",
     "conditions": [OWN_AGENCY, needs_reason("decline")]},
    # Internal transitions (dest None): the state stays, the event is still audited.
    {"trigger": "request_info", "source": ["sent", "acknowledged", "accepted"], "dest": None,
     "conditions": [OWN_AGENCY, needs_reason("request_info")]},
    {"trigger": "record_outcome", "source": "accepted", "dest": None,
     "conditions": [OWN_AGENCY, HAS_OUTCOME]},
    {"trigger": "withdraw", "source": ["pending", "queued", "sent", "acknowledged", "failed"],
     "dest": "withdrawn", "conditions": [WITHDRAWER, needs_reason("withdraw")]},
    {"trigger": "reroute", "source": "declined", "dest": None,
     "conditions": [role_in(SUPERVISOR, "re-route a referral"), HAS_TARGET_AGENCY]},
]
# What staff may fire on one referral (API and case page); "approve" queues a pending
# one (a re-route), under the same APPROVER guard as a case's approval.
STAFF_REFERRAL_EVENTS = {"reroute": "reroute", "retry": "retry", "withdraw": "withdraw",
                         "approve": "queue"}


def _machine(name: str, states: list[str], transitions: list[dict[str, Any]]) -> Machine:
    return Machine(
        model=None,
        states=states,
        transitions=transitions,
        initial=states[0],
        auto_transitions=False,
        model_attribute="state",
        send_event=True,
        name=name,
    )


case_machine = _machine("case", CASE_STATES, CASE_TRANSITIONS)
referral_machine = _machine("referral", REFERRAL_STATES, REFERRAL_TRANSITIONS)


def allowed_events(machine: Machine, state: str) -> list[str]:
    """Events the state allows (guards aside), in definition order."""
    return [name for name, event in machine.events.items() if state in event.transitions]


def fire(machine: Machine, row: Any, event: str, ctx: Context) -> str:
    """Run one event on one row; returns the state it left. Raises the guard's error.

    The row is only read and written through its ``state`` attribute, inside the
    caller's database transaction: a later exception rolls the state back with it.
    """
    state = row.state
    if event not in machine.events:
        raise InvalidInput(f"unknown event {event!r}", field="event")
    allowed = allowed_events(machine, state)
    if event not in allowed:
        raise Conflict(
            f"{event} is not allowed in state {state}", field="event", allowed=allowed, state=state
        )
    if not machine.events[event].trigger(row, ctx=ctx):
        raise ctx.failure or Conflict(f"{event} was refused in state {state}", field="event")
    return state


def diagram(name: str) -> str:
    """Mermaid source for a lifecycle, generated from the same STATES/TRANSITIONS data."""
    from transitions.extensions import GraphMachine

    states, transitions = {
        "case": (CASE_STATES, CASE_TRANSITIONS),
        "referral": (REFERRAL_STATES, REFERRAL_TRANSITIONS),
    }[name]
    plain = [{k: v for k, v in t.items() if k != "conditions"} for t in transitions]
    # A throwaway machine that is its own model: only its drawing is used.
    graph = GraphMachine(
        states=states,
        transitions=plain,
        initial=states[0],
        auto_transitions=False,
        graph_engine="mermaid",
        title=f"{name} lifecycle",
    )
    # Drawn straight from the machine's graph class, so no state is styled "active".
    return str(graph.graph_cls(graph).get_graph(title=f"{name} lifecycle").draw(None))
