"""The SKU description parser, over realistic Vertex AI SKU descriptions."""

from __future__ import annotations

import pytest

from integrations.providers.google_vertex.skus import parse_sku
from sandbox import google_vertex as fake

# (description, model, kind, operation), one real SKU description a row.
UNDERSTOOD = [
    ("Gemini 2.5 Flash GA Text Input - Predictions", "gemini-2.5-flash", "input", "text input"),
    ("Gemini 2.5 Flash GA Text Output - Predictions", "gemini-2.5-flash", "output", "text output"),
    ("Gemini 2.5 Flash GA Input Text Caching", "gemini-2.5-flash", "cached_input", "cached text input"),
    ("Gemini 3 Flash Text Input Caching", "gemini-3-flash", "cached_input", "cached text input"),
    ("Gemini 3 Flash Text Input Caching Flex", "gemini-3-flash", "cached_input", "cached text input (flex)"),
    ("Gemini 3 Flash Text Input Caching Storage", "gemini-3-flash", "cache_storage", "text cache storage"),
    ("Gemini 2.5 Flash GA Thinking Text Output - Predictions", "gemini-2.5-flash", "output", "thinking text output"),
    ("Gemini 2.5 Flash Text Output (Thinking On) - Batch Predictions", "gemini-2.5-flash", "output", "thinking text output (batch)"),
    ("Gemini 2.0 Flash Text Input (Long) - Predictions", "gemini-2.0-flash", "input", "text input (long context)"),
    ("Gemini 2.5 Pro Input Text Caching (Long)", "gemini-2.5-pro", "cached_input", "cached text input (long context)"),
    ("Gemini 1.5 Pro Text Input >128K - Predictions", "gemini-1.5-pro", "input", "text input (long context)"),
    ("Gemini 2.0 Flash Text Input - Batch Predictions", "gemini-2.0-flash", "input", "text input (batch)"),
    ("Gemini 2.5 Flash Text Input Priority - Predictions", "gemini-2.5-flash", "input", "text input (priority)"),
    ("Gemini 3.7 Flash Global Text Input - Predictions", "gemini-3.7-flash", "input", "text input"),
    ("Gemini 2.5 Flash-Lite Audio Input - Predictions", "gemini-2.5-flash-lite", "input", "audio input"),
    ("Gemini 2.0 Flash Lite Video Input - Predictions", "gemini-2.0-flash-lite", "input", "video input"),
    ("Gemini 2.5 Flash Image Output - Predictions", "gemini-2.5-flash", "output", "image output"),
    ("Gemini 2.0 Flash Live Audio Input", "gemini-2.0-flash-live", "input", "audio input"),
    ("Claude Sonnet 4 Input Tokens", "claude-sonnet-4", "input", "input"),
    ("  Gemini   2.5  Pro Text Output - Predictions ", "gemini-2.5-pro", "output", "text output"),
]  # fmt: skip


@pytest.mark.parametrize(("description", "model", "kind", "operation"), UNDERSTOOD)
def test_understood_descriptions(description: str, model: str, kind: str, operation: str) -> None:
    sku = parse_sku(description)
    assert (sku.model, sku.kind, sku.operation) == (model, kind, operation)
    assert sku.understood


@pytest.mark.parametrize(
    "description",
    [
        "Vertex AI: Online/Batch Prediction N1 Predefined Instance Core running in Americas",
        "Imagen 3 Image Generation - Predictions",  # no Input/Output: images, not tokens
        "Text Embedding 005 Input - Predictions",  # starts with a keyword: no model words
        "Gemini 2.0 Flash Live Audio Input and Output",  # both directions: ambiguous
        "Custom Training: N1 Predefined Instance Core running in Americas",
        "Vertex AI Pipelines Run",
        "",
    ],
)
def test_other_descriptions_stay_visible_as_the_operation(description: str) -> None:
    sku = parse_sku(description)
    assert (sku.model, sku.kind, sku.token_metrics) == ("", "", ())
    assert sku.operation == " ".join(description.split())
    assert not sku.understood


def test_token_metrics_per_kind() -> None:
    assert parse_sku("Gemini 2.5 Pro Text Input - Predictions").token_metrics == ("input_tokens",)
    assert parse_sku("Gemini 2.5 Pro Text Output - Predictions").token_metrics == ("output_tokens",)
    # Cached input is part of input_tokens (docs/architecture.md) and also its own "of which" figure.
    assert parse_sku("Gemini 2.5 Pro Input Text Caching").token_metrics == ("input_tokens", "cached_input_tokens")
    assert parse_sku("Gemini 3 Flash Text Input Caching Storage").token_metrics == ()


@pytest.mark.parametrize("sku", fake.SKUS, ids=lambda s: s.id)
def test_parser_agrees_with_every_sandbox_sku(sku: fake.Sku) -> None:
    meaning = parse_sku(sku.description)
    assert meaning.model == sku.model
    if sku.tokens:
        assert meaning.kind == sku.tokens
