"""Hostile import files (faults/hostile.py), through the upload page and `manage.py import_usage`:
each bad file is refused with the line at fault, stores nothing and leaves an event saying so;
each weird-but-valid file is stored exactly as the rules say, and importing it again changes
nothing. Both channels go through whatever runs the import (today the request itself, later a
task: on-commit callbacks are run), and are judged by what a user sees: the event log, the
command's output and the stored rows.
"""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from celery.app.task import Task
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership, Workspace
from faults import figures
from faults.hostile import (
    ANY_LINE,
    FORMULAS,
    MARKUP,
    REJECTED,
    REJECTED_ONCE_DATES_ARE_BOUNDED,
    STORED,
    STORED_PRECISELY_ONLY_ON_POSTGRESQL,
    Rejected,
    Stored,
)
from faults.world import PASSWORD, SweepClient, body
from integrations.models import Integration, IntegrationEvent
from integrations.providers.base import DIMENSIONS
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db
CHANNELS = ("upload", "command")


class Importer:
    """An Authress integration of a fresh workspace, and the two ways to import into it."""

    def __init__(self, tmp_path: Path, capture) -> None:  # django_capture_on_commit_callbacks
        self.workspace = Workspace.objects.create(name="Importer Corp", slug="importer")
        admin = get_user_model().objects.create_user(username="importer-admin", password=PASSWORD)
        Membership.objects.create(workspace=self.workspace, user=admin, role=Membership.Role.ADMIN)
        self.integration = Integration(workspace=self.workspace, provider="authress", name="Authress (imports)")
        self.integration.set_credential({})
        self.integration.save()
        self.client = SweepClient()
        self.client.force_login(admin)
        self.tmp_path = tmp_path
        self.capture = capture

    def run(self, channel: str, name: str, data: bytes, fmt: str) -> str:
        """Import `data`; returns what the user is told directly (page or command output)."""
        if channel == "upload":
            url = reverse("integrations:import_usage", kwargs={"ws": "importer", "pk": self.integration.pk})
            upload = SimpleUploadedFile("usage.csv", data, content_type="text/csv")
            before = self.integration.usage_imports.order_by("-pk").values_list("pk", flat=True).first() or 0
            with self.capture(execute=True):
                response = self.client.post(url, {"format": fmt, "file": upload}, headers={"HX-Request": "true"})
            assert response.status_code == 200, f"{name}: the upload answered {response.status_code}"
            told = html.unescape(body(response))
            # The upload page hands the file to a worker and then polls the job's section: what
            # the user is told about the file is what that section says once the job has ended.
            job = self.integration.usage_imports.filter(pk__gt=before).order_by("-pk").first()
            if job is not None:
                status = reverse(
                    "integrations:import_status", kwargs={"ws": "importer", "pk": self.integration.pk, "job": job.pk}
                )
                polled = self.client.get(status, {"watching": "1"}, headers={"HX-Request": "true"})
                assert polled.status_code == 200, f"{name}: the import status answered {polled.status_code}"
                told += "\n" + html.unescape(body(polled))
            return told
        path = self.tmp_path / "usage.csv"
        path.write_bytes(data)
        out = io.StringIO()
        with self.capture(execute=True):
            try:
                call_command("import_usage", str(self.integration.pk), str(path), "--format", fmt, stdout=out)
            except CommandError as error:
                return str(error)
        return out.getvalue()

    def rows(self) -> set[tuple]:
        fields = ("bucket_start", "bucket_end", "metric", "quantity", "unit", *DIMENSIONS)
        return set(UsageRecord.objects.filter(integration=self.integration).values_list(*fields))

    def last_event(self) -> IntegrationEvent | None:
        return self.integration.events.filter(category=IntegrationEvent.Category.IMPORT).order_by("-pk").first()


@pytest.fixture
def importer(db, tmp_path, django_capture_on_commit_callbacks) -> Importer:
    return Importer(tmp_path, django_capture_on_commit_callbacks)


def _problem_pattern(case: Rejected) -> str:
    if case.line is None:
        return case.says
    line = r"\d+" if case.line == ANY_LINE else str(case.line)
    return rf"\bline {line}: [^\n]*?(?:{case.says})"


def reject(importer: Importer, channel: str, case: Rejected) -> list[str]:
    figures.add("hostile_files")
    before_rows, before_event = UsageRecord.objects.count(), getattr(importer.last_event(), "pk", 0)
    told = importer.run(channel, case.name, case.data, case.fmt)
    event = importer.last_event()
    problems = []
    if UsageRecord.objects.count() != before_rows:
        problems.append(f"{case.name} ({channel}): stored {UsageRecord.objects.count() - before_rows} row(s)")
    if channel == "upload" and case.form_refuses_upload:
        if event is not None and event.pk != before_event:
            problems.append(f"{case.name} ({channel}): the form should have refused it before the importer")
    elif event is None or event.pk == before_event or "nothing was stored" not in event.message:
        problems.append(f"{case.name} ({channel}): no event says the import was rejected")
    elif not re.search(_problem_pattern(case), event.message):
        problems.append(
            f"{case.name} ({channel}): the event does not say {_problem_pattern(case)!r}: {event.message[:300]!r}"
        )
    if not re.search(_problem_pattern(case), told):
        problems.append(f"{case.name} ({channel}): the user is not told {_problem_pattern(case)!r}")
    if not problems:
        figures.add("hostile_rejected")
    return problems


def store(importer: Importer, channel: str, case: Stored) -> list[str]:
    figures.add("hostile_files")
    UsageRecord.objects.filter(integration=importer.integration).delete()
    importer.run(channel, case.name, case.data, case.fmt)
    problems = []
    if (stored := importer.rows()) != set(case.rows):
        problems.append(f"{case.name} ({channel}): stored {sorted(stored)!r}, expected {sorted(case.rows)!r}")
    else:
        importer.run(channel, case.name, case.data, case.fmt)
        if importer.rows() != set(case.rows):
            problems.append(f"{case.name} ({channel}): importing it again changed the rows")
    if not problems:
        figures.add("hostile_stored")
    return problems


@pytest.mark.parametrize("channel", CHANNELS)
def test_every_hostile_file_is_refused_with_its_line_and_stores_nothing(importer, channel):
    problems = [p for case in REJECTED for p in reject(importer, channel, case)]
    figures.add("unexpected", len(problems))
    assert not problems, f"{len(problems)} of {len(REJECTED)} files mishandled:\n" + "\n".join(problems)


@pytest.mark.parametrize("channel", CHANNELS)
def test_every_weird_but_valid_file_is_stored_exactly(importer, channel):
    problems = [p for case in STORED for p in store(importer, channel, case)]
    figures.add("unexpected", len(problems))
    assert not problems, f"{len(problems)} of {len(STORED)} files mishandled:\n" + "\n".join(problems)


@pytest.mark.parametrize("case", REJECTED_ONCE_DATES_ARE_BOUNDED, ids=lambda case: case.name)
@pytest.mark.parametrize("channel", CHANNELS)
def test_a_date_out_of_bounds_is_refused_with_its_line(importer, channel, case):
    problems = reject(importer, channel, case)
    assert not problems, "\n".join(problems)


SQLITE_ROUNDS = pytest.mark.xfail(
    condition=connection.vendor == "sqlite",
    strict=True,
    reason="found by this suite, not in issue 8: SQLite keeps UsageRecord.quantity as a float, so quantities the "
    "importer accepts (up to 21 digits and 9 decimals) come back rounded, and the largest cannot be read back",
)


@SQLITE_ROUNDS
@pytest.mark.parametrize("case", STORED_PRECISELY_ONLY_ON_POSTGRESQL, ids=lambda case: case.name)
def test_a_large_precise_quantity_is_stored_exactly(importer, case):
    problems = store(importer, "command", case)
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- what happens to stored hostile text
def test_markup_imported_is_shown_escaped_on_the_pages(importer):
    importer.run("command", "markup", next(c for c in STORED if c.name.startswith("markup")).data, "auto")
    pages = [
        # the stored rows (the page opens on a summary by model, project and day)
        reverse("integrations:detail", kwargs={"ws": "importer", "pk": importer.integration.pk}) + "?view=rows",
        reverse("usage:explorer", kwargs={"ws": "importer"})
        + "?group=resource&range=all",  # the corpus is not this month
    ]
    for url in pages:
        text = body(importer.client.get(url))
        assert "<script>alert(1)</script>" not in text, url
        assert html.escape(MARKUP[0]) in text, url  # shown, as text
        assert "{{ 7*7 }}" in text, url  # never evaluated as a template


def test_formula_cells_imported_are_neutralised_in_the_export(importer):
    importer.run("command", "formulas", next(c for c in STORED if c.name.startswith("formula")).data, "auto")
    out = io.StringIO()
    call_command("export_usage", "--workspace", "importer", "--format", "csv", stdout=out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert {r["resource"] for r in rows} == {f"'{f}" for f in FORMULAS}
    assert all(not r["quantity"].startswith("'") for r in rows)


def test_an_upload_is_imported_by_a_task_not_by_the_request(importer, settings, monkeypatch):
    """The request only hands the file over (to the database or shared storage) and enqueues a
    task; the rows appear when the task runs, all or nothing as before."""
    from celery.app.task import Task

    sent: list[tuple[Task, tuple, dict]] = []

    def record(task: Task, args: tuple = (), kwargs: dict | None = None, **options: object) -> None:
        sent.append((task, tuple(args or ()), dict(kwargs or {})))

    monkeypatch.setattr(Task, "apply_async", record)
    case = next(c for c in STORED if c.name == "CRLF line ends")
    url = reverse("integrations:import_usage", kwargs={"ws": "importer", "pk": importer.integration.pk})
    with importer.capture(execute=True):
        response = importer.client.post(url, {"format": "auto", "file": SimpleUploadedFile("usage.csv", case.data)})
    assert response.status_code in (200, 202, 302)
    assert not importer.rows(), "the request itself stored the rows"
    imports = [(task, args, kwargs) for task, args, kwargs in sent if "import" in task.name]
    assert imports, f"no import task was enqueued (sent: {[t.name for t, _, _ in sent]})"
    monkeypatch.undo()
    for task, args, kwargs in imports:
        task.apply(args=args, kwargs=kwargs)
    assert importer.rows() == set(case.rows)


def test_the_corpus_dates_are_in_the_past_at_the_pinned_clock():
    """The corpus is valid at any instant the suite runs at (DOOW_TEST_CLOCK)."""
    assert datetime(2026, 3, 4, tzinfo=UTC) < timezone.now()
