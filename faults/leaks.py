"""Secrets, the forms they leak in, and where to look for them.

`Secrets` remembers every credential the suite connected and derives the needles to search
for: the secret itself, its last 8 characters (the pages may show the last 4 as a hint, never
more), a run from its middle, and the secret URL-encoded, JSON-escaped and HTML-escaped. The
secret part of a credential is what must never be shown: an API key whole, the private key
inside a Google service-account JSON (its e-mail and project are public), the private key at
the end of an Authress access key.
"""

from __future__ import annotations

import html
import json
import logging
import traceback
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, quote_plus

from django.conf import settings

from faults import figures
from integrations.providers.registry import PROVIDERS

# The credential field each provider sends to the provider as it is (so a provider's error may
# echo it back). The others never send their secret: Google and Authress sign a token with a
# private key, AWS signs each request with the secret key.
SENT_AS_IS: dict[str, str] = {
    "openai": "api_key",
    "anthropic": "api_key",
    "groq": "api_key",
    "fireworks": "api_key",
    "openrouter": "api_key",
    "replicate": "api_token",
    "azure_openai": "client_secret",
}
NEVER_SENT = ("google_vertex", "authress", "aws_bedrock")


def secret_parts(provider: str, credential: Mapping[str, str]) -> list[str]:
    """The parts of a credential that must never be shown, anywhere."""
    parts = []
    # From the declared secret fields themselves, not the provider's own redaction list, so a
    # provider that forgets part of its secret is caught rather than trusted.
    fields = [f.name for f in PROVIDERS[provider].credential_fields if f.secret]
    for value in (str(credential[name]) for name in fields if credential.get(name)):
        if value.lstrip().startswith("{"):
            key = json.loads(value).get("private_key", "")
            body = [line for line in key.splitlines() if line and not line.startswith("-----")]
            parts += body[:: max(1, len(body) // 4)]  # a handful of its lines, each a needle
        elif provider == "authress":
            parts.append(value.rsplit(".", 1)[-1])  # client.key.account.<private key>
        else:
            parts.append(value)
    return parts


def _distinctive(secret: str, start: int, width: int, public: Iterable[str]) -> str | None:
    """The `width`-character run of `secret` nearest `start` that no public value contains (a
    sandbox key and a subscription id may share "0123456789ab": that run proves nothing)."""
    public = list(public)
    for offset in sorted(range(-start, len(secret) - width - start + 1), key=abs):
        run = secret[start + offset : start + offset + width]
        if not any(run in value for value in public):
            return run
    return None


def needles(secret: str, public: Iterable[str] = ()) -> dict[str, str]:
    """Variant name -> text that must not appear. `public` are values shown on purpose
    (settings, account ids): a fragment of the secret they also contain is no evidence."""
    public = list(public)
    found = {"the secret": secret}
    if not any(secret[-8:] in value for value in public):
        found["its last 8 characters"] = secret[-8:]
    if len(secret) >= 24 and (run := _distinctive(secret, len(secret) // 3, 12, public)):
        found["a run from its middle"] = run
    for name, variant in (
        ("URL-encoded", quote(secret, safe="")),
        ("form-encoded", quote_plus(secret)),
        ("JSON-escaped", json.dumps(secret)[1:-1]),
        ("HTML-escaped", html.escape(secret)),
    ):
        if variant != secret:
            found[name] = variant
    return found


def shipped_texts() -> set[str]:
    """Text the product ships and shows on purpose: the provider setup pages quote the sandbox's
    demo keys, which share runs of characters with the other sandbox keys."""
    return {path.read_text(encoding="utf-8") for path in (Path(settings.BASE_DIR) / "docs").rglob("*.md")}


@dataclass
class Secrets:
    """Every secret connected so far, and the texts searched for them."""

    parts: dict[str, list[str]] = field(default_factory=dict)  # label -> secret parts
    # Values shown on purpose (non-secret fields, settings, the docs): no evidence of a leak.
    public: set[str] = field(default_factory=shipped_texts)
    problems: list[str] = field(default_factory=list)
    _needles: list[tuple[str, str, str]] | None = None

    def add(
        self, label: str, provider: str, credential: Mapping[str, str], settings: Mapping[str, str] = {}
    ) -> None:  # read only
        self.parts.setdefault(label, []).extend(secret_parts(provider, credential))
        secret_fields = {f.name for f in PROVIDERS[provider].credential_fields if f.secret}
        self.public |= {str(v) for k, v in credential.items() if k not in secret_fields} | {
            str(v) for v in settings.values()
        }
        self._needles = None

    def needles(self) -> list[tuple[str, str, str]]:
        if self._needles is None:
            self._needles = [
                (label, variant, needle)
                for label, parts in self.parts.items()
                for part in parts
                for variant, needle in needles(part, self.public).items()
            ]
        return self._needles

    def leaks(self, text: str) -> list[str]:
        return [f"{label}: {variant}" for label, variant, needle in self.needles() if needle in text]

    def check(self, text: str, where: str, *, page: bool = False) -> None:
        """Search `text`; remember (and count) what was searched and what leaked."""
        figures.add("secret_pages" if page else "secret_texts")
        for leak in self.leaks(text):
            self.problems.append(f"{where} shows {leak}")


def log_text(record: logging.LogRecord) -> str:
    parts = [record.getMessage(), repr(record.args), record.exc_text or "", record.stack_info or ""]
    if record.exc_info:
        parts.append("".join(traceback.format_exception(*record.exc_info)))
    return "\n".join(parts)


class _Grab(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.DEBUG)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def every_log_record() -> Iterator[list[logging.LogRecord]]:
    """Every record logged inside the block, at DEBUG and up, by any logger (also those that
    do not propagate to the root), as an operator running with LOG_LEVEL=DEBUG would see."""
    records: list[logging.LogRecord] = []
    handler = _Grab(records)
    root = logging.getLogger()
    loggers = [logger for logger in logging.Logger.manager.loggerDict.values() if isinstance(logger, logging.Logger)]
    listened = [root, *(logger for logger in loggers if not logger.propagate)]
    levels = {logger: logger.level for logger in [root, *loggers] if logger is root or logger.level != logging.NOTSET}
    for logger in listened:
        logger.addHandler(handler)
    for logger in levels:
        logger.setLevel(logging.DEBUG)
    try:
        yield records
        # Something inside the block that reconfigures logging (a second django.setup() runs
        # the LOGGING dictConfig, which replaces the root's handlers and level) deafens the
        # capture from then on: say so rather than search a fraction of the output.
        deafened = [logger.name for logger in listened if handler not in logger.handlers] + [
            logger.name for logger in levels if logger.level != logging.DEBUG
        ]
    finally:
        for logger in listened:
            logger.removeHandler(handler)
        for logger, level in levels.items():
            logger.setLevel(level)
    assert not deafened, f"logging was reconfigured inside the block; records were lost from: {deafened}"


def logged(records: Iterable[logging.LogRecord], logger: str, text: str) -> int:
    """How many of `records`, from `logger` or one below it, say `text`."""
    return sum(1 for r in records if (r.name == logger or r.name.startswith(f"{logger}.")) and text in r.getMessage())
