"""The "Import usage (CSV)" section of the integration page, and what the page says for a
provider without a usage API (Authress): no Sync now, and why."""

from __future__ import annotations

import html
import re
from datetime import date, timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile, TemporaryUploadedFile
from django.urls import reverse
from django.utils import timezone
from django.utils.html import strip_tags

from doow.jobs import HEARTBEAT_STALE
from integrations.models import Integration
from integrations.testing import make_integration
from sandbox import authress as fake
from usage import importer
from usage.importer import MAX_IMPORT_BYTES
from usage.models import UsageImport, UsageRecord

HX = {"HTTP_HX_REQUEST": "true"}
GOOD = b"date,resource,operation,calls\n2025-03-01,/v1/records,POST,87\n2025-03-02,/v1/records,POST,90\n"
BAD = b"date,resource,operation,calls\n2025-03-01,/v1/records,POST,87\n2025-03-02,/v1/records,POST,-1\nlater,/v1/records,POST,1\n"


def url(name: str, integration: Integration) -> str:
    return reverse(f"integrations:{name}", kwargs={"ws": integration.workspace.slug, "pk": integration.pk})


def upload(content: bytes, name: str = "calls.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="text/csv")


def text(response) -> str:
    return " ".join(html.unescape(strip_tags(response.content.decode())).split())


@pytest.fixture
def authress(workspace, admin_user) -> Integration:
    return make_integration(
        workspace,
        "Authress prod",
        "authress",
        credential={"access_key": fake.ACCESS_KEY},
        settings={"base_url": "http://127.0.0.1:9"},
        created_by=admin_user,
    )


def status_url(job: UsageImport) -> str:
    return reverse(
        "integrations:import_status",
        kwargs={"ws": job.integration.workspace.slug, "pk": job.integration_id, "job": job.pk},
    )


def test_an_upload_is_queued_then_the_section_follows_it_to_the_result(
    admin_client, authress, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as enqueued:
        response = admin_client.post(url("import_usage", authress), {"file": upload(GOOD), "format": "auto"}, **HX)
    assert response.status_code == 200
    body = text(response)
    assert body.startswith("Import usage (CSV)")  # the section alone, not the page
    assert "calls.csv is queued for import — waiting for a worker…" in body
    job = UsageImport.objects.get()
    raw = response.content.decode()
    assert f'hx-get="{status_url(job)}?watching=1" hx-trigger="every 1s"' in raw  # it polls
    assert 'name="file"' not in raw  # one import at a time: no second upload meanwhile
    # The request only kept the file: the worker does the rest.
    assert job.status == UsageImport.Status.QUEUED and bytes(job.data) == GOOD and job.created_by.username == "ada"
    assert not UsageRecord.objects.exists() and not authress.events.exists()
    assert len(enqueued) == 1

    enqueued[0]()  # the Celery task, run eagerly in tests
    response = admin_client.get(status_url(job) + "?watching=1", **HX)
    body = text(response)
    assert "Imported 2 rows for 2025-03-01 – 2025-03-02 (UTC) (Authress portal format) from calls.csv" in body
    assert set(response["HX-Trigger"].split(", ")) >= {"usage-changed", "events-changed", "integration-changed"}
    assert 'hx-trigger="every 1s"' not in response.content.decode() and 'name="file"' in response.content.decode()
    assert UsageRecord.objects.filter(integration=authress).count() == 2
    job.refresh_from_db()
    assert job.status == UsageImport.Status.DONE and job.rows == 2 and bytes(job.data) == b""  # the file is dropped


def test_the_section_shows_progress_while_the_worker_stores(
    admin_client, authress, django_capture_on_commit_callbacks, monkeypatch
) -> None:
    content = fake.portal_csv(date(2025, 1, 1), date(2025, 3, 1)).encode()
    rows = len(fake.truth_calls(date(2025, 1, 1), date(2025, 3, 1)))
    monkeypatch.setattr(importer, "PROGRESS_EVERY", 50)
    seen: list[str] = []
    prepare = importer.usage_prepare_samples

    def prepare_and_look(**kwargs):
        # What the admin's browser gets while the worker is preparing a batch of rows.
        job = UsageImport.objects.get()
        seen.append(text(admin_client.get(status_url(job) + "?watching=1", **HX)))
        return prepare(**kwargs)

    monkeypatch.setattr(importer, "usage_prepare_samples", prepare_and_look)
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(url("import_usage", authress), {"file": upload(content)}, **HX)
    assert rows > 100 and len(seen) == -(-rows // 50)
    assert f"Every line passed; storing {rows:,} rows…" in seen[0] and f"0 of {rows:,} rows prepared · 0%" in seen[0]
    assert f"50 of {rows:,} rows prepared" in seen[1]
    assert UsageRecord.objects.count() == rows


def test_errors_are_listed_with_line_numbers_and_nothing_is_stored(
    admin_client, authress, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(url("import_usage", authress), {"file": upload(BAD), "format": "auto"}, **HX)
    job = UsageImport.objects.get()
    response = admin_client.get(status_url(job) + "?watching=1", **HX)
    body = text(response)
    assert "Nothing was imported from calls.csv: 2 problems in the file." in body
    assert "line 3: calls '-1' is not a whole, non-negative number" in body
    assert "line 4: date 'later' is not a date such as 2025-03-01" in body
    assert response["HX-Trigger"] == "events-changed"
    assert not UsageRecord.objects.exists()
    assert "rejected; nothing was stored" in authress.events.get().message
    job.refresh_from_db()
    assert job.status == UsageImport.Status.FAILED and job.problems_total == 2 and bytes(job.data) == b""


def test_without_htmx_the_upload_redirects_and_the_page_shows_the_outcome(
    admin_client, authress, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url("import_usage", authress), {"file": upload(BAD)})
    assert response.status_code == 302 and response["Location"] == url("detail", authress) + "#usage-import"
    body = text(admin_client.get(response["Location"]))
    assert "calls.csv is queued for import; its progress shows below." in body
    assert "Event log" in body and "line 3: calls '-1'" in body and "format: This field is required" not in body
    assert not UsageRecord.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(url("import_usage", authress), {"file": upload(GOOD), "format": "authress"})
    body = text(admin_client.get(url("detail", authress)))
    assert "Imported 2 rows for 2025-03-01 – 2025-03-02 (UTC)" in body
    assert "3 Mar 2025, 00:00 UTC" in body  # "Usage through": the end of the latest imported day


def test_a_second_upload_while_one_is_queued_is_refused(
    admin_client, authress, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=False):
        admin_client.post(url("import_usage", authress), {"file": upload(GOOD)}, **HX)
        response = admin_client.post(url("import_usage", authress), {"file": upload(BAD, "other.csv")}, **HX)
    assert "An import of calls.csv is still in progress; wait for it to finish" in text(response)
    assert UsageImport.objects.count() == 1


def test_a_stalled_import_says_so_and_takes_a_new_upload(
    admin_client, authress, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=False):
        admin_client.post(url("import_usage", authress), {"file": upload(GOOD)}, **HX)
    job = UsageImport.objects.get()
    # Its worker claimed it, then died without a word for longer than HEARTBEAT_STALE.
    long_ago = timezone.now() - HEARTBEAT_STALE - timedelta(seconds=1)
    UsageImport.objects.filter(pk=job.pk).update(status=UsageImport.Status.CHECKING, attempts=1, updated_at=long_ago)
    body = text(admin_client.get(url("detail", authress)))
    assert (
        "The import of calls.csv stalled: its worker last reported progress 15 min ago" in body
        and "It is handed to another worker automatically within minutes" in body
        and "uploading a file now replaces it" in body
    ), body
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(url("import_usage", authress), {"file": upload(GOOD)}, **HX)
    assert UsageRecord.objects.count() == 2
    # The stalled one was replaced: beat does not import the old file after the new one.
    job.refresh_from_db()
    assert job.status == UsageImport.Status.FAILED and "A new file was uploaded" in job.error
    assert bytes(job.data) == b""


def test_a_file_over_the_limit_is_refused_with_its_size_and_never_kept(admin_client, authress, monkeypatch) -> None:
    # Never spooled to a temporary file on the web host, whatever its size.
    monkeypatch.setattr(TemporaryUploadedFile, "__init__", lambda *a, **k: pytest.fail("the upload went to disk"))
    big = GOOD + b"2025-03-03,/v1/records,POST,1\n" * (MAX_IMPORT_BYTES // 30 + 1)
    response = admin_client.post(url("import_usage", authress), {"file": upload(big)}, **HX)
    body = text(response)
    assert f"the file is {len(big) / 1024 / 1024:.1f} MB; the limit is 20 MB" in body
    job = UsageImport.objects.get()
    assert job.status == UsageImport.Status.FAILED and bytes(job.data) == b"" and job.size == len(big)
    assert not UsageRecord.objects.exists()
    assert "rejected; nothing was stored" in authress.events.get().message
    assert response["HX-Trigger"] == "events-changed"


def test_a_large_file_is_only_kept_by_the_request_and_queued_on_the_broker(
    admin_client, authress, settings, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    """50,000 rows: the request stores the file and puts one message on the real broker
    (memory://, or Redis in CI); it checks and stores nothing itself."""
    from doow.celery import app

    monkeypatch.setattr(TemporaryUploadedFile, "__init__", lambda *a, **k: pytest.fail("the upload went to disk"))
    start = date(2025, 1, 1)
    lines = [
        f"{start + timedelta(days=i // 200)},/v1/workspaces/{i % 200}/users/{{userId}}/resources,GET,{i}"
        for i in range(50_000)
    ]
    content = ("date,resource,operation,calls\n" + "\n".join(lines) + "\n").encode()
    assert len(content) > 2.5 * 1024 * 1024  # Django would spool it to disk by default
    settings.CELERY_TASK_ALWAYS_EAGER = False
    app.conf.task_always_eager = False
    queue = app.conf.task_default_queue
    try:
        with app.connection_for_write() as conn:
            simple = conn.SimpleQueue(queue)
            simple.clear()
            with django_capture_on_commit_callbacks(execute=True):  # the request commits, the message leaves
                response = admin_client.post(url("import_usage", authress), {"file": upload(content, "big.csv")}, **HX)
            assert response.status_code == 200
            job = UsageImport.objects.get()
            assert (
                job.status == UsageImport.Status.QUEUED
                and job.lines_total == 50_000
                and len(bytes(job.data)) == len(content)
            )
            assert "big.csv is queued for import" in text(response)
            assert not UsageRecord.objects.exists() and not authress.events.exists()
            message = simple.get(timeout=5)
            try:
                assert message.headers["task"] == "usage.tasks.import_usage"
                assert message.decode()[0] == [job.pk]
            finally:
                message.ack()
                simple.close()
    finally:
        app.conf.task_always_eager = True


def test_a_post_without_a_file_is_a_field_error(admin_client, authress) -> None:
    response = admin_client.post(url("import_usage", authress), {"format": "auto"}, **HX)
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert not authress.events.exists()


def test_get_is_not_allowed(admin_client, authress) -> None:
    assert admin_client.get(url("import_usage", authress)).status_code == 405


def test_member_gets_403_and_nothing_is_stored(member_client, authress) -> None:
    response = member_client.post(url("import_usage", authress), {"file": upload(GOOD)}, **HX)
    assert response.status_code == 403
    assert not UsageRecord.objects.exists() and not authress.events.exists()


def test_outsider_gets_404_and_nothing_is_stored(outsider_client, authress) -> None:
    assert outsider_client.post(url("import_usage", authress), {"file": upload(GOOD)}).status_code == 404
    assert not UsageRecord.objects.exists()


def test_another_workspaces_integration_is_404_under_my_slug(admin_client, workspace, other_workspace) -> None:
    theirs = Integration(
        workspace=other_workspace, provider="authress", name="Globex", settings={"base_url": "http://127.0.0.1:9"}
    )
    theirs.set_credential({"access_key": fake.ACCESS_KEY})
    theirs.save()
    target = reverse("integrations:import_usage", kwargs={"ws": workspace.slug, "pk": theirs.pk})
    assert admin_client.post(target, {"file": upload(GOOD)}).status_code == 404
    assert not UsageRecord.objects.exists()


def test_an_import_job_is_only_found_under_its_own_integration(
    admin_client, authress, workspace, other_workspace
) -> None:
    theirs = Integration(
        workspace=other_workspace, provider="authress", name="Globex", settings={"base_url": "http://127.0.0.1:9"}
    )
    theirs.set_credential({"access_key": fake.ACCESS_KEY})
    theirs.save()
    their_job = UsageImport.objects.create(workspace=other_workspace, integration=theirs, source="globex-secret.csv")
    mine_url = reverse(
        "integrations:import_status", kwargs={"ws": workspace.slug, "pk": authress.pk, "job": their_job.pk}
    )
    response = admin_client.get(mine_url, **HX)
    assert response.status_code == 404 and b"globex-secret" not in response.content


def test_the_authress_page_says_why_there_is_no_sync(admin_client, authress) -> None:
    response = admin_client.get(url("detail", authress))
    raw = response.content.decode()
    body = text(response)
    assert "Never synced." in body and "Authress has no API that reports call volume" in body
    assert "No Sync now: Authress has no usage API" in body
    assert url("sync", authress) not in raw and "Sync now</button>" not in raw
    assert url("pause", authress) not in raw  # nothing scheduled, nothing to pause
    assert "Nothing imported yet" in body and "Next sync" not in body
    assert "Authress is never synced: its usage arrives by CSV import." in body
    assert "import a CSV" in body
    # The import form, and the formats it takes with an example header of each.
    assert f'action="{url("import_usage", authress)}"' in raw and 'enctype="multipart/form-data"' in raw
    assert 'hx-encoding="multipart/form-data"' in raw
    assert "date,resource,operation,calls" in body and "bucket_start,bucket_end" in body


def test_a_syncing_provider_keeps_sync_now_and_gets_the_import_too(admin_client, workspace) -> None:
    openai = Integration(
        workspace=workspace, provider="openai", name="OpenAI", settings={"base_url": "http://127.0.0.1:9/v1"}
    )
    openai.set_credential({"api_key": "sk-admin-import-page-000000000000"})
    openai.save()
    raw = admin_client.get(url("detail", openai)).content.decode()
    assert url("sync", openai) in raw and "Never synced." not in raw
    assert "Import usage (CSV)" in raw and url("import_usage", openai) in raw
    forms = re.findall(r"<form\b[^>]*>", raw)
    assert all("action=" in f for f in forms if "hx-post=" in f)


def test_adding_authress_verifies_against_the_sandbox_and_says_usage_is_imported(
    admin_client, workspace, sandbox
) -> None:
    add = reverse("integrations:add", kwargs={"ws": workspace.slug, "provider": "authress"})
    response = admin_client.post(
        add, {"credential_access_key": fake.ACCESS_KEY, "setting_base_url": f"{sandbox.url}/authress"}, follow=True
    )
    body = text(response)
    assert "Connected Authress. Authress has no usage API: import its usage as CSV below." in body
    integration = Integration.objects.get()
    assert integration.identity["account_id"] == fake.ACCOUNT_ID and integration.next_sync_at is None
    assert fake.ACCESS_KEY not in response.content.decode()


def test_adding_authress_with_a_malformed_key_shows_the_reason_on_the_field(admin_client, workspace, sandbox) -> None:
    add = reverse("integrations:add", kwargs={"ws": workspace.slug, "provider": "authress"})
    response = admin_client.post(
        add, {"credential_access_key": "sc_1.kid_1.acc_1", "setting_base_url": f"{sandbox.url}/authress"}
    )
    form = response.context["form"]
    assert "four parts separated by dots" in " ".join(form.errors["credential_access_key"])
    assert sandbox.requests() == [] and not Integration.objects.exists()


def test_the_authress_portal_fixture_imports_through_the_page_twice(
    admin_client, authress, django_capture_on_commit_callbacks
) -> None:
    content = fake.portal_csv(date(2025, 3, 1), date(2025, 3, 8)).encode()
    for _ in range(2):  # the same file again changes nothing
        with django_capture_on_commit_callbacks(execute=True):
            admin_client.post(url("import_usage", authress), {"file": upload(content)}, **HX)
    rows = len(fake.truth_calls(date(2025, 3, 1), date(2025, 3, 8)))
    assert f"Imported {rows} rows" in text(admin_client.get(url("detail", authress)))
    assert UsageRecord.objects.count() == rows
    assert UsageImport.objects.filter(status=UsageImport.Status.DONE, rows=rows).count() == 2
