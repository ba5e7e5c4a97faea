"""One test over every registry entry: a provider that forgets part of its metadata fails here."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from integrations.providers.base import FormField, Provider
from integrations.providers.registry import CATEGORIES, PROVIDERS, providers_by_category
from integrations.providers.testing import provider_metadata_problems


@pytest.mark.parametrize("slug", sorted(PROVIDERS))
def test_every_registry_entry_honours_the_metadata_contract(slug: str) -> None:
    problems = provider_metadata_problems(slug, PROVIDERS[slug])
    assert not problems, f"{slug}: " + "; ".join(problems)


@pytest.mark.parametrize("slug", sorted(PROVIDERS))
def test_every_provider_implements_verify_and_read(slug: str) -> None:
    cls = type(PROVIDERS[slug])
    assert cls.verify is not Provider.verify, f"{slug} does not implement verify"
    # fetch is the base's (the empty-window check); each connector's own work is its read.
    assert cls.fetch is Provider.fetch, f"{slug} overrides fetch: implement read instead"
    assert cls.read is not Provider.read, f"{slug} does not implement read"


def test_every_category_in_use_has_a_label() -> None:
    assert {p.category for p in PROVIDERS.values()} <= set(CATEGORIES)
    listed = [p.slug for _, providers in providers_by_category() for p in providers]
    assert sorted(listed) == sorted(PROVIDERS)


def test_metadata_check_catches_a_forgetful_provider(tmp_path: Path) -> None:
    class Forgetful(Provider):
        slug = "forgetful"
        name = "Forgetful"
        category = "saas"
        credential_fields = (FormField("", "Key"),)
        restatement_window = timedelta(0)

    problems = "\n".join(provider_metadata_problems("forgotten", Forgetful(), base_dir=tmp_path))
    for expected in (
        "registry key 'forgotten'",
        "category 'saas'",
        "vendor is empty",
        "credential_help is empty",
        "no credential field is marked secret",
        "empty or padded name",
        "no base_url",
        "docs_path is empty",
        "restatement_window must be positive",
    ):
        assert expected in problems
