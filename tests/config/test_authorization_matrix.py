"""Authorization matrix: every endpoint of the app by every role, table-driven.

A role listed as allowed must get past authorization (a 2xx/3xx answer, or a domain
409/422 when the request was fine but the state did not allow it); every other role must
be refused: 401 (API, nobody signed in), a redirect to the login page (pages, nobody
signed in), 403 (wrong role), or 404 where the table says ``hidden`` (an agency asking
for another agency's referral, or for a case: existence never leaks to agencies).
A new endpoint missing from the table fails ``test_every_endpoint_is_in_the_table``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select

from intake import services
from tests.factories import (
    PublishedStatisticsFactory,
    ServiceProviderFactory,
    UserFactory,
)
from tests.page_clients import csrf_token
from workflows.accounts import create_token
from workflows.db import transaction
from workflows.models import Case

ROLES = ("anonymous", "operator", "supervisor", "admin", "researcher", "fbi", "ice", "hhs")
EVERYONE = frozenset(ROLES)
SIGNED_IN = EVERYONE - {"anonymous"}
STAFF = frozenset({"operator", "supervisor", "admin"})
DESK = frozenset({"operator", "supervisor"})
SUPERVISORS = frozenset({"supervisor", "admin"})
AGENCIES = frozenset({"fbi", "ice", "hhs"})
# The case API answers 404 to anyone outside the desk: existence never leaks.
NOT_STAFF = AGENCIES | {"researcher"}
RESEARCH = frozenset({"researcher", "supervisor", "admin"})  # statistics, never a case
DOMAIN_REFUSALS = {409, 422}
CHAT_READERS = DESK | {"anonymous"}  # the tipster (token) and the desk (bearer)


@dataclass
class World:
    """What each request needs: ids of a case referred to FBI, a tip, people and clients."""

    case_id: int
    tip_case_id: int
    tip_version: int
    referral_id: int
    version: int
    reference: str
    passphrase: str
    spare_token_prefix: str
    users: dict[str, Any]
    clients: dict[str, Any]
    tokens: dict[str, str]
    chat_id: int = 0
    provider_id: int = 0
    chat_token: str = ""
    items: dict[str, int] = field(default_factory=dict)  # case file items the operator entered

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"} if role in self.tokens else {}


@dataclass(frozen=True)
class Rule:
    """One endpoint's row: how to call it, who may, who gets 404."""

    method: str
    url: Callable[[World], str]
    allowed: frozenset[str]
    hidden: frozenset[str] = frozenset()
    body: Callable[[World, str], dict[str, Any]] | None = None
    page: bool = False  # a server-rendered page (session cookie, form body, CSRF token)
    login_redirect_ok: bool = False  # logging out lands on the login page: not a refusal
    ok: frozenset[int] = field(default_factory=frozenset)  # extra statuses that mean "allowed"
    chat_token: bool = False  # also send the chat's own X-Chat-Token (the tipster's key)


def _api(method: str, url: Callable[[World], str], allowed: frozenset[str], **kw: Any) -> Rule:
    return Rule(method, url, allowed, **kw)


def _page(method: str, url: Callable[[World], str], allowed: frozenset[str], **kw: Any) -> Rule:
    # Pages an agency may not open answer it 404, as the API does (config.auth).
    kw.setdefault("hidden", AGENCIES - allowed)
    return Rule(method, url, allowed, page=True, **kw)


def _call_log(_w: World, _role: str) -> dict[str, Any]:
    return {"caller_type": "victim", "narrative": "matrix"}


MINOR = {
    "facts": {"victim_age": 16, "commercial_sex": True, "trafficking_type": "sex"},
    "indicators": ["under_18_commercial_sex"],
    "consent": {"law_enforcement": None, "services": None, "callback": None},
}

TABLE: dict[str, Rule] = {
    # Probes, the document, static files: anyone.
    "healthz": _api("GET", lambda w: "/healthz", EVERYONE),
    "readyz": _api("GET", lambda w: "/readyz", EVERYONE),
    "openapi.spec": _api("GET", lambda w: "/api/v1/openapi.json", EVERYONE),
    # Only METRICS_TOKEN or an address in METRICS_ALLOW (tests/config/test_metrics.py):
    # no user's role opens it, and it answers 404 as if it were not there.
    "metrics": _api("GET", lambda w: "/metrics", frozenset(), hidden=EVERYONE),
    "static": _page("GET", lambda w: "/static/favicon.svg", EVERYONE),
    "favicon": _page("GET", lambda w: "/favicon.ico", EVERYONE),
    # The public tip API: anyone (the passphrase is the key to a tip).
    "intake_api.submit_tip": _api(
        "POST", lambda w: "/api/v1/tips", EVERYONE, body=lambda w, r: {"narrative": "x"}
    ),
    "intake_api.read_tip": _api("GET", lambda w: f"/api/v1/tips/{w.reference}", EVERYONE),
    "intake_api.add_tip_message": _api(
        "POST",
        lambda w: f"/api/v1/tips/{w.reference}/messages",
        EVERYONE,
        body=lambda w, r: {"body": "more"},
    ),
    # Staff case API; agencies get 404 for any case.
    "case_api.log_call": _api("POST", lambda w: "/api/v1/calls", DESK, body=_call_log),
    "case_api.list_cases": _api("GET", lambda w: "/api/v1/cases", STAFF, hidden=NOT_STAFF),
    "case_api.show_case": _api(
        "GET", lambda w: f"/api/v1/cases/{w.case_id}", STAFF, hidden=AGENCIES
    ),
    "security_api.case_access_log": _api(
        "GET", lambda w: f"/api/v1/cases/{w.case_id}/access-log", SUPERVISORS, hidden=AGENCIES
    ),
    "case_api.put_screening": _api(
        "PUT",
        lambda w: f"/api/v1/cases/{w.case_id}/screening",
        DESK,
        hidden=NOT_STAFF,
        body=lambda w, r: MINOR,
    ),
    "case_api.immigration_relief": _api(
        "PUT",
        lambda w: f"/api/v1/cases/{w.case_id}/immigration-relief",
        DESK,
        hidden=NOT_STAFF,
        body=lambda w, r: {"protected": False, "version": w.version},
    ),
    "case_api.post_event": _api(
        "POST",
        lambda w: f"/api/v1/cases/{w.tip_case_id}/events",
        DESK,
        hidden=AGENCIES,
        body=lambda w, r: {"event": "start_screening", "version": w.tip_version},
    ),
    "case_api.assign": _api(
        "POST",
        lambda w: f"/api/v1/cases/{w.case_id}/assign",
        DESK,
        hidden=NOT_STAFF,
        body=lambda w, r: {"assignee": w.users["operator"].username, "version": w.version},
    ),
    "case_api.reply": _api(
        "POST",
        lambda w: f"/api/v1/cases/{w.case_id}/messages",
        DESK,
        hidden=NOT_STAFF,
        body=lambda w, r: {"body": "a reply"},
    ),
    "case_api.post_referral_event": _api(
        "POST",
        lambda w: f"/api/v1/cases/{w.case_id}/referrals/{w.referral_id}/events",
        frozenset({"supervisor"}),
        hidden=NOT_STAFF,
        body=lambda w, r: {"event": "withdraw", "reason": "matrix"},
    ),
    # Packet updates and consent withdrawal: the desk (nothing to send here: a 409).
    "case_api.post_packet_update": _api(
        "POST",
        lambda w: f"/api/v1/cases/{w.case_id}/referrals/{w.referral_id}/packet-update",
        DESK,
        hidden=NOT_STAFF,
        body=lambda w, r: {"decision": "not_now", "digest": "0" * 64},
    ),
    "case_api.post_consent_withdrawal": _api(
        "POST",
        lambda w: f"/api/v1/cases/{w.case_id}/consent/withdraw",
        DESK,
        hidden=NOT_STAFF,
        body=lambda w, r: {"scope": "callback"},
    ),
    # The agency API: one's own referrals only; another agency's answer 404.
    "referrals_api.list_referrals": _api("GET", lambda w: "/api/v1/agency/referrals", AGENCIES),
    "referrals_api.show_referral": _api(
        "GET",
        lambda w: f"/api/v1/agency/referrals/{w.referral_id}",
        frozenset({"fbi"}),
        hidden=frozenset({"ice", "hhs"}),
    ),
    "referrals_api.referral_event": _api(
        "POST",
        lambda w: f"/api/v1/agency/referrals/{w.referral_id}/events",
        frozenset({"fbi"}),
        hidden=frozenset({"ice", "hhs"}),
        body=lambda w, r: {"event": "acknowledge"},
    ),
    # The referral's thread (issue 13): the agency its own; the desk answers, staff read.
    "referrals_api.show_thread": _api(
        "GET",
        lambda w: f"/api/v1/agency/referrals/{w.referral_id}/thread",
        frozenset({"fbi"}),
        hidden=frozenset({"ice", "hhs"}),
    ),
    "referrals_api.post_thread": _api(
        "POST",
        lambda w: f"/api/v1/agency/referrals/{w.referral_id}/thread",
        frozenset({"fbi"}),
        hidden=frozenset({"ice", "hhs"}),
        body=lambda w, r: {"body": "matrix question"},
    ),
    "case_api.show_referral_thread": _api(
        "GET",
        lambda w: f"/api/v1/cases/{w.case_id}/referrals/{w.referral_id}/thread",
        STAFF,
        hidden=NOT_STAFF,
    ),
    "case_api.answer_referral_thread": _api(
        "POST",
        lambda w: f"/api/v1/cases/{w.case_id}/referrals/{w.referral_id}/thread",
        DESK,
        hidden=NOT_STAFF,
        body=lambda w, r: {"body": "matrix answer"},
    ),
    # Research: de-identified extracts only.
    "research_api.research_export": _api(
        "GET", lambda w: "/api/v1/exports/research?from=2026-01-01&to=2026-01-31", RESEARCH
    ),
    "research_pages.start": _page("GET", lambda w: "/research/", RESEARCH),
    "research_pages.export_download": _page(
        "GET", lambda w: "/research/export?from=2026-01-01&to=2026-01-31", RESEARCH
    ),
    # Admin API.
    "security_api.revoke_tokens": _api(
        "DELETE", lambda w: f"/api/v1/tokens/{w.spare_token_prefix}", frozenset({"admin"})
    ),
    # Public pages: anyone.
    "public_pages.home": _page("GET", lambda w: "/", EVERYONE),
    "public_pages.tip_form": _page("GET", lambda w: "/tip", EVERYONE),
    "public_pages.tip_submit": _page(
        "POST", lambda w: "/tip", EVERYONE, body=lambda w, r: {"narrative": "a tip"}
    ),
    "public_pages.follow_up": _page("GET", lambda w: "/follow-up", EVERYONE),
    "public_pages.follow_up_open": _page(
        "POST",
        lambda w: "/follow-up",
        EVERYONE,
        body=lambda w, r: {"reference": w.reference, "passphrase": w.passphrase},
    ),
    "public_pages.follow_up_add": _page(
        "POST",
        lambda w: "/follow-up/messages",
        EVERYONE,
        body=lambda w, r: {"reference": w.reference, "passphrase": w.passphrase, "body": "m"},
    ),
    "public_pages.statistics": _page("GET", lambda w: "/statistics", EVERYONE),
    "public_pages.statistics_csv": _page("GET", lambda w: "/statistics/2020.csv", EVERYONE),
    # Logging in and out: anyone may try (a wrong password is 401, not a refusal).
    "login.login": _page("GET", lambda w: "/login", EVERYONE),
    "login.login_submit": _page(
        "POST",
        lambda w: "/login",
        EVERYONE,
        ok=frozenset({401}),
        body=lambda w, r: {"username": "nobody", "password": "wrong password!"},
    ),
    "login.logout": _page("POST", lambda w: "/logout", EVERYONE, login_redirect_ok=True),
    "login.start": _page("GET", lambda w: "/start", SIGNED_IN),
    # Staff pages.
    "operator_pages.start": _page("GET", lambda w: "/operator/", DESK),
    "operator_pages.new_call": _page("GET", lambda w: "/operator/calls/new", DESK),
    "operator_pages.create_call": _page(
        "POST",
        lambda w: "/operator/calls/new",
        DESK,
        body=lambda w, r: {"caller_type": "victim", "narrative": "matrix", "language": "en"},
    ),
    "operator_pages.preview": _page(
        "POST", lambda w: "/operator/calls/preview", DESK, body=lambda w, r: {"narrative": "x"}
    ),
    "operator_pages.screen_again": _page(
        "GET", lambda w: f"/cases/{w.tip_case_id}/screening", DESK
    ),
    "operator_pages.save_screening": _page(
        "POST",
        lambda w: f"/cases/{w.tip_case_id}/screening",
        DESK,
        body=lambda w, r: {"trafficking_type": "labor", "version": str(w.tip_version)},
    ),
    "case_pages.show": _page("GET", lambda w: f"/cases/{w.case_id}", STAFF),
    "case_pages.case_event": _page(
        "POST",
        lambda w: f"/cases/{w.tip_case_id}/events",
        DESK,
        body=lambda w, r: {"event": "start_screening", "version": str(w.tip_version)},
    ),
    "case_pages.reply": _page(
        "POST", lambda w: f"/cases/{w.case_id}/reply", DESK, body=lambda w, r: {"body": "hi"}
    ),
    "case_pages.immigration_relief": _page(
        "POST",
        lambda w: f"/cases/{w.case_id}/immigration-relief",
        DESK,
        body=lambda w, r: {"protected": "no", "version": str(w.version)},
    ),
    "case_pages.assign": _page(
        "POST",
        lambda w: f"/cases/{w.case_id}/assign",
        frozenset({"supervisor"}),
        body=lambda w, r: {"assignee": w.users["operator"].username, "version": str(w.version)},
    ),
    "case_pages.referral_event": _page(
        "POST",
        lambda w: f"/referrals/{w.referral_id}/events",
        frozenset({"supervisor"}),
        body=lambda w, r: {"event": "withdraw", "reason": "matrix"},
    ),
    "case_pages.answer_agency": _page(
        "POST",
        lambda w: f"/referrals/{w.referral_id}/thread",
        DESK,
        body=lambda w, r: {"body": "matrix answer"},
    ),
    "case_pages.packet_update": _page(
        "POST",
        lambda w: f"/cases/{w.case_id}/referrals/{w.referral_id}/packet-update",
        DESK,
        body=lambda w, r: {"decision": "not_now", "digest": "0" * 64},
    ),
    "case_pages.consent_withdraw": _page(
        "POST", lambda w: f"/cases/{w.case_id}/consent/withdraw", DESK,
        body=lambda w, r: {"scope": "callback"},
    ),
    "supervisor_pages.queues": _page("GET", lambda w: "/supervisor/", frozenset({"supervisor"})),
    "supervisor_pages.failed": _page(
        "GET", lambda w: "/supervisor/failed", frozenset({"supervisor"})
    ),
    "dashboard_pages.dashboard": _page("GET", lambda w: "/supervisor/dashboard", SUPERVISORS),
    "dashboard_pages.chart_csv": _page(
        "GET", lambda w: "/supervisor/dashboard/agencies.csv", SUPERVISORS
    ),
    "admin_pages.start": _page("GET", lambda w: "/admin/", frozenset({"admin"})),
    "admin_pages.providers": _page("GET", lambda w: "/admin/providers", frozenset({"admin"})),
    "admin_pages.new_provider": _page(
        "GET", lambda w: "/admin/providers/new", frozenset({"admin"})
    ),
    "admin_pages.create_provider": _page(
        "POST",
        lambda w: "/admin/providers/new",
        frozenset({"admin"}),
        body=lambda w, r: {"name": "matrix shelter", "service_types": "shelter"},
    ),
    "admin_pages.edit_provider_page": _page(
        "GET", lambda w: f"/admin/providers/{w.provider_id}", frozenset({"admin"})
    ),
    "admin_pages.update_provider": _page(
        "POST",
        lambda w: f"/admin/providers/{w.provider_id}",
        frozenset({"admin"}),
        body=lambda w, r: {"name": "matrix shelter", "service_types": "shelter"},
    ),
    # Agency pages: one's own referrals only.
    "agency_pages.inbox": _page("GET", lambda w: "/agency/", AGENCIES),
    "agency_pages.show": _page(
        "GET",
        lambda w: f"/agency/referrals/{w.referral_id}",
        frozenset({"fbi"}),
        hidden=frozenset({"ice", "hhs"}),
    ),
    "agency_pages.answer": _page(
        "POST",
        lambda w: f"/agency/referrals/{w.referral_id}/events",
        frozenset({"fbi"}),
        hidden=frozenset({"ice", "hhs"}),
        body=lambda w, r: {"event": "acknowledge"},
    ),
    "agency_pages.ask": _page(
        "POST",
        lambda w: f"/agency/referrals/{w.referral_id}/thread",
        frozenset({"fbi"}),
        hidden=frozenset({"ice", "hhs"}),
        body=lambda w, r: {"body": "matrix question"},
    ),
    # Live chat, the tipster's API: the chat's token opens it; staff use their bearer
    # token; anyone else holding a bearer token (an agency, an admin) learns nothing.
    "chat_api.open_chat": _api(
        "POST", lambda w: "/api/v1/chats", EVERYONE, body=lambda w, r: {"language": "en"}
    ),
    "chat_api.get_messages": _api(
        "GET",
        lambda w: f"/api/v1/chats/{w.chat_id}/messages",
        CHAT_READERS,
        hidden=EVERYONE - CHAT_READERS,
        chat_token=True,
    ),
    "chat_api.post_message": _api(
        "POST",
        lambda w: f"/api/v1/chats/{w.chat_id}/messages",
        CHAT_READERS,
        hidden=EVERYONE - CHAT_READERS,
        chat_token=True,
        body=lambda w, r: {"body": "hello"},
    ),
    "chat_api.end_chat": _api(
        "POST",
        lambda w: f"/api/v1/chats/{w.chat_id}/end",
        CHAT_READERS,
        hidden=EVERYONE - CHAT_READERS,
        chat_token=True,
        body=lambda w, r: {},
    ),
    "chat_staff_api.chat_line": _api("GET", lambda w: "/api/v1/chats", DESK),
    "chat_staff_api.take": _api("POST", lambda w: f"/api/v1/chats/{w.chat_id}/take", DESK),
    # The chat page: its HttpOnly cookie is the key; without it nobody opens a chat.
    "chat_pages.chat_start": _page("GET", lambda w: "/chat", EVERYONE),
    "chat_pages.chat_open": _page(
        "POST", lambda w: "/chat", EVERYONE, body=lambda w, r: {"body": "hello"}
    ),
    "chat_pages.chat_room": _page(
        "GET", lambda w: f"/chat/{w.chat_id}", frozenset(), hidden=EVERYONE
    ),
    "chat_pages.chat_poll": _page(
        "GET", lambda w: f"/chat/{w.chat_id}/messages", frozenset(), hidden=EVERYONE
    ),
    "chat_pages.chat_send": _page(
        "POST",
        lambda w: f"/chat/{w.chat_id}/send",
        frozenset(),
        hidden=EVERYONE,
        body=lambda w, r: {"body": "hi"},
    ),
    "chat_pages.chat_end": _page(
        "POST", lambda w: f"/chat/{w.chat_id}/end", frozenset(), hidden=EVERYONE
    ),
    # The desk's chat line and rooms.
    "chat_desk.line": _page("GET", lambda w: "/operator/chats/", DESK),
    "chat_desk.take_page": _page("POST", lambda w: f"/operator/chats/{w.chat_id}/take", DESK),
    "chat_desk.room": _page("GET", lambda w: f"/operator/chats/{w.chat_id}", DESK),
    "chat_desk.send": _page(
        "POST",
        lambda w: f"/operator/chats/{w.chat_id}/send",
        DESK,
        body=lambda w, r: {"body": "hello"},
    ),
    "chat_desk.end": _page("POST", lambda w: f"/operator/chats/{w.chat_id}/end", DESK),
    # The service directory and service referrals: the desk. A referral on a case
    # without the services consent is a domain refusal (409), not an authorization one.
    "service_api.list_services": _api("GET", lambda w: "/api/v1/services", DESK),
    "service_api.create_service_referral": _api(
        "POST",
        lambda w: f"/api/v1/cases/{w.case_id}/service-referrals",
        DESK,
        body=lambda w, r: {"service_id": w.provider_id, "reason": "a bed"},
    ),
    "service_api.list_service_referrals": _api(
        "GET", lambda w: f"/api/v1/cases/{w.case_id}/service-referrals", DESK
    ),
    # A provider's page: the signed link is the only key; a wrong one opens nothing.
    "provider_pages.show": _page(
        "GET", lambda w: "/provider/r/not-a-signed-link", frozenset(), hidden=frozenset()
    ),
    "provider_pages.answer": _page(
        "POST",
        lambda w: "/provider/r/not-a-signed-link",
        frozenset(),
        hidden=frozenset(),
        body=lambda w, r: {"answer": "accept"},
    ),
    # Drafts and keep-alive of staff forms: whoever is signed in, for their own forms.
    "kept_forms.save": _page(
        "POST",
        lambda w: "/desk/drafts",
        SIGNED_IN,
        hidden=frozenset(),
        body=lambda w, r: {
            "_form_key": "matrix",
            "_back": "/start",
            "_desk_user": str(w.users[r].id) if r in w.users else "",
        },
    ),
    "kept_forms.discard": _page(
        "POST",
        lambda w: "/desk/drafts/discard",
        EVERYONE,
        body=lambda w, r: {"_form_key": "matrix", "_back": "/start"},
    ),
    "kept_forms.alive": _page("POST", lambda w: "/desk/alive", SIGNED_IN, hidden=frozenset()),
}
# The case file: the desk adds and edits (operators what they entered), supervisors delete.
CASEFILE_BODIES: dict[str, dict[str, Any]] = {
    "victims": {"age": 20},
    "subjects": {"kind": "phone", "value": "+1 214 555 0134"},
    "locations": {"city": "Dallas", "state": "TX"},
    "notes": {"body": "matrix"},
}
for _item, _body in CASEFILE_BODIES.items():
    _one = _item.rstrip("s")
    TABLE[f"casefile_api.add_{_one}"] = _api(
        "POST", (lambda i: lambda w: f"/api/v1/cases/{w.case_id}/{i}")(_item), DESK,
        hidden=NOT_STAFF, body=(lambda b: lambda w, r: b)(_body),
    )
    TABLE[f"casefile_api.edit_{_one}"] = _api(
        "PATCH",
        (lambda i: lambda w: f"/api/v1/cases/{w.case_id}/{i}/{w.items[i]}")(_item),
        DESK, hidden=NOT_STAFF, body=(lambda b: lambda w, r: b)(_body),
    )
    TABLE[f"casefile_api.delete_{_one}"] = _api(
        "DELETE",
        (lambda i: lambda w: f"/api/v1/cases/{w.case_id}/{i}/{w.items[i]}")(_item),
        frozenset({"supervisor"}), hidden=NOT_STAFF,
    )
TABLE["casefile_api.search"] = _api(
    "GET", lambda w: "/api/v1/search?phone=2025550143", STAFF, hidden=NOT_STAFF
)
TABLE["casefile_pages.add"] = _page(
    "POST", lambda w: f"/cases/{w.case_id}/file/notes", DESK, body=lambda w, r: {"body": "p"}
)
TABLE["casefile_pages.edit"] = _page(
    "POST", lambda w: f"/cases/{w.case_id}/file/notes/{w.items['notes']}", DESK,
    body=lambda w, r: {"body": "edited"},
)
TABLE["casefile_pages.remove"] = _page(
    "POST", lambda w: f"/cases/{w.case_id}/file/notes/{w.items['notes']}/delete",
    frozenset({"supervisor"}),
)
TABLE["casefile_pages.merge"] = _page(
    "POST", lambda w: f"/cases/{w.tip_case_id}/merge", frozenset({"supervisor"}),
    body=lambda w, r: {"into": str(w.case_id)},
)
TABLE["casefile_api.merge"] = _api(
    "POST", lambda w: f"/api/v1/cases/{w.tip_case_id}/merge", frozenset({"supervisor"}),
    hidden=NOT_STAFF, body=lambda w, r: {"into": w.case_id},
)
# Twilio's webhooks: the signature is the only key; no token or session opens them.
TWILIO_PATHS = {
    "twilio_sms.sms_incoming": "/twilio/sms",
    "twilio_voice.voice_incoming": "/twilio/voice",
    "twilio_voice.voice_connected": "/twilio/voice/connected",
    "twilio_voice.voice_heard": "/twilio/voice/heard",
    "twilio_voice.voice_language": "/twilio/voice/language",
    "twilio_voice.voice_menu": "/twilio/voice/menu",
    "twilio_voice.voice_recorded": "/twilio/voice/recorded",
    "twilio_voice.voice_recording": "/twilio/voice/recording",
    "twilio_voice.voice_status": "/twilio/voice/status",
    "twilio_voice.voice_transcription": "/twilio/voice/transcription",
}
for _endpoint, _path in TWILIO_PATHS.items():
    TABLE[_endpoint] = Rule(
        "POST",
        (lambda p: lambda w: p)(_path),
        frozenset(),
        page=False,
        body=lambda w, r: {"CallSid": "CA" + "1" * 32, "From": "+12025550143"},
    )


def test_every_endpoint_is_in_the_table(app) -> None:
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert sorted(endpoints - set(TABLE)) == [], "endpoints missing from the matrix"
    assert sorted(set(TABLE) - endpoints) == [], "rows for endpoints that no longer exist"
    for rule in app.url_map.iter_rules():
        assert TABLE[rule.endpoint].method in rule.methods, rule.endpoint


@pytest.fixture
def world(app, make_actor) -> World:  # type: ignore[no-untyped-def]
    """A case referred to FBI (sent), a tip, one user and one client per role."""
    from tests.flows import sent_referral

    referral = sent_referral(app)
    runtime = app.extensions["runtime"]
    with runtime.session() as session, transaction(session):
        tip = services.submit_tip(session, {"narrative": "matrix tip"})
        reference, passphrase, tip_case_id = tip.case.reference, tip.passphrase, tip.case.id
        UserFactory.in_session(session, username="matrix-spare", role="operator")
        PublishedStatisticsFactory.in_session(session, period="2020")  # public
        spare = create_token(session, "matrix-spare")
        from intake.chat import open_chat

        chat = open_chat(session, "en")
        chat_id, chat_token = chat.chat.id, chat.token
        provider_id = ServiceProviderFactory.in_session(session, service_types=["shelter"]).id
    actors = {
        "operator": make_actor("operator"),
        "supervisor": make_actor("supervisor"),
        "admin": make_actor("admin"),
        "researcher": make_actor("researcher"),
        "fbi": make_actor("agency", "FBI"),
        "ice": make_actor("agency", "ICE"),
        "hhs": make_actor("agency", "HHS"),
    }
    from workflows.models import User

    serializer = app.session_interface.get_signing_serializer(app)
    clients: dict[str, Any] = {}
    users: dict[str, Any] = {}
    with runtime.session() as session:
        version = session.get(Case, referral.case_id).version
        tip_version = session.get(Case, tip_case_id).version
        for role in ROLES:
            client = app.test_client()
            if role != "anonymous":
                user = session.scalar(select(User).where(User.username == actors[role].username))
                users[role] = user
                # The cookie a login would have set (login: tests/config/test_login.py).
                cookie = serializer.dumps({"user_id": user.id, "_permanent": True, "epoch": 0,
                                           "login_at": int(time.time())})
                client.set_cookie(app.config["SESSION_COOKIE_NAME"], cookie)
            clients[role] = client
    from workflows.casefile import add_item

    items = {}
    with runtime.session() as session, transaction(session):
        for item, body in CASEFILE_BODIES.items():
            items[item] = add_item(session, referral.case_id, users["operator"], item, body).id
    with runtime.session() as session:
        version = session.get(Case, referral.case_id).version  # the location set its state
    return World(
        items=items,
        case_id=referral.case_id,
        tip_case_id=tip_case_id,
        tip_version=tip_version,
        referral_id=referral.id,
        version=version,
        reference=reference,
        passphrase=passphrase,
        spare_token_prefix=spare[:10],
        users=users,
        clients=clients,
        tokens={role: actor.token for role, actor in actors.items()},
        chat_id=chat_id,
        chat_token=chat_token,
        provider_id=provider_id,
    )


def _call(world: World, rule: Rule, role: str) -> Any:
    client = world.clients[role]
    url = rule.url(world)
    body = rule.body(world, role) if rule.body else None
    if not rule.page:
        headers = world.headers(role)
        if rule.chat_token:
            headers["X-Chat-Token"] = world.chat_token
        answer = client.open(url, method=rule.method, json=body, headers=headers)
    elif rule.method == "GET":
        answer = client.get(url)
    else:
        # A form, posted the way a browser does: with the CSRF token of the session.
        token = csrf_token(client.get("/tip").get_data(as_text=True))
        answer = client.open(url, method=rule.method, data={**(body or {}), "csrf_token": token})
    answer.get_data()
    answer.close()  # static files are streamed from an open file
    return answer


def _outcome(rule: Rule, answer: Any) -> str:
    status = answer.status_code
    location = answer.headers.get("Location", "")
    to_login = status == 302 and location.startswith("/login") and not rule.login_redirect_ok
    if status in (401, 403) or to_login:
        return "denied" if status not in rule.ok else "allowed"
    if status == 404:
        return "hidden"
    if status < 400 or status in DOMAIN_REFUSALS or status in rule.ok:
        return "allowed"
    return f"unexpected {status}"


@pytest.mark.parametrize("endpoint", sorted(TABLE))
def test_exactly_the_allowed_roles_get_through(endpoint, world) -> None:
    rule = TABLE[endpoint]
    # Allowed roles last: their changes (a close, a withdrawal) cannot mask a refusal.
    order = sorted(ROLES, key=lambda r: r in rule.allowed)
    seen = {}
    for role in order:
        answer = _call(world, rule, role)
        seen[role] = (_outcome(rule, answer), answer.status_code)
    expected = {
        role: "allowed" if role in rule.allowed else "hidden" if role in rule.hidden else "denied"
        for role in ROLES
    }
    assert {role: outcome for role, (outcome, _) in seen.items()} == expected, seen


def test_an_agency_sees_only_its_own_referrals(world) -> None:
    own = world.clients["fbi"].get("/api/v1/agency/referrals", headers=world.headers("fbi"))
    assert [r["id"] for r in own.get_json()["items"]] == [world.referral_id]
    for role in ("ice", "hhs"):
        other = world.clients[role].get("/api/v1/agency/referrals", headers=world.headers(role))
        assert other.get_json()["items"] == []
        page = world.clients[role].get("/agency/").get_data(as_text=True)
        assert f"/agency/referrals/{world.referral_id}" not in page


def test_hidden_answers_do_not_reveal_existence(world) -> None:
    for role in ("ice", "fbi"):
        client, headers = world.clients[role], world.headers(role)
        real = client.get(f"/api/v1/cases/{world.case_id}", headers=headers)
        none = client.get("/api/v1/cases/999999", headers=headers)
        assert real.status_code == none.status_code == 404
        assert real.get_json()["error"] == f"no case {world.case_id}"
        assert none.get_json()["error"] == "no case 999999"
    ice = world.clients["ice"]
    real = ice.get(f"/api/v1/agency/referrals/{world.referral_id}", headers=world.headers("ice"))
    none = ice.get("/api/v1/agency/referrals/999999", headers=world.headers("ice"))
    assert real.status_code == none.status_code == 404
    assert real.get_json()["error"] == f"no referral {world.referral_id}"
    assert none.get_json()["error"] == "no referral 999999"


# --- the referral-state column: what an agency sees of its own referral in each state ---
# Nothing before it was queued for the agency (pending, or withdrawn while pending);
# everything it was given from then on, withdrawn afterwards included (issue 11, item 1).
STATE_PATHS: dict[str, tuple[str, ...]] = {
    "pending": ("submit",),
    "withdrawn before queued": ("submit", "reject"),
    "queued": ("submit", "approve"),
    "failed": ("submit", "approve", "fail"),
    "sent": ("submit", "approve", "mark_sent"),
    "acknowledged": ("submit", "approve", "mark_sent", "acknowledge"),
    "accepted": ("submit", "approve", "mark_sent", "accept"),
    "declined": ("submit", "approve", "mark_sent", "decline"),
    "withdrawn after queued": ("submit", "approve", "mark_sent", "withdraw"),
}
SEEN_BY_FBI = {state: state not in ("pending", "withdrawn before queued") for state in STATE_PATHS}


def _referral_in_state(app: Any, label: str) -> int:
    from tests.flows import screened_case
    from workflows.lifecycle import fire_case_event, fire_referral_event
    from workflows.models import Referral, User

    case_id = screened_case(app, f"matrix {label}")
    runtime = app.extensions["runtime"]

    def user(session: Any, role: str, agency: str | None = None) -> User:
        return UserFactory.in_session(  # type: ignore[no-any-return]
            session, username=f"state-{role}", role=role, agency_code=agency
        )

    with runtime.session() as session:
        referral_id = None
        for step in STATE_PATHS[label]:
            with transaction(session):
                if step == "submit":
                    fire_case_event(
                        session,
                        case_id,
                        "submit_for_approval",
                        user(session, "operator"),
                        version=None,
                        catalogs=runtime.catalogs,
                    )
                    referral_id = session.scalar(
                        select(Referral.id).where(Referral.case_id == case_id)
                    )
                elif step in ("reject", "approve"):
                    fire_case_event(
                        session,
                        case_id,
                        step,
                        user(session, "supervisor"),
                        version=None,
                        reason="matrix",
                        catalogs=runtime.catalogs,
                    )
                elif step in ("fail", "mark_sent"):
                    fire_referral_event(
                        session,
                        referral_id,
                        step,
                        None,
                        data={"error": "x"},
                        catalogs=runtime.catalogs,
                    )
                elif step == "withdraw":
                    fire_referral_event(
                        session,
                        referral_id,
                        step,
                        user(session, "supervisor"),
                        reason="matrix",
                        catalogs=runtime.catalogs,
                    )
                else:
                    fire_referral_event(
                        session,
                        referral_id,
                        step,
                        user(session, "agency", "FBI"),
                        reason="matrix",
                        catalogs=runtime.catalogs,
                    )
        state = session.get(Referral, referral_id).state
    assert state == label.split()[0], (label, state)
    return int(referral_id)


@pytest.mark.parametrize("label", list(STATE_PATHS))
def test_an_agency_sees_its_referral_only_from_queued_on(app, make_actor, label) -> None:
    from tests.page_clients import PASSWORD, PageClient

    referral_id = _referral_in_state(app, label)
    state = label.split()[0]
    seen = SEEN_BY_FBI[label]
    for code, may_see in (("FBI", seen), ("ICE", False)):
        actor = make_actor("agency", code, password=PASSWORD)
        client = app.test_client()
        api = "/api/v1/agency/referrals"
        listed = client.get(api, headers=actor.headers).get_json()["items"]
        filtered = client.get(f"{api}?state={state}", headers=actor.headers)
        shown = client.get(f"{api}/{referral_id}", headers=actor.headers)
        answered = client.post(
            f"{api}/{referral_id}/events", json={"event": "acknowledge"}, headers=actor.headers
        )
        thread = client.get(f"{api}/{referral_id}/thread", headers=actor.headers)
        asked = client.post(
            f"{api}/{referral_id}/thread", json={"body": "matrix?"}, headers=actor.headers
        )
        pages = PageClient(app.test_client())
        assert pages.login(actor.username).status_code == 302
        inbox = pages.get("/agency/").get_data(as_text=True)
        page = pages.get(f"/agency/referrals/{referral_id}")
        posted = pages.submit(
            "/agency/", f"/agency/referrals/{referral_id}/events", {"event": "acknowledge"}
        )
        asked_page = pages.submit(
            "/agency/", f"/agency/referrals/{referral_id}/thread", {"body": "matrix?"}
        )
        in_list = referral_id in [r["id"] for r in listed]
        in_filter = filtered.status_code == 200 and referral_id in [
            r["id"] for r in filtered.get_json()["items"]
        ]
        view = {
            "list": in_list,
            "list ?state=": in_filter,
            "detail": shown.status_code == 200,
            "events": answered.status_code != 404,
            "thread": thread.status_code == 200,
            "thread post": asked.status_code != 404,
            "inbox page": f"/agency/referrals/{referral_id}" in inbox,
            "detail page": page.status_code == 200,
            "answer page": posted.status_code != 404,
            "thread page post": asked_page.status_code != 404,
        }
        assert view == dict.fromkeys(view, may_see), (code, label, view)
