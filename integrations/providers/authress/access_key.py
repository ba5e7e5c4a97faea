"""The Authress service-client access key and the short-lived JWT signed with it.

An access key reads `clientId.keyId.accountId.privateKey`, where the last part is the base64
body of a PKCS#8 Ed25519 private key (a PEM without its header lines). The client signs its
own bearer token with that key (EdDSA), so the key itself never travels to Authress.
Nothing here ever puts the key, or any part of the private key, into a message.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import quote

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_der_private_key

from integrations.providers.base import ConfigurationError

ACCESS_KEYS_DOCS = "https://authress.io/knowledge-base/docs/authorization/service-clients/access-keys"
CREATE_ACCESS_KEY = (
    "In the Authress management portal open Service clients, select (or create) the client Doow should "
    "use, create an access key for it and paste the whole key (clientId.keyId.accountId.privateKey). "
    f"See {ACCESS_KEYS_DOCS}."
)
TOKEN_LIFETIME = timedelta(minutes=5)  # signed per verify; short, so a leaked token soon expires
# Ids become part of a URL, an audience and a host name: keep them to a safe alphabet.
_ID_RE = re.compile(r"^[A-Za-z0-9_\-:]{1,128}$")
_PART_NAMES = ("client id", "key id", "account id", "private key")


@dataclass(frozen=True)
class AccessKey:
    client_id: str
    key_id: str
    account_id: str
    private_key: Ed25519PrivateKey = field(repr=False, compare=False)

    @property
    def issuer(self) -> str:
        return self.issuer_at(f"https://{self.account_id}.api.authress.io")

    def issuer_at(self, origin: str) -> str:
        """The issuer for tokens of this client on `origin` (an account's custom domain)."""
        return f"{origin}/v1/clients/{quote(self.client_id, safe='')}"

    @property
    def audience(self) -> str:
        return f"{self.account_id}.accounts.authress.io"


def _bad(message: str) -> ConfigurationError:
    return ConfigurationError(message, hint=CREATE_ACCESS_KEY, field="access_key")


def _looks_like_legacy_key(value: str) -> bool:
    """Older Authress access keys were base64 JSON (RS256); they have no dots at all."""
    try:
        decoded = json.loads(base64.b64decode(value + "=" * (-len(value) % 4), validate=True))
    except (ValueError, binascii.Error):
        return False
    return isinstance(decoded, dict) and "clientId" in decoded


def parse_access_key(value: str | None) -> AccessKey:
    """Check the key's shape offline; raise ConfigurationError saying what to create instead."""
    value = (value or "").strip()
    if not value:
        raise _bad("Enter the Authress service client access key.")
    if any(c.isspace() for c in value):
        raise _bad("The access key contains spaces or line breaks; copy it again in one piece.")
    parts = value.split(".")
    if len(parts) == 3 and value.startswith("eyJ"):
        raise _bad("This is a token (JWT), not a service client access key.")
    if len(parts) == 1 and _looks_like_legacy_key(value):
        raise _bad("This is an older-format Authress access key, which this app does not use. Create a new access key.")
    if len(parts) != 4:
        raise _bad(
            "An Authress service client access key has four parts separated by dots "
            f"(clientId.keyId.accountId.privateKey); this one has {len(parts)}."
        )
    for name, part in zip(_PART_NAMES[:3], parts[:3], strict=True):
        if not _ID_RE.match(part):
            raise _bad(f"The {name} part of the access key is empty or has unexpected characters.")
    try:
        body = parts[3]
        der = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
        private_key = load_der_private_key(der, password=None)
    except (ValueError, TypeError, binascii.Error):
        raise _bad("The private key part of the access key could not be read; it is probably cut off.") from None
    if not isinstance(private_key, Ed25519PrivateKey):
        raise _bad("The private key part of the access key is not an Ed25519 key.")
    return AccessKey(parts[0], parts[1], parts[2], private_key)


def client_token(
    key: AccessKey, *, now: datetime, lifetime: timedelta = TOKEN_LIFETIME, issuer_origin: str = ""
) -> str:
    """A service-client JWT: EdDSA, `kid` = key id, issued by the client for the account (on
    `issuer_origin`, e.g. https://login.acme.com, when the account uses a custom domain)."""
    issued = int(now.timestamp())
    claims = {
        "iss": key.issuer_at(issuer_origin) if issuer_origin else key.issuer,
        "sub": key.client_id,
        "aud": key.audience,
        "iat": issued,
        "exp": issued + int(lifetime.total_seconds()),
        "scope": "openid",
    }
    return jwt.encode(claims, key.private_key, algorithm="EdDSA", headers={"kid": key.key_id})
