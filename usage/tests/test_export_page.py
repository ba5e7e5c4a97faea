"""usage:export — the page download: who may fetch it, headers, filters, formats, streaming."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.http import StreamingHttpResponse
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from usage.export import CHUNK_SIZE, LINES_PER_PIECE
from usage.export_copy import ROWS_PER_BLOCK
from usage.export_focus import FOCUS_HEADER
from usage.models import Application, UsageRecord
from usage.tests.test_export import DAY1, EXPECTED_HEADER, make_integration, make_license, make_record, parse_csv
from usage.tests.test_export_focus import focus_problems


def _url(ws: str = "acme", **params: str | int) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return reverse("usage:export", kwargs={"ws": ws}) + (f"?{query}" if query else "")


def _download(client, **params: str | int) -> tuple[list[str], list[dict[str, str]]]:
    response = client.get(_url(**params))
    assert response.status_code == 200, response.content[:300]
    return parse_csv(b"".join(response.streaming_content).decode())


@pytest.fixture
def usage(workspace):
    openai = make_integration(workspace, name="OpenAI prod")
    anthropic = make_integration(workspace, name="Anthropic", provider="anthropic")
    bot = Application.objects.create(workspace=workspace, name="Support Bot")
    scale = make_license(workspace, bot)
    make_record(
        openai, DAY1, "input_tokens", "100", "tokens", model="gpt-4o", project="proj_a", application=bot, license=scale
    )
    make_record(
        openai, DAY1 + timedelta(days=1), "output_tokens", "50", "tokens", model="gpt-4o-mini", project="proj_b"
    )
    make_record(
        anthropic,
        DAY1 + timedelta(days=2),
        "cost",
        "1.25",
        "USD",
        model="claude-sonnet-4",
        region="us",
        application=bot,
    )
    return {"openai": openai, "anthropic": anthropic, "bot": bot, "scale": scale}


def test_a_member_downloads_the_csv_as_an_attachment(member_client, usage):
    response = member_client.get(_url(format="csv", date_from="2026-01-01", date_to="2026-01-31"))
    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)  # streamed, never built in memory
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="doow-usage-acme-2026-01-01_2026-01-31.csv"'
    assert "no-store" in response["Cache-Control"]
    header, rows = parse_csv(b"".join(response.streaming_content).decode())
    assert header == EXPECTED_HEADER
    assert [(r["metric"], r["application"], r["license"]) for r in rows] == [
        ("input_tokens", "Support Bot", "Support Bot – Scale tier"),
        ("output_tokens", "", ""),
        ("cost", "Support Bot", ""),
    ]


def test_csv_is_the_default_format(member_client, usage):
    response = member_client.get(_url())
    assert response["Content-Disposition"].startswith('attachment; filename="doow-usage-acme-')
    assert parse_csv(b"".join(response.streaming_content).decode())[0] == EXPECTED_HEADER


def test_focus_download_is_well_formed_focus(member_client, usage):
    response = member_client.get(_url(format="focus"))
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Disposition"].startswith('attachment; filename="doow-usage-focus-acme-')
    header, rows = parse_csv(b"".join(response.streaming_content).decode())
    assert header == list(FOCUS_HEADER)
    assert len(rows) == 3
    assert focus_problems(header, rows) == []


def test_an_unknown_format_is_a_clear_400(member_client, usage):
    response = member_client.get(_url(format="xlsx"))
    assert response.status_code == 400
    assert b"format=csv or format=focus" in response.content


def test_an_outsider_gets_404_and_sees_nothing(outsider_client, usage):
    for fmt in ("csv", "focus"):
        assert outsider_client.get(_url(format=fmt)).status_code == 404
    assert outsider_client.post(_url()).status_code == 404


def test_anonymous_is_sent_to_login(client, usage):
    response = client.get(_url())
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


def test_only_get_is_allowed(member_client, usage):
    assert member_client.post(_url()).status_code == 405


def test_another_workspaces_rows_never_leak(admin_client, usage, other_workspace):
    foreign = make_integration(other_workspace, name="Globex")
    make_record(foreign, DAY1, "input_tokens", "999", "tokens", model="foreign-model")
    # Even naming the foreign integration exports nothing of it.
    _, rows = _download(admin_client, integration=foreign.pk)
    assert rows == []
    _, rows = _download(admin_client)
    assert "foreign-model" not in {r["model"] for r in rows}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"provider": "anthropic"}, ["cost"]),
        ({"model": "gpt-4o"}, ["input_tokens"]),
        ({"project": "proj_b"}, ["output_tokens"]),
        ({"region": "us"}, ["cost"]),
        ({"metric": "output_tokens"}, ["output_tokens"]),
        ({"date_from": "2026-01-02"}, ["output_tokens", "cost"]),
        ({"date_to": "2026-01-02"}, ["input_tokens", "output_tokens"]),
        ({"date_from": "2026-01-02", "date_to": "2026-01-02"}, ["output_tokens"]),
        ({"application": "none"}, ["output_tokens"]),
        ({"license": "none"}, ["output_tokens", "cost"]),
    ],
)
def test_the_explorers_filters_are_honoured(member_client, usage, params, expected):
    for fmt, metric_column in (("csv", "metric"), ("focus", "x_Metric")):
        _, rows = _download(member_client, format=fmt, **params)
        assert [r[metric_column] for r in rows] == expected, fmt


def test_id_filters_select_integration_application_and_license(member_client, usage):
    _, rows = _download(member_client, integration=usage["anthropic"].pk)
    assert [r["provider"] for r in rows] == ["anthropic"]
    _, rows = _download(member_client, application=usage["bot"].pk)
    assert [r["metric"] for r in rows] == ["input_tokens", "cost"]
    _, rows = _download(member_client, format="focus", license=usage["scale"].pk)
    assert [r["x_Metric"] for r in rows] == ["input_tokens"]


@pytest.mark.parametrize("fmt", ["csv", "focus"])
def test_queries_do_not_grow_with_the_number_of_rows(member_client, usage, fmt):
    """The export reads the records through one cursor in chunks (`.iterator`), and names
    through small caches: the same number of queries for 3 rows as for 2 chunks and more."""

    def queries_for_download() -> tuple[int, int]:
        with CaptureQueriesContext(connection) as queries:
            _, rows = _download(member_client, format=fmt)
        return len(queries), len(rows)

    queries_for_download()  # the first request of a session also stores the current workspace
    few_queries, few_rows = queries_for_download()
    _add_rows(usage, 2 * CHUNK_SIZE + 1)
    many_queries, many_rows = queries_for_download()
    assert many_rows == few_rows + 2 * CHUNK_SIZE + 1
    assert many_queries == few_queries


def test_the_response_streams_in_pieces(member_client, usage):
    _add_rows(usage, 2 * LINES_PER_PIECE)
    response = member_client.get(_url())
    pieces = [piece.decode() for piece in response.streaming_content]
    assert pieces[0].startswith(",".join(EXPECTED_HEADER))
    if connection.vendor == "postgresql":  # COPY: the header, then blocks of ROWS_PER_BLOCK rows
        rows = 2 * LINES_PER_PIECE + 3
        blocks = [ROWS_PER_BLOCK] * (rows // ROWS_PER_BLOCK) + [rows % ROWS_PER_BLOCK] * bool(rows % ROWS_PER_BLOCK)
        assert [piece.count("\n") for piece in pieces] == [1, *blocks]
    else:
        assert [piece.count("\n") for piece in pieces] == [
            LINES_PER_PIECE,
            LINES_PER_PIECE,
            4,
        ]  # header + 3 + 1000 rows


def _add_rows(usage: dict, count: int) -> None:
    openai, bot = usage["openai"], usage["bot"]
    UsageRecord.objects.bulk_create(
        UsageRecord(
            workspace=openai.workspace,
            integration=openai,
            provider="openai",
            bucket_start=DAY1 + timedelta(hours=i),
            bucket_end=DAY1 + timedelta(hours=i + 1),
            model="gpt-4o",
            metric="requests",
            quantity=Decimal(i),
            unit="requests",
            application=bot,
        )
        for i in range(count)
    )


# ---------------------------------------------------------------- the integration page's links
def test_integration_page_links_downloads_of_its_filtered_rows(admin_client, usage):
    openai = usage["openai"]
    page = reverse("integrations:detail", kwargs={"ws": "acme", "pk": openai.pk})
    html = admin_client.get(page, {"model": "gpt-4o", "page": "1"}).content.decode()
    export = reverse("usage:export", kwargs={"ws": "acme"})
    assert f'href="{export}?model=gpt-4o&amp;format=csv&amp;integration={openai.pk}">Download CSV</a>' in html
    assert f'href="{export}?model=gpt-4o&amp;format=focus&amp;integration={openai.pk}"' in html
    assert ">Download FOCUS CSV</a>" in html


def test_the_integration_pages_csv_link_downloads_that_integrations_rows(admin_client, usage):
    openai = usage["openai"]
    _, rows = _download(admin_client, format="csv", integration=openai.pk, model="gpt-4o")
    assert [(r["integration"], r["model"]) for r in rows] == [(str(openai.pk), "gpt-4o")]
