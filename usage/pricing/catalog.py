"""Where a usage row's price comes from: provider model ids mapped to price entries.

One table (`price_ref`) turns a row of any provider into a reference to a price:
- a `TokenRef` into genai-prices (its provider id and model ref), for token-priced models;
- a `TableRef` into the dated compute table (`compute_prices.json`: Replicate hardware seconds
  and per-prediction prices, Fireworks dedicated GPU hours, Azure PTU hours);
- `INCLUDED` for usage whose money is counted elsewhere (tokens served by a dedicated
  Fireworks deployment or an Azure PTU deployment: their GPU or PTU hours are the price);
- None: no price is known (the row is "unpriced").

The id shapes each connector stores are normalised here, and nowhere else:
Bedrock ARNs and inference profiles, Azure deployments (the connector already stores the
deployment's model as "<model>-<version>"), Vertex SKUs (the connector parses the SKU
description into the model), Fireworks "accounts/fireworks/models/<id>", OpenRouter
permaslugs (dated ids such as "openai/gpt-4.1-2025-04-14"), Anthropic's server-tool calls
(api_calls with the tool as operation: web searches priced per search).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any, Final

TABLE_PATH = Path(__file__).with_name("compute_prices.json")


@dataclass(frozen=True)
class TokenRef:
    provider: str  # genai-prices provider id
    model: str  # the model ref genai-prices matches
    multiplier: Decimal = Decimal(1)  # e.g. 0.5 for a batch deployment
    note: str = ""
    tool: str = ""  # a server tool's calls (api_calls) priced per call, e.g. "web_search"


@dataclass(frozen=True)
class TableRef:
    provider: str
    kind: str  # "hardware" | "prediction" | "gpu" | "ptu"
    key: str
    units: Decimal = Decimal(1)  # PTU: the deployment's capacity (PTUs) billed per hour


class _Included:
    def __repr__(self) -> str:
        return "INCLUDED"


INCLUDED: Final = _Included()
Ref = TokenRef | TableRef | _Included | None

# genai-prices' provider id for each of our registry slugs (token-priced usage).
GENAI_PROVIDER = {
    "openai": "openai",
    "anthropic": "anthropic",
    "groq": "groq",
    "fireworks": "fireworks",
    "openrouter": "openrouter",
    "aws_bedrock": "aws",
    "azure_openai": "azure",
    "google_vertex": "google",
}
# Azure deployment SKUs: batch deployments bill half the global standard price; provisioned
# ones bill PTU hours, whatever the tokens.
AZURE_BATCH_SKUS = frozenset({"GlobalBatch", "DataZoneBatch"})
AZURE_PTU_SKUS = frozenset({"ProvisionedManaged", "GlobalProvisionedManaged", "DataZoneProvisionedManaged"})
BATCH_MULTIPLIER = Decimal("0.5")
_AZURE_VERSION = re.compile(r"^(?P<model>.+?)-(?:\d{1,3})$")  # "text-embedding-ada-002-2" → version "2"
_GEO_PREFIXES = ("us.", "eu.", "apac.", "us-gov.", "global.", "jp.", "au.", "ca.")


@dataclass(frozen=True)
class Deployments:
    """What the integration's last Test connection learnt about deployments (Azure): per
    deployment name, its SKU and capacity."""

    skus: dict[str, tuple[str, int]]

    @classmethod
    def from_identity(cls, identity: Any) -> Deployments:
        skus: dict[str, tuple[str, int]] = {}
        details = identity.get("details") if isinstance(identity, dict) else None
        for account in (details or {}).get("accounts") or []:
            for d in (account or {}).get("deployments") or []:
                if isinstance(d, dict) and d.get("name"):
                    try:
                        capacity = int(d.get("capacity") or 0)
                    except (TypeError, ValueError):
                        capacity = 0
                    skus[str(d["name"])] = (str(d.get("sku") or ""), capacity)
        return cls(skus)


NO_DEPLOYMENTS = Deployments({})


def price_ref(
    provider: str,
    *,
    model: str = "",
    deployment: str = "",
    resource: str = "",
    operation: str = "",
    stream: str = "",
    metrics: frozenset[str] = frozenset(),
    deployments: Deployments = NO_DEPLOYMENTS,
    service_tier: str = "",
    batch: str = "",
) -> Ref:
    """The price entry for the usage of one row key (see the module docstring)."""
    if provider == "replicate":
        # Trainings run on hardware the list does not name: unpriced, never a prediction price.
        return None if operation == "training" else _replicate(model, metrics)
    if provider == "fireworks":
        if stream == "metrics":  # tokens of dedicated deployments: billed as GPU time
            return INCLUDED
        if "compute_seconds" in metrics:
            return TableRef("fireworks", "gpu", resource) if resource else None
        if "training_tokens" in metrics:  # fine-tuning tokens: no list price here (unpriced, never $0)
            return None
        # genai-prices matches Fireworks' full "accounts/fireworks/models/<id>" form.
        return TokenRef("fireworks", model) if model else None
    if provider == "azure_openai":
        sku, capacity = deployments.skus.get(deployment, ("", 0))
        if sku in AZURE_PTU_SKUS:
            return TableRef("azure_openai", "ptu", sku, Decimal(capacity)) if capacity else None
        name = _azure_model(model)
        if not name:
            return None
        return TokenRef("azure", name, BATCH_MULTIPLIER if sku in AZURE_BATCH_SKUS else Decimal(1),
                        "batch deployment: half the standard price" if sku in AZURE_BATCH_SKUS else "")  # fmt: skip
    if provider == "aws_bedrock":
        name = bedrock_model(model or deployment)
        return TokenRef("aws", name) if name else None
    if provider == "google_vertex":
        if not model:  # an SKU the connector did not understand: its cost stays, no estimate
            return None
        batch_sku = "batch" in operation
        return TokenRef(
            "google", model, BATCH_MULTIPLIER if batch_sku else Decimal(1), "batch: half price" if batch_sku else ""
        )
    if "api_calls" in metrics:
        # Server-tool calls, the tool in `operation` (Anthropic): web searches have a list price
        # per search (genai-prices); code execution (billed per container hour) and web fetch
        # have none here: unpriced, never $0.
        genai = GENAI_PROVIDER.get(provider)
        if operation in PRICED_TOOLS and genai and model:
            return TokenRef(genai, model, tool=operation)
        return None
    if provider == "openai" and stream in OPENAI_UNPRICED_STREAMS:
        # Images, speech characters, audio seconds, sessions and stored bytes have no token
        # price: unpriced, never $0 (their money arrives through OpenAI's costs).
        return None
    genai = GENAI_PROVIDER.get(provider)
    if genai is None or not model:
        return None
    if provider == "openrouter":
        model = openrouter_model(model)
    # Batch traffic is billed at half the standard price (OpenAI's Batch API and its Flex tier,
    # which is priced at Batch rates; Anthropic's Message Batches). Other tiers (priority, the
    # long-context band) keep the standard list price: their premiums are not in the list.
    if (provider == "openai" and (batch == "true" or service_tier == "flex")) or (
        provider == "anthropic" and service_tier == "batch"
    ):
        return TokenRef(genai, model, BATCH_MULTIPLIER, "batch: half price")
    return TokenRef(genai, model)


# Server tools whose calls genai-prices prices, per 1,000 calls: its field for each.
PRICED_TOOLS: Final = {"web_search": "web_searches_kcount"}
# OpenAI usage streams whose quantities are not tokens (integrations.providers.openai).
OPENAI_UNPRICED_STREAMS: Final = frozenset(
    {"usage_images", "usage_audio_speeches", "usage_audio_transcriptions", "usage_vector_stores",
     "usage_code_interpreter_sessions"}
)  # fmt: skip


def _azure_model(model: str) -> str:
    """ "gpt-4o-2024-08-06" stays (genai-prices knows dated ids); "text-embedding-3-large-1"
    loses the deployment's numeric model version."""
    if re.search(r"-\d{4}-\d{2}-\d{2}$", model):
        return model
    match = _AZURE_VERSION.match(model)
    return match["model"] if match else model


_OPENROUTER_DATE = re.compile(r"-(?:\d{8}|\d{4}-\d{2}-\d{2}|\d{2}-\d{2}|\d{4})$")
_CLAUDE_VERSION_FIRST = re.compile(r"^anthropic/claude-(?P<version>\d+(?:\.\d+)?)-(?P<family>opus|sonnet|haiku)")


@cache
def openrouter_model(permaslug: str) -> str:
    """The OpenRouter model genai-prices prices for a permaslug (what the activity API reports):
    the variant (":free", ":thinking"…) goes; Anthropic's version-first permaslugs of Claude 4
    and later ("anthropic/claude-4-sonnet-20250522") take the slug order
    ("anthropic/claude-sonnet-4"); a dated or versioned suffix goes when genai-prices does not
    know the dated id itself (it knows "openai/gpt-4o-2024-05-13", priced apart)."""
    slug = permaslug.split(":", 1)[0]
    match = _CLAUDE_VERSION_FIRST.match(slug)
    if match and float(match["version"]) >= 4:
        slug = f"anthropic/claude-{match['family']}-{match['version']}{slug[match.end() :]}"
    undated = _OPENROUTER_DATE.sub("", slug)
    if undated != slug and not _genai_knows("openrouter", slug) and _genai_knows("openrouter", undated):
        return undated
    return slug


def _genai_knows(provider: str, model: str) -> bool:
    from genai_prices import data_snapshot  # its price data loads on first use only

    try:
        data_snapshot.get_snapshot().find_provider_model(model, None, provider, None)
    except LookupError:
        return False
    return True


def bedrock_model(model: str) -> str:
    """The foundation model behind a Bedrock id: ARNs of foundation models and system
    inference profiles lose their ARN part, geography prefixes ("us.") go. Application
    inference profiles and provisioned or custom model ARNs name no model: ""."""
    model = model.strip()
    if model.startswith("arn:"):
        resource = model.split(":", 5)[5] if model.count(":") >= 5 else ""
        kind, _, name = resource.partition("/")
        if kind not in ("foundation-model", "inference-profile") or not name:
            return ""
        model = name
    elif "/" in model:  # "application-inference-profile/abc123" as the connector stores it
        return ""
    for prefix in _GEO_PREFIXES:
        if model.startswith(prefix) and "." in model[len(prefix) :]:
            return model[len(prefix) :]
    return model


def _replicate(model: str, metrics: frozenset[str]) -> Ref:
    table = compute_table()
    if any(e.kind == "prediction" and e.key == model for e in table.entries):
        return TableRef("replicate", "prediction", model)
    hardware = table.replicate_hardware.get(model)
    if hardware and "compute_seconds" in metrics:
        return TableRef("replicate", "hardware", hardware)
    return None


# ------------------------------------------------------------------ the dated compute table
@dataclass(frozen=True)
class TableEntry:
    provider: str
    kind: str
    key: str
    per: str  # "second" | "hour" | "request"
    price_usd: Decimal
    effective_date: date
    source_url: str


@dataclass(frozen=True)
class ComputeTable:
    entries: tuple[TableEntry, ...]
    replicate_hardware: dict[str, str]

    def find(self, ref: TableRef, day: date) -> TableEntry | None:
        """The entry in effect on `day` (the latest effective_date not after it)."""
        found = [
            e for e in self.entries
            if (e.provider, e.kind, e.key) == (ref.provider, ref.kind, ref.key) and e.effective_date <= day
        ]  # fmt: skip
        return max(found, key=lambda e: e.effective_date) if found else None


PER_UNITS = ("second", "hour", "request")


@cache
def compute_table() -> ComputeTable:
    return parse_compute_table(json.loads(TABLE_PATH.read_text()))


def parse_compute_table(data: dict[str, Any]) -> ComputeTable:
    """Validate the table: a malformed price must fail loudly, not price usage at $0."""
    entries = []
    for i, raw in enumerate(data["prices"]):
        entry = TableEntry(
            provider=str(raw["provider"]),
            kind=str(raw["kind"]),
            key=str(raw["key"]),
            per=str(raw["per"]),
            price_usd=Decimal(str(raw["price_usd"])),
            effective_date=date.fromisoformat(raw["effective_date"]),
            source_url=str(raw["source_url"]),
        )
        if entry.per not in PER_UNITS or entry.price_usd < 0 or not entry.source_url.startswith("https://"):
            raise ValueError(f"compute price {i} ({entry.key}) is malformed")
        entries.append(entry)
    hardware = {k: str(v) for k, v in data.get("replicate_model_hardware", {}).items() if not k.startswith("_")}
    return ComputeTable(tuple(entries), hardware)
