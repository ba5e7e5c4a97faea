"""A fake of Google Cloud as the Vertex AI connector sees it: the OAuth token endpoint (the
signed-JWT assertion grant of RFC 7523) and BigQuery's `jobs.query` / `getQueryResults`,
serving a Cloud Billing export (standard usage cost table) holding Vertex AI rows.

Routes below `/google_vertex`: `POST /token` (the `token_uri` of `service_account_info`),
`POST /bigquery/v2/projects/{project}/queries` and `GET …/queries/{jobId}`; so `base_url` =
sandbox url + "/google_vertex". The service-account key is generated deterministically here
(no key material is stored in the repository); the token endpoint verifies each assertion's
RS256 signature with its public key, and BigQuery accepts only tokens this module issued.

BigQuery's documented shapes: `useLegacySql` must be false (the API's default is legacy SQL),
parameters are NAMED, every value in `rows[].f[].v` is a string (or null), `totalRows` is a
string, the first `jobs.query` answer says `jobComplete: false` (poll `getQueryResults`), and
pages are linked by `pageToken`. No SQL is interpreted: the connector's query is recognised by
its parameters (`start_time`, `end_time`, `service_id`, `other_services`) and its table, and answered from
`truth_rows`, so tests and responses cannot disagree. Every sandbox row has its
`usage_start_time` at 00:00 UTC of its day. `revise(day)` restates a day, as the export does;
`rename_sku` and `withdraw_credits` restate every day from then on (a SKU given a new id or
description, a promotion's credits withdrawn); `clear_changes` undoes all of them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import re
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Any, NamedTuple
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox.core import Changes, Request, Response, digest, json_response

PREFIX = "/google_vertex"
BILLING_ACCOUNT = "01A2B3-C4D5E6-F7A8B9"
PROJECT_ID = "doow-sandbox-billing"  # holds the export dataset; the service account may run jobs here
DATASET = "billing_export"
TABLE = "gcp_billing_export_v1_" + BILLING_ACCOUNT.replace("-", "_")
BILLING_TABLE = f"{PROJECT_ID}.{DATASET}.{TABLE}"
LOCATION = "US"
NO_JOBS_PROJECT = "doow-sandbox-nojobs"  # exists, but nobody here holds BigQuery Job User on it
SERVICE_ACCOUNT = "doow-usage@doow-sandbox-billing.iam.gserviceaccount.com"
NO_ACCESS_ACCOUNT = "doow-no-access@doow-sandbox-billing.iam.gserviceaccount.com"  # no dataset role
DELETED_ACCOUNT = "doow-deleted@doow-sandbox-billing.iam.gserviceaccount.com"  # token: not found
VERTEX_SERVICE_ID = "C7E2-9256-1C43"
TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"  # google-auth's fixed `aud`, whatever token_uri is
READ_ONLY_SCOPE = "https://www.googleapis.com/auth/cloud-platform.read-only"
ACCEPTED_SCOPES = {READ_ONLY_SCOPE, "https://www.googleapis.com/auth/cloud-platform",
                   "https://www.googleapis.com/auth/bigquery", "https://www.googleapis.com/auth/bigquery.readonly"}  # fmt: skip
TOKEN_LIFETIME = 3599
PAGE_ROWS = 100  # BigQuery caps a page by size (10 MB); the sandbox by rows, so paging happens
BYTES_PER_PARTITION_DAY = 3_000_000  # what one daily partition of the selected columns "weighs"
MIN_BYTES_BILLED = 10 * 1024 * 1024  # BigQuery bills at least 10 MB per table per query
COLUMNS = ("usage_day", "project_id", "region", "service_id", "service_description", "sku_id", "sku_description",
           "usage_unit", "currency", "labels", "usage_amount", "cost", "credits")  # fmt: skip
_TYPES = ("DATE", *("STRING",) * 9, "NUMERIC", "NUMERIC", "STRING")
_SIGNING_KEY = b"doow-sandbox-google-token-signing-key"
DAY = timedelta(days=1)
M = Decimal(1_000_000)


# ---------------------------------------------------------------- the fake billing data
@dataclass(frozen=True)
class Sku:
    id: str
    description: str
    unit: str  # usage.unit as the export spells it
    price: Decimal  # USD per unit
    low: int  # usage amount range of one (day, project, region) row
    high: int
    model: str = ""  # the model this SKU bills, as the connector should name it ("" if none)
    tokens: str = ""  # "input", "output", "cached_input" when usage.amount counts tokens
    service_id: str = VERTEX_SERVICE_ID
    service: str = "Vertex AI"  # service.description


GEMINI_API = ("SBX0-6E4A-A11A", "Generative Language API")  # the paid Gemini API (AI Studio keys)
CLAUDE = ("SBX1-C1A0-DE45", "Claude Sonnet 4.5")  # a partner model: its own Marketplace service
COMPUTE = ("6F25-4F4B-8A19", "Compute Engine")  # not AI: never in the connector's answer


SKUS: tuple[Sku, ...] = (
    Sku("A1F3-5C2E-7B90", "Gemini 2.5 Flash GA Text Input - Predictions", "count", Decimal("0.30") / M, 200_000, 4_000_000, "gemini-2.5-flash", "input"),
    Sku("B2E4-6D3F-8CA1", "Gemini 2.5 Flash GA Text Output - Predictions", "count", Decimal("2.50") / M, 20_000, 600_000, "gemini-2.5-flash", "output"),
    Sku("C3D5-7E4A-9DB2", "Gemini 2.5 Flash GA Input Text Caching", "count", Decimal("0.03") / M, 50_000, 2_000_000, "gemini-2.5-flash", "cached_input"),
    Sku("D4C6-8F5B-AEC3", "Gemini 2.5 Flash GA Thinking Text Output - Predictions", "count", Decimal("2.50") / M, 10_000, 300_000, "gemini-2.5-flash", "output"),
    Sku("E5B7-9A6C-BFD4", "Gemini 2.5 Pro Text Input - Predictions", "count", Decimal("1.25") / M, 100_000, 2_000_000, "gemini-2.5-pro", "input"),
    Sku("F6A8-AB7D-C0E5", "Gemini 2.5 Pro Text Output - Predictions", "count", Decimal("10.00") / M, 10_000, 200_000, "gemini-2.5-pro", "output"),
    Sku("07B9-BC8E-D1F6", "Gemini 2.5 Pro Text Input (Long) - Predictions", "count", Decimal("2.50") / M, 200_000, 900_000, "gemini-2.5-pro", "input"),
    Sku("18CA-CD9F-E207", "Gemini 2.0 Flash Text Input - Batch Predictions", "count", Decimal("0.075") / M, 500_000, 9_000_000, "gemini-2.0-flash", "input"),
    Sku("29DB-DEA0-F318", "Gemini 2.0 Flash Text Output - Batch Predictions", "count", Decimal("0.30") / M, 50_000, 900_000, "gemini-2.0-flash", "output"),
    Sku("3AEC-EFB1-0429", "Gemini 2.5 Flash Image Input - Predictions", "count", Decimal("0.30") / M, 1_000, 80_000, "gemini-2.5-flash", "input"),
    # Cost-only SKUs: token-hours of cache storage, characters (Gemini 1.x text was billed per
    # character: not tokens), node time, and images; the last two are not "<model> input/output".
    Sku("4BFD-F0C2-153A", "Gemini 2.5 Flash GA Text Input Caching Storage", "hour", Decimal("0.05"), 1, 24, "gemini-2.5-flash"),
    Sku("5C0E-01D3-264B", "Gemini 1.5 Flash Text Input - Predictions", "character", Decimal("0.00001875") / 1000, 10_000, 900_000, "gemini-1.5-flash"),
    Sku("6D1F-12E4-375C", "Vertex AI: Online/Batch Prediction N1 Predefined Instance Core running in Americas", "seconds", Decimal("0.0000304"), 3_600, 86_400),
    Sku("7E20-23F5-486D", "Imagen 3 Image Generation - Predictions", "count", Decimal("0.04"), 1, 150),
    # The Gemini API billed under "Generative Language API", and Claude on Vertex billed under its
    # own service; a Compute Engine SKU the connector's service filter must leave out.
    Sku("8A31-B2C4-D5E6", "Gemini 2.5 Flash Input Tokens", "count", Decimal("0.30") / M, 100_000, 3_000_000, "gemini-2.5-flash", "input", *GEMINI_API),
    Sku("9B42-C3D5-E6F7", "Gemini 2.5 Flash Output Tokens", "count", Decimal("2.50") / M, 10_000, 300_000, "gemini-2.5-flash", "output", *GEMINI_API),
    Sku("AC53-D4E6-F708", "Claude Sonnet 4.5 Input Tokens", "count", Decimal("3.00") / M, 50_000, 1_500_000, "claude-sonnet-4.5", "input", *CLAUDE),
    Sku("BD64-E5F7-0819", "Claude Sonnet 4.5 Output Tokens", "count", Decimal("15.00") / M, 5_000, 150_000, "claude-sonnet-4.5", "output", *CLAUDE),
    Sku("CE75-F608-192A", "N1 Predefined Instance Core running in Americas", "hour", Decimal("0.031611"), 24, 240, "", "", *COMPUTE),
)  # fmt: skip
PROJECTS: tuple[str, ...] = ("acme-chatbot-prod", "acme-research-ml")
CREDIT_PROJECT = PROJECTS[1]  # a promotion pays 30 % of some of its rows
CUD_PROJECT = PROJECTS[0]  # a committed-use discount pays 10 % of some of its Vertex AI rows
# The export's labels of each project's usage (resource labels the teams set).
LABELS: dict[str, tuple[tuple[str, str], ...]] = {
    PROJECTS[0]: (("env", "prod"), ("team", "chat")),
    PROJECTS[1]: (("team", "research"),),
}
REGIONS: tuple[str | None, ...] = ("us-central1", "europe-west4", None)  # None: a global endpoint
CURRENCY = "USD"
DATA_START = date(2024, 1, 1)
_PLACES = Decimal("0.000001")


class BillingRow(NamedTuple):
    """One row of the connector's query result: a (day, project, region, SKU, unit, currency) group."""

    day: date
    project_id: str
    region: str | None
    sku: Sku
    usage_amount: Decimal
    cost: Decimal
    credits: Decimal  # <= 0, the sum of the rows' credits[].amount
    currency: str = CURRENCY
    credits_by_type: tuple[tuple[str, Decimal], ...] = ()  # (credits[].type, sum), by type
    labels: tuple[tuple[str, str], ...] = ()


_lock = threading.Lock()
_revisions: dict[date, int] = {}


def revise(day: date, revision: int = 1) -> None:
    """Restate a day's rows (usage arrives late: each revision adds 7 %), as the export does."""
    with _lock:
        _revisions[day] = revision


def clear_revisions() -> None:
    with _lock:
        _revisions.clear()


_changes: Changes[BillingRow] = Changes()


def rename_sku(sku_id: str, *, new_id: str | None = None, description: str | None = None) -> None:
    """From now on the export bills SKU `sku_id` under `new_id` and/or `description` (Google
    re-catalogues SKUs; the rows of days already exported are restated with it)."""

    def edit(row: BillingRow) -> BillingRow:
        if row.sku.id != sku_id:
            return row
        sku = replace(row.sku, id=new_id or row.sku.id, description=description or row.sku.description)
        return row._replace(sku=sku)

    _changes.add(edit)


def withdraw_credits(project: str) -> None:
    """From now on `project`'s rows carry no credits (a promotion reversed)."""
    _changes.add(lambda row: row._replace(credits=Decimal(0), credits_by_type=()) if row.project_id == project else row)


# What POST /_sandbox/changes may call (sandbox.app), by name.
CHANGES = {"rename_sku": rename_sku, "withdraw_credits": withdraw_credits}


def clear_changes() -> None:
    _changes.clear()
    clear_revisions()


@lru_cache(maxsize=20_000)
def _day_rows(day: date, revision: int) -> tuple[BillingRow, ...]:
    rows = []
    for project in PROJECTS:
        for region in REGIONS:
            for sku in SKUS:
                d = digest(day, project, region, sku.id)
                if d[0] < 110:  # ~43 % of combinations are idle on a day
                    continue
                base = sku.low + int.from_bytes(d[1:5], "big") % (sku.high - sku.low + 1)
                amount = Decimal(base * (100 + 7 * revision) // 100)
                cost = (amount * sku.price).quantize(_PLACES, ROUND_HALF_UP)
                by_type: list[tuple[str, Decimal]] = []
                if project == CREDIT_PROJECT and d[5] % 3 == 0:
                    by_type.append(("PROMOTION", -(cost * Decimal("0.3")).quantize(_PLACES, ROUND_HALF_UP)))
                if project == CUD_PROJECT and sku.service_id == VERTEX_SERVICE_ID and d[6] % 4 == 0:
                    by_type.append(
                        ("COMMITTED_USAGE_DISCOUNT", -(cost * Decimal("0.1")).quantize(_PLACES, ROUND_HALF_UP))
                    )
                credits = sum((a for _, a in by_type), Decimal(0))
                rows.append(BillingRow(day, project, region, sku, amount, cost, credits, CURRENCY, tuple(by_type),
                                       LABELS.get(project, ())))  # fmt: skip
    return tuple(rows)


def truth_rows(
    start: datetime, end: datetime, *, now: datetime | None = None, every_service: bool = False
) -> list[BillingRow]:
    """Rows of UTC days whose 00:00 lies in [start, end) and that have ended before `now`: those
    of the AI services the connector reads (Vertex AI, the Gemini API, partner models), or with
    `every_service` the whole export (Compute Engine too)."""
    now = now or datetime.now(UTC)
    day = max(DATA_START, (start - timedelta(microseconds=1)).date() + DAY)
    rows: list[BillingRow] = []
    while (midnight := datetime(day.year, day.month, day.day, tzinfo=UTC)) < end and midnight + DAY <= now:
        with _lock:
            revision = _revisions.get(day, 0)
        rows.extend(_day_rows(day, revision))
        day += DAY
    rows = [r for r in _changes.apply(rows) if every_service or r.sku.service_id in AI_SERVICE_IDS]
    return sorted(rows, key=lambda r: (r.day, r.project_id, r.region or "", r.sku.id))


# ---------------------------------------------------------------- the service-account key
_PRIME_HINTS = {  # steps from each seed's random start to its next prime, found once, checked
    "doow-sandbox-google-vertex/service-account-key": (874, 508),
    "doow-sandbox-google-vertex/forged-key": (470, 351),
}


def _probably_prime(n: int, rounds: int = 12) -> bool:
    if any(n % p == 0 for p in (3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)):
        return False
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    rng = random.Random(n)
    for _ in range(rounds):
        x = pow(rng.randrange(2, n - 2), d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


@lru_cache(maxsize=4)
def _private_key(seed: str) -> rsa.RSAPrivateKey:
    """A 2048-bit RSA key derived from `seed` (deterministic, unlike cryptography's generator)."""
    rng, primes = random.Random(seed), []
    for hint in _PRIME_HINTS.get(seed, (0, 0)):
        start = rng.getrandbits(1024) | (3 << 1022) | 1
        step = hint
        while not ((start + 2 * step - 1) % 65537 and _probably_prime(start + 2 * step)):
            step += 1  # only if a hint is stale: search on
        primes.append(start + 2 * step)
    p, q = primes
    e, n = 65537, p * q
    d = pow(e, -1, (p - 1) * (q - 1))
    numbers = rsa.RSAPrivateNumbers(p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q),
                                    rsa.rsa_crt_iqmp(p, q), rsa.RSAPublicNumbers(e, n))  # fmt: skip
    return numbers.private_key()


def _key_id(seed: str) -> str:
    return hashlib.sha1(seed.encode()).hexdigest()


KEY_SEED = "doow-sandbox-google-vertex/service-account-key"
FORGED_SEED = "doow-sandbox-google-vertex/forged-key"
KEY_ID = _key_id(KEY_SEED)
DELETED_KEY_ID = _key_id("doow-sandbox-google-vertex/deleted-key")  # a key id Google no longer knows


def service_account_info(sandbox_url: str, *, email: str = SERVICE_ACCOUNT, key: str = "valid") -> dict[str, str]:
    """A service-account key file (as IAM → Service accounts → Keys → Add key → JSON downloads
    it) whose token_uri is this sandbox. `key`: "valid"; "deleted" (a key id the sandbox no
    longer knows); "forged" (the valid key id, signed by another private key)."""
    seed = FORGED_SEED if key == "forged" else KEY_SEED
    pem = _private_key(seed).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    local = email.split("@")[0]
    return {
        "type": "service_account",
        "project_id": PROJECT_ID,
        "private_key_id": DELETED_KEY_ID if key == "deleted" else KEY_ID,
        "private_key": pem.decode(),
        "client_email": email,
        "client_id": str(int.from_bytes(digest(email)[:8], "big")),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": f"{sandbox_url.rstrip('/')}{PREFIX}/token",
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": f"https://www.googleapis.com/robot/v1/metadata/x509/{local}%40{PROJECT_ID}.iam.gserviceaccount.com",
        "universe_domain": "googleapis.com",
    }


def service_account_json(sandbox_url: str, **kwargs: str) -> str:
    return json.dumps(service_account_info(sandbox_url, **kwargs), indent=2)


# ---------------------------------------------------------------- errors
_STATUS = {400: ("INVALID_ARGUMENT", "invalid"), 401: ("UNAUTHENTICATED", "authError"),
           403: ("PERMISSION_DENIED", "accessDenied"), 404: ("NOT_FOUND", "notFound"),
           429: ("RESOURCE_EXHAUSTED", "rateLimitExceeded"), 500: ("INTERNAL", "backendError"),
           503: ("UNAVAILABLE", "backendError")}  # fmt: skip


def _google_error(status: int, message: str, reason: str | None = None) -> dict[str, Any]:
    name, default_reason = _STATUS.get(status, ("UNKNOWN", "backendError"))
    return {"error": {"code": status, "message": message,
                      "errors": [{"message": message, "domain": "global", "reason": reason or default_reason}],
                      "status": name}}  # fmt: skip


def error_body(status: int) -> dict[str, Any]:
    """Google's API error JSON for `status`; used for injected faults."""
    messages = {
        401: "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
        "other valid authentication credential.",
        403: f"Access Denied: Table {PROJECT_ID}:{DATASET}.{TABLE}: User does not have permission to query table "
        f"{PROJECT_ID}:{DATASET}.{TABLE}, or perhaps it does not exist.",
        404: "Not found: URL",
        429: "Exceeded rate limits: too many api requests per user per method for this user_method.",
    }
    return _google_error(
        status, messages.get(status, "An internal error occurred and the request could not be completed.")
    )


def common_headers() -> dict[str, str]:
    return {"server": "ESF", "vary": "Origin, X-Origin, Referer"}


def _respond(status: int, payload: Any) -> Response:
    return json_response(status, payload, common_headers())


def _fail(status: int, message: str, reason: str | None = None) -> Response:
    return _respond(status, _google_error(status, message, reason))


# ---------------------------------------------------------------- token endpoint
def _oauth_error(error: str, description: str, status: int = 400) -> Response:
    return _respond(status, {"error": error, "error_description": description})


def issue_token(email: str) -> str:
    payload = base64.urlsafe_b64encode(email.encode()).decode().rstrip("=")
    mac = hmac.new(_SIGNING_KEY, payload.encode(), hashlib.sha256).hexdigest()[:24]
    return f"ya29.sandbox.{payload}.{mac}"


def _token_email(token: str) -> str | None:
    prefix, _, rest = token.partition("ya29.sandbox.")
    payload, _, mac = rest.partition(".")
    good = hmac.new(_SIGNING_KEY, payload.encode(), hashlib.sha256).hexdigest()[:24]
    if prefix or not payload or not hmac.compare_digest(mac, good):
        return None
    return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()


def _token(request: Request) -> Response:
    form = {k: v[-1] for k, v in parse_qs(request.body.decode(errors="replace")).items()}
    if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
        return _oauth_error("unsupported_grant_type", f"Invalid grant_type: {form.get('grant_type', '')}")
    assertion = form.get("assertion", "")
    try:
        header = jwt.get_unverified_header(assertion)
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        return _oauth_error("invalid_request", "Invalid JWT: the assertion could not be decoded.")
    if claims.get("iss") not in (SERVICE_ACCOUNT, NO_ACCESS_ACCOUNT):
        return _oauth_error("invalid_grant", "Invalid grant: account not found")
    if header.get("kid") != KEY_ID:
        return _oauth_error("invalid_grant", "Invalid JWT Signature.")
    try:
        jwt.decode(assertion, _private_key(KEY_SEED).public_key(), algorithms=["RS256"], audience=TOKEN_AUDIENCE,
                   options={"require": ["iss", "aud", "iat", "exp"]}, leeway=300)  # fmt: skip
    except jwt.InvalidSignatureError:
        return _oauth_error("invalid_grant", "Invalid JWT Signature.")
    except jwt.PyJWTError:
        return _oauth_error("invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in "
                            "a reasonable timeframe. Check your iat and exp values in the JWT claim.")  # fmt: skip
    now = time.time()
    if claims["exp"] - claims["iat"] > 3600 or abs(claims["iat"] - now) > 300:
        return _oauth_error("invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in "
                            "a reasonable timeframe. Check your iat and exp values in the JWT claim.")  # fmt: skip
    scopes = set(str(claims.get("scope", "")).split())
    if not scopes or not scopes <= ACCEPTED_SCOPES:
        return _oauth_error("invalid_scope", f"Invalid OAuth scope or ID token audience provided: {sorted(scopes)}.")
    return _respond(200, {"access_token": issue_token(claims["iss"]), "expires_in": TOKEN_LIFETIME,
                          "token_type": "Bearer"})  # fmt: skip


# ---------------------------------------------------------------- BigQuery
@dataclass
class _Job:
    project: str
    location: str
    start: datetime
    end: datetime
    service_id: str
    other_services: str
    page_size: int
    bytes: int


_jobs: OrderedDict[str, _Job] = OrderedDict()
_QUERIES = re.compile(r"^/bigquery/v2/projects/([^/]+)/queries(?:/([^/]+))?/?$")


def handle(request: Request) -> Response:
    if request.path.rstrip("/") == "/token":
        if request.method != "POST":
            return _oauth_error("invalid_request", "Method not allowed", 405)
        return _token(request)
    match = _QUERIES.match(request.path)
    if match is None:
        return _fail(404, f"Not found: URL {request.path}")
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    email = _token_email(token.strip()) if scheme.lower() == "bearer" else None
    if email is None:
        return _fail(401, "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
                     "cookie or other valid authentication credential.", "authError")  # fmt: skip
    project, job_id = match.groups()
    if project not in (PROJECT_ID, NO_JOBS_PROJECT):
        return _fail(404, f"Not found: Project {project}", "notFound")
    if job_id is None and request.method == "POST":
        return _query(request, project, email)
    if job_id is not None and request.method == "GET":
        return _results(request, project, job_id)
    return _fail(405, f"Method {request.method} not allowed", "invalid")


def _params(body: dict[str, Any]) -> dict[str, tuple[str, str]] | str:
    """{name: (type, value)} of the NAMED parameters, or what is wrong with them."""
    if body.get("parameterMode") != "NAMED":
        return "Query parameters must be NAMED for this query (parameterMode)."
    params = {}
    for p in body.get("queryParameters") or []:
        try:
            params[p["name"]] = (p["parameterType"]["type"], p["parameterValue"]["value"])
        except (KeyError, TypeError):
            return "Invalid query parameter: each needs name, parameterType.type and parameterValue.value."
    wanted = {"start_time": "TIMESTAMP", "end_time": "TIMESTAMP", "service_id": "STRING", "other_services": "STRING"}
    for name, kind in wanted.items():
        if params.get(name, ("", ""))[0] != kind:
            return f"Query parameter '{name}' of type {kind} not found (the sandbox answers the billing query only)."
        if f"@{name}" not in body["query"]:
            return f"Query parameter '{name}' is declared but not used."
    return params


def _query(request: Request, project: str, email: str) -> Response:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return _fail(400, "Invalid JSON payload received.", "parseError")
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        return _fail(400, "Required parameter is missing: query", "required")
    if body.get("useLegacySql") is not False:  # omitted means legacy SQL, which rejects `p.d.t`
        return _fail(400, "Invalid table name: `...` [Try using standard SQL "
                     "(https://cloud.google.com/bigquery/docs/reference/standard-sql/enabling-standard-sql)].",
                     "invalidQuery")  # fmt: skip
    params = _params(body)
    if isinstance(params, str):
        return _fail(400, params, "invalidQuery")
    if not str(body.get("maximumBytesBilled", "")).isdigit():  # optional in BigQuery; required here
        return _fail(400, "The sandbox requires maximumBytesBilled (a cap on what one query may bill).", "invalid")
    if project == NO_JOBS_PROJECT:
        return _fail(403, f"Access Denied: Project {project}: User does not have bigquery.jobs.create permission "
                     f"in project {project}.", "accessDenied")  # fmt: skip
    location = str(body.get("location") or LOCATION)
    if location.upper() != LOCATION:
        return _fail(404, f"Not found: Dataset {PROJECT_ID}:{DATASET} was not found in location {location}", "notFound")
    table = re.search(r"FROM\s+`([^`]+)`", body["query"])
    if table is None or table.group(1) != BILLING_TABLE:
        name = table.group(1) if table else "(none)"
        t_project, _, rest = name.partition(".")
        t_dataset, _, t_table = rest.partition(".")
        if (t_project, t_dataset) != (PROJECT_ID, DATASET):
            return _fail(404, f"Not found: Dataset {t_project}:{t_dataset} was not found in location {location}",
                         "notFound")  # fmt: skip
        return _fail(404, f"Not found: Table {t_project}:{t_dataset}.{t_table} was not found in location {location}",
                     "notFound")  # fmt: skip
    if email != SERVICE_ACCOUNT:
        return _fail(403, error_body(403)["error"]["message"], "accessDenied")
    try:
        start = datetime.fromisoformat(params["start_time"][1])
        end = datetime.fromisoformat(params["end_time"][1])
    except ValueError:
        return _fail(400, "Invalid TIMESTAMP query parameter value.", "invalidQuery")
    partition_days = max(1, (datetime.now(UTC) - (start - 2 * DAY)).days + 1)
    billed = max(MIN_BYTES_BILLED, partition_days * BYTES_PER_PARTITION_DAY)
    if billed > int(body["maximumBytesBilled"]):
        return _fail(400, f"Query exceeded limit for bytes billed: {body['maximumBytesBilled']}. {billed} or higher "
                     "required.", "bytesBilledLimitExceeded")  # fmt: skip
    schema = {"fields": [{"name": n, "type": t, "mode": "NULLABLE"} for n, t in zip(COLUMNS, _TYPES, strict=True)]}
    if body.get("dryRun"):
        return _respond(200, {"kind": "bigquery#queryResponse", "schema": schema, "jobComplete": True,
                              "jobReference": {"projectId": project, "location": LOCATION},
                              "totalBytesProcessed": str(partition_days * BYTES_PER_PARTITION_DAY),
                              "cacheHit": False})  # fmt: skip
    job_id = "job_" + uuid.uuid4().hex
    asked = str(body.get("maxResults", ""))
    page_size = max(1, min(int(asked), PAGE_ROWS)) if asked.isdigit() else PAGE_ROWS
    with _lock:
        _jobs[job_id] = _Job(project, LOCATION, start, end, params["service_id"][1], params["other_services"][1],
                             page_size, billed)  # fmt: skip
        while len(_jobs) > 5000:
            _jobs.popitem(last=False)
    # The documented "not finished within timeoutMs" answer: no schema, no rows; poll getQueryResults.
    return _respond(200, {"kind": "bigquery#queryResponse", "jobComplete": False,
                          "jobReference": {"projectId": project, "jobId": job_id, "location": LOCATION}})  # fmt: skip


def _number(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _row_json(row: BillingRow) -> dict[str, Any]:
    labels = json.dumps([{"key": k, "value": v} for k, v in row.labels], separators=(",", ":"))
    credits = json.dumps([{"type": t, "amount": _number(a)} for t, a in row.credits_by_type], separators=(",", ":"))
    values = (row.day.isoformat(), row.project_id, row.region, row.sku.service_id, row.sku.service, row.sku.id,
              row.sku.description, row.sku.unit, row.currency, labels, _number(row.usage_amount), _number(row.cost),
              credits)  # fmt: skip
    return {"f": [{"v": v} for v in values]}


# The services whose rows an AI usage connector must read: every one of this export but
# Compute Engine. Defined here, not taken from the connector, so a connector filter that misses
# one of them is caught by the tests comparing against `truth_rows`.
AI_SERVICE_IDS = frozenset({VERTEX_SERVICE_ID, GEMINI_API[0], CLAUDE[0]})


def read_skus() -> tuple[Sku, ...]:
    """The SKUs of the services the connector must read (every SKU but Compute Engine's)."""
    return tuple(s for s in SKUS if s.service_id in AI_SERVICE_IDS)


def selected(row: BillingRow, service_id: str, other_services: str) -> bool:
    """Whether a query with these parameters returns this row (its WHERE, in Python)."""
    return row.sku.service_id == service_id or re.search(other_services, row.sku.service) is not None


def _results(request: Request, project: str, job_id: str) -> Response:
    with _lock:
        job = _jobs.get(job_id)
    location = request.arg("location") or LOCATION
    if job is None or job.project != project or location.upper() != job.location:
        return _fail(404, f"Not found: Job {project}:{location}.{job_id}", "notFound")
    reference = {"projectId": project, "jobId": job_id, "location": job.location}
    rows = [
        r for r in truth_rows(job.start, job.end, every_service=True) if selected(r, job.service_id, job.other_services)
    ]
    offset = 0
    if token := request.arg("pageToken"):
        try:
            offset = int(base64.urlsafe_b64decode(token.encode()).decode().removeprefix("offset:"))
        except ValueError:
            return _fail(400, "Invalid page token.", "invalid")
    asked = request.arg("maxResults") or ""
    size = min(int(asked), job.page_size) if asked.isdigit() and int(asked) > 0 else job.page_size
    page = rows[offset : offset + size]
    payload: dict[str, Any] = {
        "kind": "bigquery#getQueryResultsResponse",
        "etag": hashlib.md5(job_id.encode()).hexdigest(),
        "schema": {
            "fields": [{"name": n, "type": t, "mode": "NULLABLE"} for n, t in zip(COLUMNS, _TYPES, strict=True)]
        },
        "jobReference": reference,
        "totalRows": str(len(rows)),
        "totalBytesProcessed": str(job.bytes),
        "jobComplete": True,
        "cacheHit": False,
    }
    if page:  # BigQuery omits `rows` when there are none
        payload["rows"] = [_row_json(r) for r in page]
    if offset + size < len(rows):
        payload["pageToken"] = base64.urlsafe_b64encode(f"offset:{offset + size}".encode()).decode()
    return _respond(200, payload)
