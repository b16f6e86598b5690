"""Helpers for driving cases through the staff API: intake → screening → events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


class CaseDriver:
    """Drives one app's case API with a given actor's token."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def call(self, actor: Any, caller_type: str = "victim", **extra: Any) -> dict[str, Any]:
        """An operator logs a call: a new case in ``received``."""
        body = {"caller_type": caller_type, "narrative": "n", "location": "Austin", **extra}
        answer = self.client.post("/api/v1/calls", json=body, headers=actor.headers)
        assert answer.status_code == 201, answer.get_json()
        return answer.get_json()  # type: ignore[no-any-return]

    def tip(self) -> int:
        """An anonymous web tip; the case id, found by its reference."""
        answer = self.client.post("/api/v1/tips", json={"narrative": "saw something"})
        assert answer.status_code == 201, answer.get_json()
        return self.case_id_of(answer.get_json()["reference"])

    def case_id_of(self, reference: str) -> int:
        from config.database import db_session
        from workflows.cases import find_by_reference

        with self.client.application.app_context():
            case = find_by_reference(db_session(), reference)
            assert case is not None
            return case.id

    def screen(self, actor: Any, case_id: int, body: dict[str, Any], status: int = 200) -> Any:
        answer = self.client.put(
            f"/api/v1/cases/{case_id}/screening", json=body, headers=actor.headers
        )
        assert answer.status_code == status, answer.get_json()
        return answer.get_json()

    def show(self, actor: Any, case_id: int) -> dict[str, Any]:
        answer = self.client.get(f"/api/v1/cases/{case_id}", headers=actor.headers)
        assert answer.status_code == 200, answer.get_json()
        return answer.get_json()  # type: ignore[no-any-return]

    def event(
        self, actor: Any, case_id: int, event: str, status: int = 200, **body: Any
    ) -> Any:
        if "version" not in body:
            body["version"] = self.show(actor, case_id)["version"]
        answer = self.client.post(
            f"/api/v1/cases/{case_id}/events", json={"event": event, **body}, headers=actor.headers
        )
        assert answer.status_code == status, answer.get_json()
        return answer.get_json()


@pytest.fixture
def cases(client) -> CaseDriver:  # type: ignore[no-untyped-def]
    """Drive cases through the API."""
    return CaseDriver(client)


@pytest.fixture
def with_dol(app, monkeypatch) -> Callable[[], None]:  # type: ignore[no-untyped-def]
    """Make the optional DOL Wage and Hour agency configured (an e-mail channel set)."""
    import dataclasses

    catalogs = app.extensions["runtime"].catalogs
    agencies = dict(catalogs["agencies"])
    dol = agencies["DOL_WHD"]
    agencies["DOL_WHD"] = dataclasses.replace(
        dol, addresses={**dol.addresses, "email": "whd@example.gov"})
    monkeypatch.setitem(catalogs, "agencies", agencies)
    return lambda: None
