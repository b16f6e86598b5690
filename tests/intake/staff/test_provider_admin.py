"""Admins add and edit service-directory entries (issue 13): validated, audited, CSRF,
and nobody else may."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from workflows.db import transaction
from workflows.models import AuditEvent
from workflows.provider_admin import add_provider
from workflows.providers import ServiceProvider

SAMPLE = Path(__file__).resolve().parents[2] / "fixtures" / "hsds"
GOOD = {
    "name": "Casa Segura shelter",
    "organization": "",
    "description": "Beds for adults and children",
    "service_types": ["shelter", "youth"],
    "languages": "en, ES",
    "address": "12 Elm St",
    "city": "El Paso",
    "state": "tx",
    "latitude": "31.76",
    "longitude": "-106.49",
    "phone": "(202) 555-0143",
    "email": "intake@casasegura.example",
    "webhook_url": "https://casasegura.example/hotline",
}


def _count(db_session, model, *where) -> int:  # type: ignore[no-untyped-def]
    db_session.expire_all()
    return db_session.scalar(select(func.count()).select_from(model).where(*where))


def _events(db_session, action: str) -> list[AuditEvent]:  # type: ignore[no-untyped-def]
    db_session.expire_all()
    return list(db_session.scalars(
        select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def test_an_admin_adds_a_provider_that_the_desk_then_finds(
    logged_in, db_session, client, operator
) -> None:
    admin = logged_in("admin")
    assert 'id="service-directory"' in admin.get("/admin/").get_data(as_text=True)

    answer = admin.submit("/admin/providers/new", "/admin/providers/new", GOOD)

    assert answer.status_code == 303 and answer.headers["Location"] == "/admin/providers"
    provider = db_session.scalar(select(ServiceProvider))
    assert (provider.phone, provider.address, provider.webhook_url) == (
        "+12025550143", "12 Elm St", "https://casasegura.example/hotline")
    assert (provider.organization, provider.state, provider.languages) == (
        "Casa Segura shelter", "TX", ["en", "es"])
    assert (provider.latitude, provider.longitude) == (31.76, -106.49)
    assert provider.hsds_id.startswith("local-")
    [event] = _events(db_session, "provider_added")
    assert event.actor == admin.actor.username and event.detail["provider_id"] == provider.id
    assert "Casa Segura" in admin.get("/admin/providers").get_data(as_text=True)
    found = client.get("/api/v1/services?type=shelter&lang=es&state=TX",
                       headers=operator.headers).get_json()["items"]
    assert [p["name"] for p in found] == ["Casa Segura shelter"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "  "}, "name"),
        ({"service_types": []}, "service_types"),
        ({"service_types": ["shelter", "spa"]}, "service_types"),
        ({"languages": "english"}, "languages"),
        ({"state": "ZZ"}, "state"),
        ({"latitude": "91"}, "latitude"),
        ({"longitude": "east"}, "longitude"),
        ({"longitude": ""}, "longitude"),  # a latitude without its longitude
        ({"phone": "12345"}, "phone"),
        ({"email": "intake@"}, "email"),
        ({"webhook_url": "http://casasegura.example/hotline"}, "webhook_url"),
        ({"name": "x" * 301}, "name"),
        ({"city": "El\x00Paso"}, "city"),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_nothing_is_stored(
    logged_in, db_session, change, field
) -> None:
    admin = logged_in("admin")
    answer = admin.submit("/admin/providers/new", "/admin/providers/new", {**GOOD, **change})
    assert answer.status_code == 422
    page = answer.get_data(as_text=True)
    assert f'id="error-{field}"' in page and 'id="form-error"' in page
    assert "Casa Segura shelter" in page or field == "name"  # what was typed is kept
    assert _count(db_session, ServiceProvider) == 0
    assert _events(db_session, "provider_added") == []


def test_an_admin_edits_an_imported_provider_and_a_reimport_keeps_the_contact(
    app, runner, logged_in, db_session
) -> None:
    assert runner.invoke(args=["services", "import", str(SAMPLE)]).exit_code == 0
    provider = db_session.scalar(
        select(ServiceProvider).where(ServiceProvider.hsds_id == "svc-shelter-1"))
    admin = logged_in("admin")
    url = f"/admin/providers/{provider.id}"
    form = admin.get(url).get_data(as_text=True)
    assert provider.name in form and 'value="shelter" checked' in form

    values = {"name": provider.name, "organization": provider.organization,
              "description": provider.description or "", "service_types": ["shelter", "dv"],
              "languages": ", ".join(provider.languages), "address": "",
              "city": provider.city or "", "state": provider.state or "",
              "latitude": provider.latitude, "longitude": provider.longitude,
              "phone": "+1 202 555 0199", "email": provider.email or "", "webhook_url": ""}
    assert admin.submit(url, url, values).status_code == 303
    again = admin.submit(url, url, values)  # the same values: nothing to change
    assert again.status_code == 303

    db_session.expire_all()
    edited = db_session.get(ServiceProvider, provider.id)
    assert edited.service_types == ["shelter", "dv"] and edited.phone == "+12025550199"
    [event] = _events(db_session, "provider_edited")
    assert event.detail == {"provider_id": provider.id, "fields": ["phone", "service_types"]}
    assert runner.invoke(args=["services", "import", str(SAMPLE)]).exit_code == 0
    db_session.expire_all()
    assert db_session.get(ServiceProvider, provider.id).phone == "+12025550199"
    assert admin.get("/admin/providers/999999").status_code == 404


def test_only_admins_may_add_or_edit_and_every_post_needs_the_token(
    app, logged_in, pages, db_session
) -> None:
    with app.extensions["runtime"].session() as session, transaction(session):
        provider_id = add_provider(session, "seed", {**GOOD, "languages": ["en"],
                                                     "latitude": None, "longitude": None}).id
    urls = ["/admin/providers", "/admin/providers/new", f"/admin/providers/{provider_id}"]
    posts = ["/admin/providers/new", f"/admin/providers/{provider_id}"]
    changed = {**GOOD, "name": "Renamed"}
    for role, refused in (("operator", 403), ("supervisor", 403), ("agency", 404)):
        someone = logged_in(role, "FBI" if role == "agency" else None)
        token_page = "/agency/" if role == "agency" else "/operator/" if role == "operator" \
            else "/supervisor/"
        for url in urls:
            assert someone.get(url).status_code == refused, (role, url)
        for url in posts:
            assert someone.submit(token_page, url, changed).status_code == refused, (role, url)
    for url in urls:
        assert pages.get(url).status_code == 302  # to the login page
    admin = logged_in("admin")
    for url in posts:
        assert admin.client.post(url, data=changed).status_code == 400  # no CSRF token
    assert _count(db_session, ServiceProvider) == 1
    assert db_session.get(ServiceProvider, provider_id).name == "Casa Segura shelter"
    assert _events(db_session, "provider_edited") == []
