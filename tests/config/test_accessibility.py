"""Plain, accessible pages: every field has a label, every page one h1 and a language,
no inline script or style (the CSP forbids both), and nothing needs a build step."""

from __future__ import annotations

from html.parser import HTMLParser

from tests.flows import screened_case, sent_referral

UNLABELLED_TYPES = {"hidden", "submit", "button"}


class FormAudit(HTMLParser):
    """Collects fields, labels, headings and anything inline."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[tuple[str, str | None]] = []
        self.labels: set[str] = set()
        self.h1 = 0
        self.inline: list[str] = []
        self.lang: str | None = None
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        if tag == "html":
            self.lang = attr.get("lang")
        if tag == "h1":
            self.h1 += 1
        if tag == "label" and attr.get("for"):
            self.labels.add(attr["for"] or "")
        if tag in {"input", "select", "textarea"} and attr.get("type") not in UNLABELLED_TYPES:
            self.fields.append((attr.get("name") or "?", attr.get("id")))
        if "style" in attr or any(name.startswith("on") for name in attr):
            self.inline.append(f"<{tag} {attrs}>")
        if tag == "style" or (tag == "script" and not attr.get("src")):
            self.inline.append(f"<{tag}>")


def audit(html: str) -> FormAudit:
    parser = FormAudit()
    parser.feed(html)
    return parser


def check(url: str, html: str) -> None:
    found = audit(html)
    unlabelled = [name for name, id_ in found.fields if not id_ or id_ not in found.labels]
    assert not unlabelled, f"{url}: fields without a label: {unlabelled}"
    assert found.h1 == 1, f"{url}: {found.h1} h1 headings"
    assert found.lang in {"en", "es"}, url
    assert not found.inline, f"{url}: inline script or style: {found.inline}"


def test_every_page_labels_its_fields(app, pages, logged_in) -> None:
    referral = sent_referral(app)
    case_id = screened_case(app)
    for url in ["/", "/tip", "/tip?lang=es", "/follow-up", "/statistics", "/login"]:
        check(url, pages.get(url).get_data(as_text=True))
    supervisor = logged_in("supervisor")
    for url in ["/operator/", "/operator/calls/new", "/supervisor/", "/supervisor/failed",
                "/supervisor/dashboard", f"/cases/{case_id}", f"/cases/{referral.case_id}"]:
        answer = supervisor.get(url)
        assert answer.status_code == 200, url
        check(url, answer.get_data(as_text=True))
    fbi = logged_in("agency", "FBI")
    for url in ["/agency/", f"/agency/referrals/{referral.id}"]:
        check(url, fbi.get(url).get_data(as_text=True))
    check("/admin/", logged_in("admin").get("/admin/").get_data(as_text=True))
    check("/research/", logged_in("researcher").get("/research/").get_data(as_text=True))
