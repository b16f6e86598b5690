"""The desk never loses typed work (issue 19), through the test client: a submit after
the session ended or with a stale token is kept and given back to the same person only;
drafts are saved, offered, restored and dropped on submit; error pages are the app's own.
"""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import func, select, text

from tests.flows import sent_referral
from tests.page_clients import PASSWORD, PageClient, csrf_token
from workflows.db import transaction, utcnow
from workflows.drafts import KeptForm
from workflows.models import Case, Referral

NARRATIVE = "Canary-Kept-7731: she works at the nail salon on Elm and sleeps in the back room"

CALL = {
    "caller_type": "victim",
    "language": "es",
    "location": "Elm Street nail salon",
    "narrative": NARRATIVE,
    "imminent_danger": "no",
    "victim_minor": "no",
    "foreign_national": "yes",
    "force_fraud_coercion": "yes",
    "documents_confiscated": "yes",
    "trafficking_type": "labor",
    "indicators": ["documents_confiscated", "debt_to_employer"],
    "consent_law_enforcement": "yes",
    "consent_services": "yes",
    "safe_notes": "Only text after 9 pm",
}


def _hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found, f"no hidden {name} on the page"
    return found.group(1)


def _form_with_binding(client: PageClient, url: str) -> dict[str, str]:
    page = client.get(url).get_data(as_text=True)
    return {
        name: _hidden(page, name) for name in ("csrf_token", "_form_key", "_back", "_desk_user")
    }


def _assert_call_restored(page: str) -> None:
    assert NARRATIVE in page
    assert 'value="Elm Street nail salon"' in page
    assert re.search(r'<option value="labor" selected>', page)
    assert re.search(
        r'id="ind-documents_confiscated" name="indicators" value="documents_confiscated" checked',
        page,
    )
    assert re.search(
        r'id="ind-debt_to_employer" name="indicators" value="debt_to_employer" checked', page
    )
    assert "Only text after 9 pm" in page


def test_a_stale_token_keeps_the_call_and_gives_it_back_filled_in(
    app, logged_in, db_session
) -> None:
    operator = logged_in("operator")
    binding = _form_with_binding(operator, "/operator/calls/new")
    answer = operator.client.post(
        "/operator/calls/new", data={**CALL, **binding, "csrf_token": "stale-token"}
    )
    assert answer.status_code == 303
    assert answer.headers["Location"].endswith("/operator/calls/new?restore=1")
    assert db_session.scalar(select(func.count()).select_from(Case)) == 0  # not saved twice
    page = operator.get(answer.headers["Location"]).get_data(as_text=True)
    _assert_call_restored(page)
    # The person saves it now: one case, and nothing kept any more.
    fresh = csrf_token(page)
    saved = operator.client.post(
        "/operator/calls/new", data={**CALL, **binding, "csrf_token": fresh}
    )
    assert saved.status_code == 303 and "/cases/" in saved.headers["Location"]
    db_session.expire_all()
    assert db_session.scalar(select(func.count()).select_from(Case)) == 1
    assert db_session.scalar(select(func.count()).select_from(KeptForm)) == 0


def test_an_expired_session_keeps_the_submit_until_the_same_person_logs_in(
    app, logged_in, pages, person, db_session
) -> None:
    operator = logged_in("operator")
    binding = _form_with_binding(operator, "/operator/calls/new")
    operator.client.delete_cookie("hotline_session")  # the browser dropped the expired cookie
    answer = operator.client.post("/operator/calls/new", data={**CALL, **binding})
    assert answer.status_code == 303
    assert answer.headers["Location"].startswith("/login?next=")
    login_page = operator.get(answer.headers["Location"]).get_data(as_text=True)
    assert "Everything you typed was kept" in login_page

    # Stored encrypted: the narrative is nowhere in the table in clear.
    raw = db_session.execute(text("SELECT fields FROM kept_forms")).scalars().all()
    assert len(raw) == 1 and "Canary-Kept-7731" not in raw[0]

    # Someone else logging in on this browser gets nothing back.
    other = person("operator")
    next_url = re.search(r'name="next" value="([^"]+)"', login_page).group(1).replace("&amp;", "&")
    operator.client.post(
        "/login",
        data={
            "username": other.username,
            "password": PASSWORD,
            "next": next_url,
            "csrf_token": csrf_token(login_page),
        },
    )
    page = operator.get(next_url).get_data(as_text=True)
    assert NARRATIVE not in page
    operator.client.post("/logout", data={"csrf_token": csrf_token(page)})

    # The same person, on the same browser: lands on the form with everything in it.
    login_page = operator.get("/login").get_data(as_text=True)
    back = operator.client.post(
        "/login",
        data={
            "username": operator.actor.username,
            "password": PASSWORD,
            "next": next_url,
            "csrf_token": csrf_token(login_page),
        },
    )
    assert back.status_code == 302 and back.headers["Location"] == next_url
    _assert_call_restored(operator.get(next_url).get_data(as_text=True))

    # The kept submit is bound to that browser too: the cookie is needed.
    thief = logged_in("operator")
    assert NARRATIVE not in thief.get(next_url).get_data(as_text=True)


def test_a_kept_submit_never_leads_off_the_site_nor_keeps_a_forged_owner(
    app, logged_in, db_session
) -> None:
    operator = logged_in("operator")
    binding = _form_with_binding(operator, "/operator/calls/new")
    for back in ("//evil.example/x", "/%09/evil.example", "https://evil.example/", "\\\\evil"):
        answer = operator.client.post(
            "/operator/calls/new", data={**CALL, **binding, "_back": back, "csrf_token": "x"}
        )
        assert answer.status_code == 400, back
        assert "evil" not in answer.headers.get("Location", "")
    for owner in ("", "abc", "99999999", "1" * 40):
        answer = operator.client.post(
            "/operator/calls/new", data={**CALL, **binding, "_desk_user": owner, "csrf_token": "x"}
        )
        assert answer.status_code == 400, owner
    assert db_session.scalar(select(func.count()).select_from(KeptForm)) == 0


def test_drafts_are_saved_offered_restored_and_dropped_on_submit(
    app, logged_in, db_session
) -> None:
    operator = logged_in("operator")
    binding = _form_with_binding(operator, "/operator/calls/new")
    saved = operator.client.post("/desk/drafts", data={**CALL, **binding})
    assert saved.status_code == 200 and "saved_at" in saved.get_json()
    again = operator.client.post(
        "/desk/drafts", data={**CALL, **binding, "narrative": NARRATIVE + " more"}
    )
    assert again.status_code == 200
    assert db_session.scalar(select(func.count()).select_from(KeptForm)) == 1  # replaced

    offer = operator.get("/operator/calls/new").get_data(as_text=True)
    assert 'id="draft-offer"' in offer and NARRATIVE not in offer  # offered, not forced
    restored = operator.get("/operator/calls/new?draft=1").get_data(as_text=True)
    assert NARRATIVE + " more" in restored

    # Another operator sees no offer and cannot read it.
    colleague = logged_in("operator")
    assert 'id="draft-offer"' not in colleague.get("/operator/calls/new").get_data(as_text=True)
    assert NARRATIVE not in colleague.get("/operator/calls/new?draft=1").get_data(as_text=True)
    # ... nor write into it under the first operator's name.
    forged = colleague.client.post(
        "/desk/drafts",
        data={
            **CALL,
            **_form_with_binding(colleague, "/operator/calls/new"),
            "_desk_user": binding["_desk_user"],
        },
    )
    assert forged.status_code == 400

    done = operator.client.post("/operator/calls/new", data={**CALL, **binding})
    assert done.status_code == 303
    db_session.expire_all()
    assert db_session.scalar(select(func.count()).select_from(KeptForm)) == 0


def test_drafts_need_a_session_a_token_and_stay_bounded(app, logged_in, pages, db_session) -> None:
    operator = logged_in("operator")
    binding = _form_with_binding(operator, "/operator/calls/new")
    assert pages.client.post("/desk/drafts", data={**CALL, **binding}).status_code in (400, 401)
    no_token = operator.client.post("/desk/drafts", data={**CALL, **binding, "csrf_token": ""})
    assert no_token.status_code == 400
    huge = operator.client.post(
        "/desk/drafts", data={**binding, "narrative": "x" * 200_000, "_form_key": "k" * 5000}
    )
    assert huge.status_code == 200
    kept = db_session.scalars(select(KeptForm)).one()
    assert len(kept.form_key) == 200 and max(len(v) for _, v in kept.pairs) <= 50_000


def test_drafts_expire_after_a_day(app, logged_in, db_session) -> None:
    operator = logged_in("operator")
    binding = _form_with_binding(operator, "/operator/calls/new")
    operator.client.post("/desk/drafts", data={**CALL, **binding})
    with transaction(db_session):
        for row in db_session.scalars(select(KeptForm)):
            row.expires_at = utcnow() - timedelta(minutes=1)
    assert 'id="draft-offer"' not in operator.get("/operator/calls/new").get_data(as_text=True)


def test_keepalive_refreshes_a_live_session_only(app, logged_in, pages) -> None:
    operator = logged_in("operator")
    page = operator.get("/operator/calls/new").get_data(as_text=True)
    assert 'src="/static/desk.js"' in page and "data-keepalive=" in page
    alive = operator.client.post("/desk/alive", headers={"X-CSRFToken": csrf_token(page)})
    assert alive.status_code == 204 and "hotline_session=" in alive.headers.get("Set-Cookie", "")
    assert pages.client.post("/desk/alive").status_code in (400, 401)


def test_the_call_form_asks_the_urgent_questions_first(app, logged_in) -> None:
    page = logged_in("operator").get("/operator/calls/new").get_data(as_text=True)
    order = [
        page.index(f'id="{name}"')
        for name in (
            "narrative",
            "imminent_danger",
            "victim_minor",
            "location",
            "consent_law_enforcement",
            "consent_services",
            "caller_type",
            "language",
            "victim_age",
        )
    ]
    assert order == sorted(order)


def test_the_screening_preview_shows_the_result_and_stores_nothing(
    app, logged_in, db_session
) -> None:
    operator = logged_in("operator")
    binding = _form_with_binding(operator, "/operator/calls/new")
    minor = {
        **binding,
        "narrative": "A girl of 16 advertised online",
        "victim_minor": "yes",
        "commercial_sex": "yes",
        "indicators": ["under_18_commercial_sex"],
    }
    answer = operator.client.post("/operator/calls/preview", data=minor)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    result = answer.get_json()
    assert any(line.startswith("FBI") for line in result["recommended"]), result
    assert result["level"] == "high indicators"
    nothing = operator.client.post(
        "/operator/calls/preview", data={**binding, "narrative": "Asked for a brochure"}
    )
    assert nothing.get_json()["recommended"] == []
    db_session.expire_all()
    assert db_session.scalar(select(func.count()).select_from(Case)) == 0
    bad = operator.client.post("/operator/calls/preview", data={**binding, "victim_age": "ten"})
    assert bad.status_code == 422 and "fields" in bad.get_json()


def test_error_pages_are_styled_in_the_persons_language_with_the_way_back(app, client) -> None:
    english = client.get("/no/such/page")
    page = english.get_data(as_text=True)
    assert english.status_code == 404 and english.mimetype == "text/html"
    assert "hotline.css" in page and 'id="error-back"' in page and "Not found" in page
    spanish = client.get("/no/such/page", headers={"Accept-Language": "es-MX,es;q=0.9"})
    text_es = spanish.get_data(as_text=True)
    assert "No encontrado" in text_es and "Volver a la página de inicio" in text_es
    assert 'lang="es"' in text_es
    assert "No encontrado" in client.get("/no/such/page?lang=es").get_data(as_text=True)
    assert client.get("/api/v1/nothing").is_json  # APIs keep JSON


def test_the_agency_inbox_puts_emergencies_first_and_pages_the_answered(
    app, logged_in, db_session
) -> None:
    first, second = sent_referral(app), sent_referral(app)
    answered = [sent_referral(app, f"answered {number}") for number in range(27)]
    with transaction(db_session):
        db_session.get(Case, second.case_id).priority_rank = 0  # an emergency
        db_session.get(Case, first.case_id).priority_rank = 2
        for referral in answered:
            db_session.get(Referral, referral.id).state = "accepted"
    fbi = logged_in("agency", "FBI")
    inbox = fbi.get("/agency/").get_data(as_text=True)
    waiting = inbox[: inbox.index('id="answered"')]
    assert waiting.index(f"#{second.id}<") < waiting.index(f"#{first.id}<")
    # One row per referral: its number links to it (an accepted one links its outcome form too).
    row = re.compile(r'href="/agency/referrals/(\d+)">#')
    answered_rows = row.findall(inbox[inbox.index('id="answered"') :])
    assert len(answered_rows) == len(set(answered_rows)) == 25 and 'id="older"' in inbox
    older = fbi.get("/agency/?page=2").get_data(as_text=True)
    assert len(row.findall(older[older.index('id="answered"') :])) == 2
    assert fbi.get("/agency/?page=-3").status_code == 200
    assert fbi.get("/agency/?page=99999999999").status_code == 200


def test_a_case_file_note_is_kept_as_a_draft_and_dropped_when_added(
    app, logged_in, db_session
) -> None:
    from tests.flows import screened_case

    case_id = screened_case(app)
    operator = logged_in("operator")
    page = operator.get(f"/cases/{case_id}").get_data(as_text=True)
    form = page[page.index('id="add-note"'):]
    form = form[: form.index("</form>")]
    binding = {name: _hidden(form, name)
               for name in ("csrf_token", "_form_key", "_back", "_desk_user")}
    assert binding["_form_key"] == f"note:{case_id}"
    note = "She said the manager keeps the passports in the office safe"
    saved = operator.client.post("/desk/drafts", data={**binding, "body": note})
    assert saved.status_code == 200
    assert 'id="draft-offer"' in operator.get(f"/cases/{case_id}").get_data(as_text=True)
    assert note in operator.get(f"/cases/{case_id}?draft=1").get_data(as_text=True)

    added = operator.client.post(f"/cases/{case_id}/file/notes",
                                 data={**binding, "body": note, "internal": "yes"})
    assert added.status_code in (302, 303), added.get_data(as_text=True)[:300]
    db_session.expire_all()
    assert db_session.scalar(select(func.count()).select_from(KeptForm)) == 0
