"""Fixtures for the Google Vertex AI connector's tests: the sandbox's service-account key and
settings, and restated days undone after each test (the HTTP seam that records its retry
sleeps is in integrations/providers/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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
def week() -> Window:
    return Window(support.days_ago(8), support.days_ago(1))
