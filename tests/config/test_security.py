"""Security headers on every answer, the 1 MB body limit, rate limits, passphrase throttle."""

from __future__ import annotations

import http.client
import uuid

import pytest

from config.security import CONTENT_SECURITY_POLICY, PUBLIC_LIMITS
from tests.conftest import backend

EXPECTED_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _assert_security_headers(answer, https: bool = False) -> None:  # type: ignore[no-untyped-def]
    for name, value in EXPECTED_HEADERS.items():
        assert answer.headers.get(name) == value, name
    assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in answer.headers["Content-Security-Policy"]
    assert ("Strict-Transport-Security" in answer.headers) is https


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/healthz", None, 200),
        ("GET", "/api/v1/no-such-thing", None, 404),
        ("GET", "/no-such-page", None, 404),
        ("POST", "/api/v1/tips", {"narrative": 3}, 422),
        ("GET", "/api/v1/cases/1", None, 401),
        ("DELETE", "/api/v1/tips", None, 405),
        ("POST", "/login", None, 400),  # no CSRF token
    ],
)
def test_every_answer_carries_the_security_headers(client, method, path, body, status) -> None:
    answer = client.open(path, method=method, json=body)
    assert answer.status_code == status
    _assert_security_headers(answer)


def test_hsts_only_over_https(client) -> None:
    answer = client.get("/healthz", base_url="https://hotline.example.org")
    _assert_security_headers(answer, https=True)
    assert "max-age=" in answer.headers["Strict-Transport-Security"]


def test_an_unexpected_error_is_json_500_with_headers(make_app) -> None:
    other = make_app()

    @other.get("/api/v1/boom-for-test")
    def _boom() -> None:
        raise RuntimeError("boom")

    answer = other.test_client().get("/api/v1/boom-for-test")
    assert answer.status_code == 500
    assert "boom" not in answer.get_data(as_text=True)
    assert answer.get_json()["error"]
    _assert_security_headers(answer)


def test_a_body_over_one_megabyte_is_413_json_and_stores_nothing(client, db_session) -> None:
    from sqlalchemy import func, select

    from workflows.models import Case

    big = {"narrative": "x" * (1024 * 1024 + 10)}
    answer = client.post("/api/v1/tips", json=big)
    assert answer.status_code == 413
    assert answer.get_json()["error"]
    _assert_security_headers(answer)
    assert db_session.scalar(select(func.count()).select_from(Case)) == 0


def _post_chunked(port: int, path: str, chunks: list[bytes]) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest("POST", path)
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        try:
            for chunk in chunks:
                conn.send(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            conn.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer 413 and close before reading everything
        answer = conn.getresponse()
        return answer.status, answer.read()
    finally:
        conn.close()


def test_a_chunked_body_over_one_megabyte_is_413(live_server) -> None:
    opening = b'{"narrative": "'
    filler = [b"y" * 65536] * 20  # 1.25 MB, no Content-Length
    status, body = _post_chunked(live_server, "/api/v1/tips", [opening, *filler, b'"}'])
    assert status == 413, body[:200]
    assert b'"error"' in body


def test_a_small_chunked_body_is_accepted(live_server) -> None:
    status, body = _post_chunked(live_server, "/api/v1/tips", [b'{"narrative": ', b'"chunked"}'])
    assert status == 201, body[:200]


def _limited_app(make_app, settings):  # type: ignore[no-untyped-def]
    # A namespace of its own, so no other test's hits from 127.0.0.1 count here.
    namespace = f"{settings.redis_namespace}{uuid.uuid4().hex[:8]}-"
    return make_app(rate_limits_enabled=True, redis_namespace=namespace), namespace


def test_tips_are_limited_per_address_with_a_json_429(make_app, settings) -> None:
    limited, _ = _limited_app(make_app, settings)
    client = limited.test_client()
    answers = [client.post("/api/v1/tips", json={"narrative": f"tip {i}"}) for i in range(11)]
    assert [a.status_code for a in answers[:10]] == [201] * 10
    refused = answers[10]
    assert refused.status_code == 429
    body = refused.get_json()
    assert refused.content_type == "application/problem+json"
    assert body["detail"].startswith("too many requests from this address; try again in ")
    # One number feeds the header, the body's retry_after and its sentence.
    wait = int(refused.headers["Retry-After"])
    assert 0 < wait <= 60
    assert body["retry_after"] == wait
    assert body["detail"].endswith(f" {wait} seconds") or body["detail"].endswith(" 1 minute")
    _assert_security_headers(refused)
    other_address = client.post(
        "/api/v1/tips", json={"narrative": "x"}, environ_base={"REMOTE_ADDR": "10.9.8.7"}
    )
    assert other_address.status_code == 201


def test_staff_routes_and_probes_are_not_limited_by_address(make_app, settings) -> None:
    limited, _ = _limited_app(make_app, settings)
    client = limited.test_client()
    statuses = {client.get("/healthz").status_code for _ in range(40)}
    assert statuses == {200}


def test_twilio_routes_are_never_limited_by_address(make_app, settings) -> None:
    from werkzeug.datastructures import MultiDict

    from tests.intake.twilio_caller import HOTLINE, PUBLIC_BASE, new_sid, post_signed

    assert not [endpoint for endpoint, _ in PUBLIC_LIMITS if endpoint.startswith("twilio")]
    limited, _ = _limited_app(make_app, settings)
    client = limited.test_client()
    # Every request comes from Twilio's few addresses: 30 from one address all get through.
    for i in range(30):
        sid = new_sid("SM")
        params = MultiDict(
            {
                "MessageSid": sid,
                "AccountSid": "AC" + "0" * 32,
                "From": f"+1202555{i:04d}",
                "To": HOTLINE,
                "Body": "HELP",
            }
        )
        answer = post_signed(client, PUBLIC_BASE + "/twilio/sms", params)
        assert answer.status_code == 200, (i, answer.status_code)


def _guess(client, url, passphrase, address):  # type: ignore[no-untyped-def]
    return client.get(
        url, headers={"X-Tip-Passphrase": passphrase}, environ_base={"REMOTE_ADDR": address}
    )


def test_a_stranger_guessing_cannot_lock_the_tipster_out(make_app, settings) -> None:
    """Issue 11, item 6: the count is per (reference, client), not per reference."""
    limited, _ = _limited_app(make_app, settings)
    client = limited.test_client()
    tip = client.post("/api/v1/tips", json={"narrative": "x"}).get_json()
    url = f"/api/v1/tips/{tip['reference']}"
    attacker = [_guess(client, url, "wrong", "203.0.113.9").status_code for _ in range(8)]
    assert attacker == [404] * 5 + [429] * 3
    refused = _guess(client, url, tip["passphrase"], "203.0.113.9")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    # The tipster, from their own address, is not affected, on the API and the page.
    assert _guess(client, url, tip["passphrase"], "198.51.100.7").status_code == 200
    posted = client.post(
        f"{url}/messages", json={"body": "more"}, headers={"X-Tip-Passphrase": tip["passphrase"]},
        environ_base={"REMOTE_ADDR": "198.51.100.7"},
    )
    assert posted.status_code == 201


def test_the_right_passphrase_waits_no_longer_than_the_backoff(
    make_app, settings, db_session
) -> None:
    from datetime import timedelta

    from intake.models import PassphraseGuesses
    from intake.throttle import guess_key, wait_after
    from workflows.db import utcnow

    limited, _ = _limited_app(make_app, settings)
    client = limited.test_client()
    tip = client.post("/api/v1/tips", json={"narrative": "x"}).get_json()
    url = f"/api/v1/tips/{tip['reference']}"
    for _ in range(6):  # the sixth is refused: it is not counted
        _guess(client, url, "wrong", "192.0.2.1")
    row = db_session.get(PassphraseGuesses, guess_key(tip["reference"], "192.0.2.1"))
    assert row.failures == 5
    assert wait_after(5) == timedelta(seconds=30) and wait_after(6) == timedelta(seconds=60)
    assert wait_after(40) == timedelta(hours=1)
    assert _guess(client, url, tip["passphrase"], "192.0.2.1").status_code == 429
    # Once the wait in force is over, the right passphrase opens the tip and clears it.
    row.blocked_until = utcnow() - timedelta(seconds=1)
    db_session.commit()
    assert _guess(client, url, tip["passphrase"], "192.0.2.1").status_code == 200
    db_session.expire_all()
    assert db_session.get(PassphraseGuesses, guess_key(tip["reference"], "192.0.2.1")) is None


def test_parallel_guesses_are_counted_atomically(make_app, settings) -> None:
    from concurrent.futures import ThreadPoolExecutor

    limited, _ = _limited_app(make_app, settings)
    tip = limited.test_client().post("/api/v1/tips", json={"narrative": "x"}).get_json()
    url = f"/api/v1/tips/{tip['reference']}"

    def one(_: int) -> int:
        return int(_guess(limited.test_client(), url, "wrong", "203.0.113.50").status_code)

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = sorted(pool.map(one, range(24)))
    # However they interleave, exactly the free tries were let through to be checked.
    assert statuses == [404] * 5 + [429] * 19


@pytest.mark.skipif(backend() != "services", reason="shared limits need Redis (services backend)")
def test_the_limit_is_shared_by_two_app_instances_on_redis(make_app, settings) -> None:
    first, namespace = _limited_app(make_app, settings)
    second = make_app(rate_limits_enabled=True, redis_namespace=namespace)
    clients = [first.test_client(), second.test_client()]
    statuses = [
        clients[i % 2].post("/api/v1/tips", json={"narrative": f"tip {i}"}).status_code
        for i in range(11)
    ]
    # Ten in total between the two, not ten each.
    assert statuses == [201] * 10 + [429]
    from redis import Redis

    keys = Redis.from_url(settings.redis_url).keys(f"{namespace}*")
    assert keys, "the limiter keeps its counts under the run's namespace"


def test_an_id_beyond_the_database_integer_is_404_not_500(client, supervisor) -> None:
    for path in ("/api/v1/cases/2147483648", "/api/v1/cases/99999999999999999999999/access-log"):
        answer = client.get(path, headers=supervisor.headers)
        assert answer.status_code == 404, path
    assert client.get("/api/v1/cases/2147483647", headers=supervisor.headers).status_code == 404


@pytest.mark.parametrize(("method", "path"), [
    ("delete", "/api/v1/cases/1000000000000001/locations/1719245566526075399005274112"),
    ("delete", "/api/v1/cases/1/notes/2147483648"),
    ("get", "/api/v1/cases/1125899906842623/service-referrals"),
])
def test_a_huge_id_on_a_path_shared_by_two_methods_is_404_not_405(
    client, supervisor, method, path
) -> None:
    """Before: werkzeug saw the path on the other method's rule and answered 405."""
    answer = getattr(client, method)(path, headers=supervisor.headers)
    assert answer.status_code == 404, answer.get_json()


def test_a_huge_case_id_in_a_call_log_is_a_422(client, operator) -> None:
    """Before: it reached PostgreSQL's integer and failed there (a 500)."""
    answer = client.post("/api/v1/calls", headers=operator.headers, json={
        "caller_type": "victim", "narrative": "n", "case_id": 2**31})
    assert answer.status_code == 422 and answer.get_json()["field"] == "case_id"


def test_a_huge_id_on_the_thread_path_is_404_for_post_too(client, make_actor) -> None:
    """GET and POST rules share the referral thread's path (issue 13)."""
    fbi = make_actor("agency", "FBI")
    for referral_id in ("2147483648", "9999999999", "549755813887"):
        path = f"/api/v1/agency/referrals/{referral_id}/thread"
        answer = client.post(path, json={"body": "x"}, headers=fbi.headers)
        assert answer.status_code == 404, (referral_id, answer.status_code)


def test_limits_fail_open_when_their_storage_is_down(make_app) -> None:
    # Nothing listens on port 1: a tip must still be taken (never a 500 for a tipster).
    down = make_app(rate_limits_enabled=True, redis_url="redis://127.0.0.1:1/0")
    client = down.test_client()
    tip = client.post("/api/v1/tips", json={"narrative": "storage down"})
    assert tip.status_code == 201, tip.get_json()
    body = tip.get_json()
    read = client.get(
        f"/api/v1/tips/{body['reference']}", headers={"X-Tip-Passphrase": body["passphrase"]}
    )
    assert read.status_code == 200
