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

from integrations.providers.base import ProviderResponseError


@dataclass(frozen=True)
class Account:
    account_id: str
    name: str
    company_name: str
    created_time: str


def _bad(what: str) -> ProviderResponseError:
    return ProviderResponseError(f"Authress returned an unexpected response: {what}.")


def _opt_str(obj: dict[str, Any], key: str, what: str) -> str:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise _bad(f"{what}.{key} is not a string")
    return (value or "").strip()


def parse_account(body: Any) -> Account:
    if not isinstance(body, dict):
        raise _bad("the account is not an object")
    account_id = _opt_str(body, "accountId", "account")
    if not account_id:
        raise _bad("account.accountId is missing")
    company = body.get("company")
    if company is not None and not isinstance(company, dict):
        raise _bad("account.company is not an object")
    company_name = _opt_str(company or {}, "name", "account.company")
    return Account(account_id, _opt_str(body, "name", "account"), company_name, _opt_str(body, "createdTime", "account"))


def error_text(body: Any) -> str:
    """The human part of an Authress error body, or "" when it has none we know."""
    if not isinstance(body, dict):
        return ""
    for key in ("title", "message", "errorCode"):
        value = body.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()[:300]
    return ""
