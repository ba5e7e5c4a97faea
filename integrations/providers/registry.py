"""The registry: one line per provider. Pages, forms and commands loop over it."""

from __future__ import annotations

from integrations.providers.anthropic import provider as anthropic
from integrations.providers.authress import provider as authress
from integrations.providers.aws_bedrock import provider as aws_bedrock
from integrations.providers.azure_openai import provider as azure_openai
from integrations.providers.base import Provider
from integrations.providers.fireworks import provider as fireworks
from integrations.providers.google_vertex import provider as google_vertex
from integrations.providers.groq import provider as groq
from integrations.providers.openai import provider as openai
from integrations.providers.openrouter import provider as openrouter
from integrations.providers.replicate import provider as replicate

PROVIDERS: dict[str, Provider] = {
    p.slug: p
    for p in (
        anthropic,
        authress,
        aws_bedrock,
        azure_openai,
        fireworks,
        google_vertex,
        groq,
        openai,
        openrouter,
        replicate,
    )
}

CATEGORIES: dict[str, str] = {"ai": "AI providers", "cloud": "Cloud platforms"}


def get_provider(slug: str) -> Provider:
    try:
        return PROVIDERS[slug]
    except KeyError:
        raise LookupError(f"Unknown provider {slug!r}") from None


def providers_by_category() -> list[tuple[str, list[Provider]]]:
    return [
        (label, sorted((p for p in PROVIDERS.values() if p.category == key), key=lambda p: p.name))
        for key, label in CATEGORIES.items()
        if any(p.category == key for p in PROVIDERS.values())
    ]
