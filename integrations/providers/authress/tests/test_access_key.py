"""The access key's shape is checked offline, and the token signed with it carries exactly
the claims Authress checks."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)

from integrations.providers.authress.access_key import (
    CREATE_ACCESS_KEY,
    client_token,
    parse_access_key,
)
from integrations.providers.base import ConfigurationError
from integrations.providers.testing import assert_no_secret
from sandbox import authress as fake

PRIVATE_PART = fake.ACCESS_KEY.split(".")[3]
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _p256_key_body() -> str:
    der = generate_private_key(SECP256R1()).private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    return base64.b64encode(der).decode()


def test_a_sandbox_key_parses_into_its_parts() -> None:
    key = parse_access_key(f"  {fake.ACCESS_KEY}\n")
    assert (key.client_id, key.key_id, key.account_id) == (fake.CLIENT_ID, fake.KEY_ID, fake.ACCOUNT_ID)
    assert key.issuer == f"https://{fake.ACCOUNT_ID}.api.authress.io/v1/clients/{fake.CLIENT_ID}"
    assert key.audience == f"{fake.ACCOUNT_ID}.accounts.authress.io"
    assert PRIVATE_PART not in repr(key)


def test_the_private_key_part_is_pkcs8_base64_without_pem_lines() -> None:
    # The part is the body of "-----BEGIN PRIVATE KEY-----"; padding may have been trimmed.
    key = parse_access_key(fake.ACCESS_KEY.rstrip("="))
    assert key.private_key.public_key() == fake.private_key(fake.KEY_ID).public_key()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", "Enter the Authress service client access key"),
        (f"{fake.CLIENT_ID}.{fake.KEY_ID} .{fake.ACCOUNT_ID}.{PRIVATE_PART}", "spaces or line breaks"),
        (
            f"{fake.CLIENT_ID}.{fake.KEY_ID}.{PRIVATE_PART}",
            "four parts separated by dots (clientId.keyId.accountId.privateKey); this one has 3",
        ),
        (f"{fake.CLIENT_ID}.{fake.KEY_ID}.{fake.ACCOUNT_ID}.{PRIVATE_PART}.extra", "this one has 5"),
        (f".{fake.KEY_ID}.{fake.ACCOUNT_ID}.{PRIVATE_PART}", "The client id part"),
        (f"{fake.CLIENT_ID}.{fake.KEY_ID}.acc/../x.{PRIVATE_PART}", "this one has 6"),
        (f"{fake.CLIENT_ID}.{fake.KEY_ID}.acc#1.{PRIVATE_PART}", "The account id part"),
        (
            f"{fake.CLIENT_ID}.{fake.KEY_ID}.{fake.ACCOUNT_ID}.{PRIVATE_PART[:30]}",
            "could not be read; it is probably cut off",
        ),
        (f"{fake.CLIENT_ID}.{fake.KEY_ID}.{fake.ACCOUNT_ID}.not*base64", "could not be read"),
        (f"{fake.CLIENT_ID}.{fake.KEY_ID}.{fake.ACCOUNT_ID}.{_p256_key_body()}", "is not an Ed25519 key"),
        (
            "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJzY18xIn0.c2lnbmF0dXJl",
            "This is a token (JWT), not a service client access key",
        ),
        (
            base64.b64encode(
                b'{"clientId":"sc_1","keyId":"k","privateKey":"x","audience":"a.accounts.authress.io"}'
            ).decode(),
            "older-format Authress access key",
        ),
        ("sk-admin-0123456789abcdef", "this one has 1"),
    ],
)
def test_wrong_shapes_say_what_is_wrong_and_where_to_create_a_key(value: str, expected: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_access_key(value)
    assert expected in info.value.message
    assert info.value.hint == CREATE_ACCESS_KEY and "Service clients" in info.value.hint
    assert info.value.field == "access_key"
    assert_no_secret(info.value, [value, PRIVATE_PART] if value else [PRIVATE_PART])


def test_the_token_is_eddsa_with_kid_and_the_documented_claims() -> None:
    key = parse_access_key(fake.ACCESS_KEY)
    token = client_token(key, now=NOW)
    assert jwt.get_unverified_header(token) == {"alg": "EdDSA", "kid": fake.KEY_ID, "typ": "JWT"}
    claims = jwt.decode(
        token,
        fake.private_key(fake.KEY_ID).public_key(),
        algorithms=["EdDSA"],
        audience=f"{fake.ACCOUNT_ID}.accounts.authress.io",
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["iss"] == f"https://{fake.ACCOUNT_ID}.api.authress.io/v1/clients/{fake.CLIENT_ID}"
    assert claims["sub"] == fake.CLIENT_ID
    assert claims["iat"] == int(NOW.timestamp())
    assert claims["exp"] - claims["iat"] == 300  # a few minutes, not the SDK's day
    assert PRIVATE_PART not in token


def test_a_client_id_with_url_characters_is_quoted_in_the_issuer() -> None:
    key = parse_access_key(f"sc:team-1.{fake.KEY_ID}.{fake.ACCOUNT_ID}.{PRIVATE_PART}")
    assert key.issuer.endswith("/v1/clients/sc%3Ateam-1")
