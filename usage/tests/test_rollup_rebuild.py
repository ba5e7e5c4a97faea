"""The workspace time zone (Company Settings → General) and the rebuild of the daily rollups it
triggers in the background, with progress; `manage.py rebuild_rollups`."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from integrations.models import Integration
from integrations.tests.restatement import import_rows
from usage import rollups
from usage.models import RollupRebuildJob, UsageDaily
from usage.rollup_jobs import SUPERSEDED, rollup_rebuild_request, rollup_rebuild_run
from usage.tests.test_rollup_upkeep import assert_rollups_match

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 11, 20, tzinfo=UTC)


def general(workspace) -> str:
    return reverse("accounts:settings_general", kwargs={"ws": workspace.slug})


def import_hours(workspace, *, start: datetime = T0, hours: int = 24, models=("gpt-4o",)) -> list[Integration]:
    """Two integrations' hourly cost from `start` (h.25 USD in hour h, models in turn), stored
    through the importer, so the rollups are kept."""
    integrations = []
    for name in ("CSV one", "CSV two"):
        integration = Integration.objects.create(workspace=workspace, provider="openai", name=name)
        import_rows(
            integration,
            [
                dict(bucket_start=start + timedelta(hours=h), bucket_end=start + timedelta(hours=h + 1), metric="cost",
                     unit="USD", model=models[h % len(models)], quantity=f"{h}.25")
                for h in range(hours)
            ],
        )  # fmt: skip
        integrations.append(integration)
    return integrations


@pytest.fixture
def imported(workspace):
    return import_hours(workspace)


def test_the_general_page_is_for_admins_only(admin_client, member_client, outsider_client, workspace):
    body = admin_client.get(general(workspace)).content.decode()
    assert 'name="time_zone"' in body and '<option value="UTC" selected>' in body and "Europe/Paris" in body
    assert 'aria-current="page">General' in body
    assert member_client.get(general(workspace)).status_code == 403
    assert outsider_client.get(general(workspace)).status_code == 404


def test_changing_the_time_zone_rebuilds_the_rollups_in_the_background(
    admin_client, workspace, imported, django_capture_on_commit_callbacks
):
    assert set(rollups.daily_for(workspace).values_list("day", flat=True)) == {date(2026, 11, 20)}
    with django_capture_on_commit_callbacks(execute=True):  # the job runs once the save commits
        response = admin_client.post(general(workspace), {"name": "Acme Corp", "time_zone": "Asia/Tokyo"})
    assert response.status_code == 302
    body = admin_client.get(response["Location"]).content.decode()
    assert "being recomputed in Asia/Tokyo" in body and "Daily totals are counted in Asia/Tokyo" in body
    workspace.refresh_from_db()
    assert workspace.time_zone == "Asia/Tokyo"
    job = RollupRebuildJob.objects.get(workspace=workspace)
    assert (job.status, job.done, job.total, job.time_zone) == ("done", 2, 2, "Asia/Tokyo")
    # 00:00Z is 09:00 in Tokyo: the last 9 hours of the UTC day fall on the next local day.
    assert set(rollups.daily_for(workspace).values_list("day", flat=True)) == {date(2026, 11, 20), date(2026, 11, 21)}
    late = UsageDaily.objects.filter(day=date(2026, 11, 21))
    assert sorted(late.values_list("rows", flat=True)) == [9, 9]
    assert late.filter(integration=imported[0]).get().quantity == sum(Decimal(f"{h}.25") for h in range(15, 24))
    assert_rollups_match(workspace)


def test_saving_without_changing_the_zone_rebuilds_nothing(admin_client, workspace, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(general(workspace), {"name": "Acme Inc", "time_zone": "UTC"})
    workspace.refresh_from_db()
    assert workspace.name == "Acme Inc" and not RollupRebuildJob.objects.exists()


def test_an_unknown_zone_is_refused(admin_client, workspace):
    response = admin_client.post(general(workspace), {"name": "Acme Corp", "time_zone": "Mars/Olympus_Mons"})
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    workspace.refresh_from_db()
    assert workspace.time_zone == "UTC" and not RollupRebuildJob.objects.exists()


def test_the_progress_panel_shows_a_running_rebuild(admin_client, workspace):
    RollupRebuildJob.objects.create(workspace=workspace, time_zone="Europe/Paris", status="running", done=1, total=3)
    body = admin_client.get(
        reverse("accounts:settings_general_rebuild", kwargs={"ws": workspace.slug})
    ).content.decode()
    assert "1 of 3 integrations done · 33%" in body and 'hx-trigger="every 1s"' in body
    page = admin_client.get(general(workspace)).content.decode()
    assert "Recomputing daily totals in Europe/Paris" in page


def test_a_newer_request_supersedes_a_rebuild_in_progress(workspace, imported):
    older = RollupRebuildJob.objects.create(workspace=workspace, time_zone="UTC")
    RollupRebuildJob.objects.create(workspace=workspace, time_zone="UTC")  # a newer request
    assert rollup_rebuild_run(job_id=older.pk).error == SUPERSEDED
    # A queued job is reused by the next request, and reads the zone when it starts.
    workspace.time_zone = "Europe/Paris"
    workspace.save()
    again = rollup_rebuild_request(workspace=workspace)
    assert again.pk == RollupRebuildJob.objects.order_by("-pk").first().pk and again.time_zone == "Europe/Paris"


def test_the_command_checks_and_rebuilds(workspace, imported, capsys):
    call_command("rebuild_rollups", "--check")
    assert "acme: rollups match the base table" in capsys.readouterr().out
    UsageDaily.objects.filter(integration=imported[0]).delete()
    with pytest.raises(CommandError, match="differ from the base table in: acme"):
        call_command("rebuild_rollups", "--check", "--workspace", "acme")
    call_command("rebuild_rollups", "--workspace", "acme")
    assert "acme: rollups rebuilt in UTC (2 integrations, 2 rows)" in capsys.readouterr().out
    assert_rollups_match(workspace)
    with pytest.raises(CommandError, match="No workspace"):
        call_command("rebuild_rollups", "--workspace", "nope")


def test_the_check_sees_days_counted_in_another_zone(workspace, imported):
    assert rollups.totals_match(workspace)
    workspace.time_zone = "Asia/Tokyo"  # changed without a rebuild: same totals, other days
    workspace.save()
    assert not rollups.totals_match(workspace)
    rollups.rebuild_workspace(workspace)
    assert rollups.totals_match(workspace)


def test_a_zone_changed_in_django_admin_rebuilds_too(client, workspace, imported, django_capture_on_commit_callbacks):
    from django.contrib.auth import get_user_model

    staff = get_user_model().objects.create_superuser("root", "root@example.com", "correct-horse-battery-staple")
    client.force_login(staff)
    url = reverse("admin:accounts_workspace_change", args=[workspace.pk])
    data = {"name": workspace.name, "slug": workspace.slug, "time_zone": "Asia/Tokyo",
            "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0"}  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(url, data).status_code == 302
    assert RollupRebuildJob.objects.get(workspace=workspace).status == "done"
    assert rollups.totals_match(workspace)
    assert date(2026, 11, 21) in set(rollups.daily_for(workspace).values_list("day", flat=True))
