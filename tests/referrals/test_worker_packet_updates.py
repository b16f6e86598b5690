"""Packet updates and consent withdrawal delivered by a real ``flask --app wsgi worker``
(RQ on Redis, the relay), signed and checked by the agencies' own HTTP servers."""

from __future__ import annotations

import pytest

from tests.referrals.casework import (
    TWO_BASES,
    by_agency,
    case_json,
    follow_up,
    referral_state,
    screen_and_approve,
    submit_tip,
)
from tests.referrals.conftest import AgencyServer, agency_env, wait_until

pytestmark = pytest.mark.slow


def test_update_and_consent_withdrawal_arrive_signed_as_version_2(
    app, client, operator, supervisor, agency, start_worker
) -> None:
    ice = AgencyServer()
    server = ice.start()
    try:
        worker = start_worker(**agency_env(agency.url), **agency_env(ice.url, "ICE"))
        case_id = submit_tip(client)
        screen_and_approve(app, case_id, operator, supervisor, TWO_BASES)
        ids = by_agency(app, case_id)
        wait_until(lambda: all(referral_state(app, r) == "sent" for r in ids.values()), 30,
                   "the first packets")

        follow_up(app, case_id)
        [offer] = [o for o in case_json(client, operator, case_id)["packet_updates"]
                   if o["agency"] == "FBI"]
        sent = client.post(
            f"/api/v1/cases/{case_id}/referrals/{ids['FBI']}/packet-update",
            json={"decision": "send", "digest": offer["digest"]}, headers=operator.headers,
        )
        assert sent.status_code == 200, sent.get_json()
        withdrawn = client.post(f"/api/v1/cases/{case_id}/consent/withdraw",
                                json={"scope": "law_enforcement"}, headers=operator.headers)
        assert withdrawn.status_code == 200, withdrawn.get_json()

        wait_until(lambda: len(agency.packets) == 2 and len(ice.packets) == 2, 30,
                   "the second versions")
        fbi_v2 = next(p for k, p in agency.packets.items() if k.endswith("-v2"))
        ice_v2 = next(p for k, p in ice.packets.items() if k.endswith("-v2"))
        assert fbi_v2["packet_version"] == 2 and fbi_v2["packet_type"] == "update"
        assert ice_v2["packet_version"] == 2 and ice_v2["packet_type"] == "consent_withdrawn"
        assert all(r["valid"] for r in agency.requests + ice.requests), worker.log()
        assert len(agency.requests) == 2 and len(ice.requests) == 2  # each version once
    finally:
        server.shutdown()
        server.server_close()
