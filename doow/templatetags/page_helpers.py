"""Small presentation helpers every page loads (`{% load page_helpers %}`): times, durations,
quantities, badges, query strings, a little Markdown."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from django import template
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from doow.templatetags.formats import duration_words, instant, moment, quantity
from usage.dimensions import label as _dimension_label

register = template.Library()

# One colour vocabulary for every status-like value on the pages.
_BADGES = {
    # Integration.Status
    "active": "ok",
    "error": "bad",
    "paused": "warn",
    "disconnected": "muted",
    # SyncRun.Status
    "running": "info",
    "success": "ok",
    "failed": "bad",
    "abandoned": "warn",
    # IntegrationEvent.Level
    "info": "info",
    "warning": "warn",
}


@register.filter
def dimension_label(name: str) -> str:
    """The words for a usage dimension (usage/dimensions.py): "service_tier" → "Service tier"."""
    return _dimension_label(str(name))


@register.filter
def badge_class(value: str) -> str:
    return f"badge badge-{_BADGES.get(str(value), 'muted')}"


# Times, exact quantities and spans in words: one implementation, in formats (`utc` is
# instant's older name in the templates).
register.filter("utc", instant)
register.simple_tag(moment, name="moment")
register.filter("quantity", quantity)
register.filter("duration_words", duration_words)


@register.filter
def field(obj: Any, name: str) -> Any:
    """{{ row|field:column }} — an attribute named by a variable (for column loops)."""
    return getattr(obj, str(name), "")


@register.filter
def dictget(mapping: Any, key: Any) -> Any:
    """{{ names|dictget:row.project }} — a dict lookup by a variable key."""
    try:
        return mapping.get(key, "")
    except AttributeError:
        return ""


@register.simple_tag(takes_context=True)
def query_with(context: dict, **changes: Any) -> str:
    """The current query string with some parameters replaced (None/"" removes them)."""
    query = context["request"].GET.copy()
    for key, value in changes.items():
        if value in (None, ""):
            query.pop(key, None)
        else:
            query[key] = value
    return query.urlencode()


# ---------------------------------------------------------------- provider docs
_INLINE = [
    (re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
    (re.compile(r"\*\*([^*]+)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"(?<![\w*])\*([^*\s][^*]*?)\*(?![\w*])"), r"<em>\1</em>"),
    (re.compile(r"\[([^\]]+)\]\((https?://[^)\s]+)\)"), r'<a href="\2" rel="noopener noreferrer">\1</a>'),
    (re.compile(r"&lt;(https?://[^\s&]+)&gt;"), r'<a href="\1" rel="noopener noreferrer">\1</a>'),
]


def _inline(text: str) -> str:
    html: str = escape(text)
    for pattern, replacement in _INLINE:
        html = pattern.sub(replacement, html)
    return html


@register.filter
def markdown_lite(text: str) -> SafeString:
    """Enough Markdown for our own docs pages: headings, paragraphs, lists, code blocks, tables.

    The input is escaped first, so raw HTML in a docs file is shown, never run.
    """
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            block: list[str] = []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                block.append(lines[i])
                i += 1
            out.append(f"<pre><code>{escape(chr(10).join(block))}</code></pre>")
            i += 1
            continue
        heading = re.match(r"^(#{1,4})\s+(.*)$", line)
        if heading:
            level = min(len(heading.group(1)) + 1, 5)  # the page has its own h1
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
            i += 1
            continue
        if line.lstrip().startswith("|"):
            rows: list[list[str]] = []
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                if not all(re.fullmatch(r":?-{2,}:?", c) for c in cells if c):
                    rows.append(cells)
                i += 1
            if rows:
                head = "".join(f"<th>{_inline(c)}</th>" for c in rows[0])
                body = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
                out.append(f'<table class="table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')
            continue
        if re.match(r"^\s*([-*]|\d+\.)\s+", line):
            ordered = bool(re.match(r"^\s*\d+\.", line))
            items: list[str] = []
            while i < len(lines) and lines[i].strip():
                item = re.match(r"^\s*([-*]|\d+\.)\s+(.*)$", lines[i])
                if item:
                    items.append(item.group(2))
                elif items:
                    items[-1] += " " + lines[i].strip()
                i += 1
            tag = "ol" if ordered else "ul"
            out.append(f"<{tag}>" + "".join(f"<li>{_inline(t)}</li>" for t in items) + f"</{tag}>")
            continue
        if line.startswith(">"):
            quote: list[str] = []
            while i < len(lines) and lines[i].startswith(">"):
                quote.append(lines[i].lstrip(">").strip())
                i += 1
            out.append(f"<blockquote>{_inline(' '.join(quote))}</blockquote>")
            continue
        if not line.strip():
            i += 1
            continue
        para: list[str] = []
        while (
            i < len(lines)
            and lines[i].strip()
            and not re.match(r"^(#{1,4}\s|```|>|\s*\||\s*([-*]|\d+\.)\s+)", lines[i])
        ):
            para.append(lines[i].strip())
            i += 1
        out.append(f"<p>{_inline(' '.join(para))}</p>")
    return mark_safe("\n".join(out))  # every piece above was escaped first


@register.filter
def normalize(value: Any) -> str:
    """A decimal without trailing zeros or an exponent (a unit price: 2.125, 0.000975)."""
    if value is None or value == "":
        return ""
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    return format(number.normalize(), "f")
