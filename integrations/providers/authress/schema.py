"""Authress API shapes, validated at the boundary.

Only `GET /v1/accounts/{accountId}` is read (to verify the key); its `Account` has
`accountId`, `createdTime`, `name` (nullable, ≤ 32 characters), `company` (an object) and
`links`. Error bodies are not described by the OpenAPI spec; the `title` / `errorCode` pair
read by `error_text` is what the sandbox serves (unconfirmed for the live API), and anything
else falls back to the HTTP seam's generic reading.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from integrations.providers.toolkit import Shape


@dataclass(frozen=True)
class Account:
    account_id: str
    name: str
    company_name: str
    created_time: str


shape = Shape("Authress")


def _opt_str(obj: dict[str, Any], key: str, what: str) -> str:
    return shape.text(obj, key, what, required=False, strip=True)


def parse_account(body: Any) -> Account:
    body = shape.obj(body, "the account")
    account_id = _opt_str(body, "accountId", "account")
    if not account_id:
        raise shape.bad("account.accountId is missing")
    company_name = _opt_str(shape.opt_obj(body, "company", "account"), "name", "account.company")
    return Account(
        account_id, _opt_str(body, "name", "account"), company_name, _opt_str(body, "createdTime", "account")
    )


def error_text(body: Any) -> str:
    """The human part of an Authress error body, or "" when it has none we know."""
    if not isinstance(body, dict):
        return ""
    for key in ("title", "message", "errorCode"):
        value = body.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()[:300]
    return ""
