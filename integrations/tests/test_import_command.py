"""manage.py import_usage ID PATH [--format …]: rows stored on success, exit 1 with the
line-numbered problems (and nothing stored) otherwise."""

from __future__ import annotations

import io
import sys
from datetime import date
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from integrations.models import Integration
from integrations.testing import make_integration
from sandbox import authress as fake
from usage.models import UsageRecord


@pytest.fixture
def integration(workspace) -> Integration:
    return make_integration(workspace, "Authress", "authress", credential={"access_key": fake.ACCESS_KEY},
                            settings={"base_url": "http://127.0.0.1:9"})  # fmt: skip


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("import_usage", *args, stdout=out)
    return out.getvalue()


def test_imports_a_portal_file_and_prints_rows_stored(integration, tmp_path: Path) -> None:
    path = tmp_path / "calls.csv"
    path.write_text(fake.portal_csv(date(2025, 3, 1), date(2025, 3, 3)))
    truth = fake.truth_calls(date(2025, 3, 1), date(2025, 3, 3))
    out = run(str(integration.pk), str(path))
    assert out.splitlines() == [
        f"Imported calls.csv into integration {integration.pk} (Authress) as Authress portal CSV.",
        "Buckets: 2025-03-01 – 2025-03-02 (UTC)",
        f"Rows stored: {len(truth)}",
    ]
    assert UsageRecord.objects.filter(integration=integration, metric="api_calls").count() == len(truth)
    # Again: the same rows, replaced, not added.
    assert run(str(integration.pk), str(path)).splitlines()[-1] == f"Rows stored: {len(truth)}"
    assert UsageRecord.objects.count() == len(truth)


def test_problems_exit_1_with_line_numbers_and_store_nothing(integration, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("date,resource,operation,calls\n2025-03-01,r,GET,5\n2025-13-01,r,GET,5\n2025-03-02,r,GET,-5\n")
    with pytest.raises(CommandError) as info:
        run(str(integration.pk), str(path))
    assert info.value.returncode == 1
    assert str(info.value).splitlines() == [
        "Import rejected, nothing stored (2 problems):",
        "  line 3: date '2025-13-01' is not a date such as 2025-03-01",
        "  line 4: calls '-5' is not a whole, non-negative number",
    ]
    assert not UsageRecord.objects.exists()
    assert "rejected" in integration.events.get().message


def test_format_can_be_forced(integration, tmp_path: Path) -> None:
    path = tmp_path / "calls.csv"
    path.write_text("date,calls\n2025-03-01,5\n")
    with pytest.raises(CommandError, match="line 1: missing columns: bucket_start"):
        run(str(integration.pk), str(path), "--format", "doow")
    assert run(str(integration.pk), str(path), "--format", "authress").splitlines()[-1] == "Rows stored: 1"


def test_unknown_integration_and_missing_file(integration, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="No integration with id 999"):
        run("999", str(tmp_path / "x.csv"))
    with pytest.raises(CommandError, match=r"Cannot read .*missing\.csv: No such file or directory"):
        run(str(integration.pk), str(tmp_path / "missing.csv"))


def test_dash_reads_standard_input(integration, monkeypatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"date,calls\n2025-03-01,5\n")))
    out = run(str(integration.pk), "-")
    assert out.splitlines()[0].startswith(f"Imported standard input into integration {integration.pk}")
    assert out.splitlines()[-1] == "Rows stored: 1"
