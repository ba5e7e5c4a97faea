"""Recorded fixtures of the Authress connector's tests, and what they must parse into."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from integrations.providers.base import UsageSample
from integrations.providers.testing import fixture_loader

FIXTURES = Path(__file__).parent / "fixtures"


load = fixture_loader(FIXTURES)


def raw(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def _day(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _calls(day: str, end: str, resource: str, operation: str, calls: int) -> UsageSample:
    return UsageSample(
        _day(day), _day(end), "api_calls", Decimal(calls), resource=resource, operation=operation, provenance="imported"
    )


# portal_calls.csv: a capitalised header, CRLF line ends, a blank line, a zero count and a
# row without resource or operation. Each row is one UTC day of api_calls.
EXPECTED_PORTAL_CALLS = [
    _calls("2025-03-01", "2025-03-02", "/v1/users/{userId}/resources", "GET", 1520),
    _calls("2025-03-01", "2025-03-02", "/v1/records", "POST", 87),
    _calls("2025-03-02", "2025-03-03", "/v1/users/{userId}/resources", "GET", 0),
    _calls("2025-03-02", "2025-03-03", "", "", 12),
]
