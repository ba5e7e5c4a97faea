"""Fixtures for the Google Vertex AI connector's tests: an HTTP seam that records its retry
sleeps, the sandbox's service-account key and settings, and restated days undone after each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from integrations.http import HttpClient
from integrations.providers.base import Window
from integrations.providers.google_vertex import provider as vertex_provider
from integrations.providers.google_vertex.tests import support
from sandbox import google_vertex as fake


@pytest.fixture(autouse=True)
def _no_restated_days() -> Iterator[None]:
    fake.clear_revisions()
    yield
    fake.clear_revisions()


@pytest.fixture
def provider():
    return vertex_provider


@pytest.fixture
def credential(sandbox) -> dict[str, str]:
    return support.credential(sandbox)


@pytest.fixture
def vertex_settings(sandbox) -> dict[str, str]:
    return support.settings(sandbox)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def http(provider, credential, sleeps) -> HttpClient:
    # backoff given explicitly: the sleeps are recorded, not slept, and tests assert their values.
    return HttpClient(secrets=provider.secret_values(credential), sleep=sleeps.append, backoff=1.0)


@pytest.fixture
def week() -> Window:
    return Window(support.days_ago(8), support.days_ago(1))
