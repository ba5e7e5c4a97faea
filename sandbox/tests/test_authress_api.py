"""The fake Authress API verifies service-client tokens for real: signature with the public
key of a deterministic key pair, kid, issuer, audience, subject and expiry; anything wrong is
a 401. Plus the deterministic portal call counts."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import jwt
import pytest
import requests

from sandbox import authress as fake

ACCOUNT = f"/authress/v1/accounts/{fake.ACCOUNT_ID}"


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": fake.issuer(fake.CLIENT_ID),
        "sub": fake.CLIENT_ID,
        "aud": fake.AUDIENCE,
        "iat": now,
        "exp": now + 300,
        **overrides,
    }


def token(*, kid: str = fake.KEY_ID, label: str | None = None, **overrides: Any) -> str:
    return jwt.encode(claims(**overrides), fake.private_key(label or kid), algorithm="EdDSA", headers={"kid": kid})


def get(sandbox, bearer: str | None, path: str = ACCOUNT) -> requests.Response:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer is not None else {}
    return requests.get(sandbox.url + path, headers=headers, timeout=5)


def assert_401(response: requests.Response, reason: str) -> None:
    assert response.status_code == 401
    body = response.json()
    assert body["errorCode"] == "Unauthorized" and reason in body["title"]
    assert response.headers["x-request-id"].startswith("authress-")


def test_a_good_token_reads_the_account(sandbox) -> None:
    response = get(sandbox, token())
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/links+json"
    assert response.json() == {
        "accountId": fake.ACCOUNT_ID,
        "createdTime": fake.CREATED_TIME,
        "name": fake.ACCOUNT_NAME,
        "company": {"name": fake.COMPANY_NAME},
        "links": {"self": {"href": f"/v1/accounts/{fake.ACCOUNT_ID}"}},
    }


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: None, "No bearer token"),
        (lambda: "not-a-jwt", "not a JWT"),
        (lambda: token(kid=fake.UNKNOWN_KEY_ID), "Unknown signing key"),
        (lambda: token(kid=fake.REVOKED_KEY_ID), "The access key was deleted"),
        (lambda: token(label="someone-else"), "signature, issuer, audience or required claims are wrong"),
        (
            lambda: token(aud="acc_other.accounts.authress.io"),
            "signature, issuer, audience or required claims are wrong",
        ),
        (lambda: token(iss=fake.issuer("sc_other")), "signature, issuer, audience or required claims are wrong"),
        (lambda: token(exp=int(time.time()) - 5), "expired"),
        (lambda: token(sub="sc_other"), "subject is not the service client"),
        (
            lambda: jwt.encode(
                claims(), "shared-secret-guess-0123456789abcdef", algorithm="HS256", headers={"kid": fake.KEY_ID}
            ),
            "Unknown signing key",
        ),
        (
            lambda: jwt.encode(
                {k: v for k, v in claims().items() if k != "exp"},
                fake.private_key(fake.KEY_ID),
                algorithm="EdDSA",
                headers={"kid": fake.KEY_ID},
            ),
            "signature, issuer, audience or required claims are wrong",
        ),
    ],
    ids=[
        "no-token",
        "garbage",
        "unknown-kid",
        "revoked-kid",
        "wrong-signature",
        "wrong-audience",
        "wrong-issuer",
        "expired",
        "wrong-subject",
        "hs256",
        "no-exp",
    ],
)
def test_bad_tokens_are_401(sandbox, make, reason) -> None:
    assert_401(get(sandbox, make()), reason)


def test_a_client_without_access_gets_403(sandbox) -> None:
    bearer = token(kid=fake.NO_ACCESS_KEY_ID, iss=fake.issuer(fake.NO_ACCESS_CLIENT_ID), sub=fake.NO_ACCESS_CLIENT_ID)
    response = get(sandbox, bearer)
    assert response.status_code == 403 and response.json()["errorCode"] == "Forbidden"


def test_another_account_and_other_paths_are_404(sandbox) -> None:
    assert get(sandbox, token(), "/authress/v1/accounts/acc_other").status_code == 404
    assert get(sandbox, token(), "/authress/v1/usage").json()["errorCode"] == "NotFound"


def test_only_get_is_served(sandbox) -> None:
    response = requests.post(sandbox.url + ACCOUNT, headers={"Authorization": f"Bearer {token()}"}, timeout=5)
    assert response.status_code == 405


def test_check_token_judges_expiry_by_the_given_clock() -> None:
    bearer = f"Bearer {token()}"
    assert fake.check_token(bearer) == fake.KEYS[fake.KEY_ID]
    assert fake.check_token(bearer, now=datetime.now(UTC) + timedelta(minutes=6)) == "The token has expired."


def test_access_keys_are_deterministic_and_match_the_registered_public_keys() -> None:
    assert fake.access_key(fake.CLIENT_ID, fake.KEY_ID) == fake.ACCESS_KEY
    client, kid, account, private = fake.ACCESS_KEY.split(".")
    assert (client, kid, account) == (fake.CLIENT_ID, fake.KEY_ID, fake.ACCOUNT_ID)
    assert private.startswith("MC4CAQAwBQYDK2Vw")  # PKCS#8 DER of an Ed25519 key, base64
    assert fake.WRONG_SIGNATURE_ACCESS_KEY.split(".")[:3] == [fake.CLIENT_ID, fake.KEY_ID, fake.ACCOUNT_ID]
    assert fake.WRONG_SIGNATURE_ACCESS_KEY != fake.ACCESS_KEY


def test_fault_bodies_use_the_authress_error_shape() -> None:
    assert fake.error_body(429) == {"errorCode": "TooManyRequests", "title": "Too many requests. Please retry later."}
    assert fake.error_body(502)["errorCode"] == "ServiceError"


def test_portal_call_counts_are_deterministic_and_only_for_ended_days() -> None:
    rows = fake.truth_calls(date(2025, 3, 1), date(2025, 3, 11))
    assert rows == fake.truth_calls(date(2025, 3, 1), date(2025, 3, 11))
    assert {r.day for r in rows} == {date(2025, 3, 1) + timedelta(days=i) for i in range(10)}
    assert len(rows) < 10 * len(fake.RESOURCES)  # some (day, resource) pairs saw no calls
    assert fake.truth_calls(date(2025, 3, 1), date(2025, 3, 11), today=date(2025, 3, 4))[-1].day == date(2025, 3, 3)
    assert fake.truth_calls(date(2023, 12, 30), date(2024, 1, 1)) == []
    text = fake.portal_csv(date(2025, 3, 1), date(2025, 3, 2))
    lines = text.splitlines()
    assert lines[0] == "date,resource,operation,calls" and len(lines) == 1 + len(
        fake.truth_calls(date(2025, 3, 1), date(2025, 3, 2))
    )
