"""A fake of the Authress API, enough to verify a service-client access key for real.

The sandbox holds deterministic Ed25519 key pairs (seeded from a hash), hands tests the
access keys built from them (`clientId.keyId.accountId.privateKey`, the private key being the
base64 body of its PKCS#8 DER), and checks every bearer token the way Authress does: known
`kid`, EdDSA signature by that key, issuer, audience, subject and expiry. Anything wrong is a
401. `GET /v1/accounts/{accountId}` then answers with the documented `Account` shape.

Authress has no usage API, so nothing here serves call volume. `truth_calls` / `portal_csv`
make the deterministic "exported from the portal" CSV of daily call counts per resource and
operation that the import tests and the demo feed to usage/importer.py.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple
from urllib.parse import quote, unquote

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)

from sandbox.core import Request, Response, json_response

ACCOUNT_ID = "acc_sandboxdoow01"
ACCOUNT_NAME = "Doow sandbox"
COMPANY_NAME = "Acme Corp"
CREATED_TIME = "2024-01-02T03:04:05.000Z"
CLIENT_ID = "sc_doowUsageSync"
NO_ACCESS_CLIENT_ID = "sc_noAccountAccess"
KEY_ID = "kid_sandbox0001"
REVOKED_KEY_ID = "kid_revoked0001"
NO_ACCESS_KEY_ID = "kid_noaccess001"
UNKNOWN_KEY_ID = "kid_neverissued1"
ISSUER_ORIGIN = f"https://{ACCOUNT_ID}.api.authress.io"
# A service client of the account as set up with a custom domain: Authress accepts its tokens
# only when they are issued by that domain (https://<custom domain>/v1/clients/<clientId>).
CUSTOM_DOMAIN = "login.acme-sandbox.example"
CUSTOM_DOMAIN_CLIENT_ID = "sc_customDomain"
CUSTOM_DOMAIN_KEY_ID = "kid_custom00001"
AUDIENCE = f"{ACCOUNT_ID}.accounts.authress.io"


def private_key(label: str) -> Ed25519PrivateKey:
    """A deterministic Ed25519 key: the same label gives the same key in every process."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"doow-sandbox-authress|{label}".encode()).digest())


def encode_private_key(key: Ed25519PrivateKey) -> str:
    der = key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    return base64.b64encode(der).decode()


def access_key(client_id: str, key_id: str, account_id: str = ACCOUNT_ID, *, label: str | None = None) -> str:
    return f"{client_id}.{key_id}.{account_id}.{encode_private_key(private_key(label or key_id))}"


@dataclass(frozen=True)
class VerificationKey:
    client_id: str
    public_key: Ed25519PublicKey
    revoked: bool = False
    account_access: bool = True
    issuer_origin: str = ISSUER_ORIGIN


KEYS: dict[str, VerificationKey] = {
    KEY_ID: VerificationKey(CLIENT_ID, private_key(KEY_ID).public_key()),
    REVOKED_KEY_ID: VerificationKey(CLIENT_ID, private_key(REVOKED_KEY_ID).public_key(), revoked=True),
    NO_ACCESS_KEY_ID: VerificationKey(
        NO_ACCESS_CLIENT_ID, private_key(NO_ACCESS_KEY_ID).public_key(), account_access=False
    ),
    CUSTOM_DOMAIN_KEY_ID: VerificationKey(
        CUSTOM_DOMAIN_CLIENT_ID,
        private_key(CUSTOM_DOMAIN_KEY_ID).public_key(),
        issuer_origin=f"https://{CUSTOM_DOMAIN}",
    ),
}
ACCESS_KEY = access_key(CLIENT_ID, KEY_ID)
REVOKED_ACCESS_KEY = access_key(CLIENT_ID, REVOKED_KEY_ID)
NO_ACCESS_ACCESS_KEY = access_key(NO_ACCESS_CLIENT_ID, NO_ACCESS_KEY_ID)
UNKNOWN_KID_ACCESS_KEY = access_key(CLIENT_ID, UNKNOWN_KEY_ID)
CUSTOM_DOMAIN_ACCESS_KEY = access_key(CUSTOM_DOMAIN_CLIENT_ID, CUSTOM_DOMAIN_KEY_ID)
# The right kid, signed by another key: only the signature check catches it.
WRONG_SIGNATURE_ACCESS_KEY = access_key(CLIENT_ID, KEY_ID, label="not-the-registered-key")


def issuer(client_id: str, origin: str = ISSUER_ORIGIN) -> str:
    return f"{origin}/v1/clients/{quote(client_id, safe='')}"


# ---------------------------------------------------------------- errors
ERRORS: dict[int, tuple[str, str]] = {
    401: ("Unauthorized", "Unauthorized. The request JWT found in the Authorization header is no longer valid."),
    403: ("Forbidden", "Forbidden. The service client does not have permission to read this account."),
    404: ("NotFound", "Not found. The account does not exist."),
    405: ("MethodNotAllowed", "Method not allowed."),
    429: ("TooManyRequests", "Too many requests. Please retry later."),
}


def error_body(status: int) -> dict[str, Any]:
    code, title = ERRORS.get(status, ("ServiceError", "The service had an error. Please retry."))
    return {"errorCode": code, "title": title}


def common_headers() -> dict[str, str]:
    return {"x-request-id": f"authress-{uuid.uuid4().hex}"}


def _error(status: int, title: str | None = None) -> Response:
    body = error_body(status)
    if title:
        body["title"] = title
    return json_response(status, body, common_headers())


# ---------------------------------------------------------------- token check
def check_token(authorization: str | None, *, now: datetime | None = None) -> VerificationKey | str:
    """The verification key a valid bearer token was signed with, or why it is invalid."""
    if not authorization or not authorization.startswith("Bearer "):
        return "No bearer token."
    token = authorization.removeprefix("Bearer ").strip()
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        return "The token is not a JWT."
    key = KEYS.get(str(header.get("kid")))
    if header.get("alg") != "EdDSA" or key is None:
        return "Unknown signing key."
    if key.revoked:
        return "The access key was deleted."
    now_ts = (now or datetime.now(UTC)).timestamp()
    try:
        claims = jwt.decode(
            token,
            key.public_key,
            algorithms=["EdDSA"],
            audience=AUDIENCE,
            issuer=issuer(key.client_id, key.issuer_origin),
            options={"require": ["exp", "iat", "iss", "aud", "sub"], "verify_exp": False},
        )
    except jwt.PyJWTError:
        return "The token's signature, issuer, audience or required claims are wrong."
    # Expiry checked against the given clock, so tests can judge it without sleeping.
    if not isinstance(claims["exp"], int | float) or claims["exp"] <= now_ts:
        return "The token has expired."
    if claims["sub"] != key.client_id:
        return "The token's subject is not the service client."
    return key


# ---------------------------------------------------------------- handler
def account_json() -> dict[str, Any]:
    return {
        "accountId": ACCOUNT_ID,
        "createdTime": CREATED_TIME,
        "name": ACCOUNT_NAME,
        "company": {"name": COMPANY_NAME},
        "links": {"self": {"href": f"/v1/accounts/{ACCOUNT_ID}"}},
    }


def handle(request: Request) -> Response:
    parts = [unquote(p) for p in request.path.strip("/").split("/")]
    if len(parts) != 3 or parts[:2] != ["v1", "accounts"]:
        return _error(404, "Not found.")
    if request.method != "GET":
        return _error(405)
    key = check_token(request.headers.get("authorization"))
    if isinstance(key, str):
        return _error(401, f"Unauthorized. {key}")
    if parts[2] != ACCOUNT_ID:
        return _error(404)
    if not key.account_access:
        return _error(403)
    return json_response(200, account_json(), {"Content-Type": "application/links+json", **common_headers()})


# ---------------------------------------------------------------- the portal's call counts
RESOURCES: tuple[tuple[str, str], ...] = (
    ("/v1/users/{userId}/resources/{resourceUri}/permissions/{permission}", "GET"),
    ("/v1/users/{userId}/resources", "GET"),
    ("/v1/records", "POST"),
    ("/v1/records/{recordId}", "PUT"),
    ("/v1/roles/{roleId}", "GET"),
)
DATA_START = date(2024, 1, 1)


class CallRow(NamedTuple):
    day: date
    resource: str
    operation: str
    calls: int


def truth_calls(start: date, end: date, *, today: date | None = None) -> list[CallRow]:
    """Daily call counts for days in [start, end) that have ended before `today` (UTC)."""
    today = today or datetime.now(UTC).date()
    rows = []
    day = max(start, DATA_START)
    while day < min(end, today):
        for resource, operation in RESOURCES:
            d = hashlib.sha256(f"{day}|{resource}|{operation}".encode()).digest()
            if d[0] >= 40:  # ~15 % of (day, resource) pairs saw no calls
                rows.append(CallRow(day, resource, operation, int.from_bytes(d[1:4], "big") % 250_000))
        day += timedelta(days=1)
    return rows


def portal_csv(start: date, end: date, *, today: date | None = None) -> str:
    """The `date,resource,operation,calls` CSV of those counts."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["date", "resource", "operation", "calls"])
    for row in truth_calls(start, end, today=today):
        writer.writerow([row.day.isoformat(), row.resource, row.operation, row.calls])
    return out.getvalue()
