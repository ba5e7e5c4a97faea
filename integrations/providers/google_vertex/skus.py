"""What a Vertex AI SKU description says: the model, and what kind of usage it bills.

The billing export has no model column. Model, modality and token class live in
`sku.description`, in shapes such as

    Gemini 2.5 Flash GA Text Input - Predictions          → gemini-2.5-flash, text input
    Gemini 2.5 Flash GA Input Text Caching                → gemini-2.5-flash, cached text input
    Gemini 2.5 Flash Text Output (Thinking On) - Batch Predictions → thinking text output (batch)
    Gemini 2.0 Flash Text Input (Long) - Predictions      → text input (long context)
    Gemini 3 Flash Text Input Caching Storage             → text cache storage (token-hours: no tokens)

i.e. "<model words> <qualifiers, modality, Input|Output, caching…> [- <channel>]". The model
is the run of words before the first keyword, slugged the way Vertex names models
("Gemini 2.5 Flash-Lite" → "gemini-2.5-flash-lite"). A description without exactly one of
Input/Output, or whose leading words do not look like a model name, is NOT understood: it
keeps an empty model and its whole description as the operation, so its cost stays visible.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Words that end the model name. "GA", "Global", "Priority", "Flex", "Batch" are billing
# qualifiers; a model name never contains them.
_KEYWORDS = frozenset(
    [
        "text",
        "image",
        "images",
        "video",
        "audio",
        "multimodal",
        "input",
        "output",
        "thinking",
        "cached",
        "caching",
        "cache",
        "long",
        "global",
        "ga",
        "priority",
        "flex",
        "batch",
        "online",
        "prediction",
        "predictions",
        "token",
        "tokens",
        "character",
        "characters",
        "storage",
        "context",
        "-",
    ]
)
_MODALITIES = {"text": "text", "image": "image", "images": "image", "video": "video", "audio": "audio",
               "multimodal": "multimodal"}  # fmt: skip
_QUALIFIERS = {"long": "long context", "batch": "batch", "priority": "priority", "flex": "flex"}
_MODEL_WORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-]*$")
_WORDS = re.compile(r"[()]|[^\s()]+")
MAX_MODEL_WORDS = 6

# Which token metrics a SKU's usage feeds. `input_tokens` includes cached input (docs/architecture.md), and
# Vertex bills cached input on its own SKU, so that SKU feeds both.
TOKEN_METRICS: dict[str, tuple[str, ...]] = {
    "input": ("input_tokens",),
    "output": ("output_tokens",),
    "cached_input": ("input_tokens", "cached_input_tokens"),
}


@dataclass(frozen=True)
class SkuMeaning:
    model: str  # "gemini-2.5-flash"; "" when the description was not understood
    kind: str  # "input" | "output" | "cached_input" | "cache_storage" | "" (not understood)
    operation: str  # "text input", "cached text input (batch)", …; the description itself if not understood

    @property
    def understood(self) -> bool:
        return bool(self.model)

    @property
    def token_metrics(self) -> tuple[str, ...]:
        return TOKEN_METRICS.get(self.kind, ())


def parse_sku(description: str) -> SkuMeaning:
    text = " ".join((description or "").split())
    words = _WORDS.findall(text)
    lower = [w.lower() for w in words]
    cut = next((i for i, w in enumerate(lower) if w in _KEYWORDS or w in ("(", ")")), len(words))
    model_words, rest = words[:cut], lower[cut:]
    has_input, has_output = "input" in rest, "output" in rest
    if (
        not model_words
        or len(model_words) > MAX_MODEL_WORDS
        or not all(_MODEL_WORD.match(w) for w in model_words)
        or not model_words[0][0].isalpha()
        or has_input == has_output  # neither, or both: not one kind of usage
    ):
        return SkuMeaning("", "", text)
    modality = next((_MODALITIES[w] for w in rest if w in _MODALITIES), "")
    cached = any(w in ("cached", "caching", "cache") for w in rest)
    thinking = "thinking" in rest
    qualifiers = list(dict.fromkeys(_QUALIFIERS[w] for w in rest if w in _QUALIFIERS))
    if any(w.startswith(">") for w in rest) and "long context" not in qualifiers:
        qualifiers.insert(0, "long context")  # e.g. "Input >200K": the long-context tier
    if has_output:
        kind, label = "output", f"{'thinking ' if thinking else ''}{modality} output"
    elif cached and "storage" in rest:
        kind, label = "cache_storage", f"{modality} cache storage"
    elif cached:
        kind, label = "cached_input", f"cached {modality} input"
    else:
        kind, label = "input", f"{modality} input"
    label = " ".join(label.split())
    if qualifiers:
        label += f" ({', '.join(qualifiers)})"
    return SkuMeaning("-".join(w.lower() for w in model_words), kind, label)
