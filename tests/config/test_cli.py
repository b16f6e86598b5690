"""The CLI: users, tokens, schema."""

from __future__ import annotations

from sqlalchemy import select

from workflows.models import ApiToken


def test_token_is_alone_on_the_last_line_and_works(runner, client, db_session) -> None:
    created = runner.invoke(args=["users", "create", "dana", "--role", "operator"])
    assert created.exit_code == 0, created.output
    issued = runner.invoke(args=["tokens", "create", "dana"])
    assert issued.exit_code == 0, issued.output
    token = issued.output.strip().splitlines()[-1]
    assert token.startswith("hl_") and " " not in token
    # Only a hash is stored.
    stored = db_session.scalars(select(ApiToken.token_hash)).all()
    assert token not in stored and len(stored) == 1
    tip = client.post("/api/v1/tips", json={"narrative": "n"}).get_json()
    assert tip["reference"]
    answer = client.post(
        "/api/v1/calls",
        json={"caller_type": "other", "narrative": "n"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 201


def test_password_from_stdin_and_agency_users_need_an_agency(runner) -> None:
    ok = runner.invoke(
        args=["users", "create", "sam", "--role", "supervisor", "--password-stdin"],
        input="a long enough passphrase\n",
    )
    assert ok.exit_code == 0, ok.output
    missing = runner.invoke(args=["users", "create", "desk", "--role", "agency"])
    assert missing.exit_code != 0 and "agency" in missing.output
    short = runner.invoke(
        args=["users", "create", "pat", "--role", "operator", "--password-stdin"], input="short\n"
    )
    assert short.exit_code != 0 and "12 characters" in short.output


def test_duplicate_user_is_refused(runner) -> None:
    assert runner.invoke(args=["users", "create", "kim", "--role", "admin"]).exit_code == 0
    again = runner.invoke(args=["users", "create", "kim", "--role", "admin"])
    assert again.exit_code != 0 and "already exists" in again.output


def test_revoked_token_no_longer_works(runner, client) -> None:
    runner.invoke(args=["users", "create", "lee", "--role", "operator"])
    token = runner.invoke(args=["tokens", "create", "lee"]).output.strip().splitlines()[-1]
    revoked = runner.invoke(args=["tokens", "revoke", token[:10]])
    assert "revoked 1" in revoked.output
    answer = client.post(
        "/api/v1/calls",
        json={"caller_type": "other", "narrative": "n"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 401
