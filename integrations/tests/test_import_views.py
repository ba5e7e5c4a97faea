"""The "Import usage (CSV)" section of the integration page, and what the page says for a
provider without a usage API (Authress): no Sync now, and why."""

from __future__ import annotations

import html
import re
from datetime import date

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils.html import strip_tags

from integrations.models import Integration
from sandbox import authress as fake
from usage.models import UsageRecord

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
    integration = Integration(
        workspace=workspace, provider="authress", name="Authress prod", settings={"base_url": "http://127.0.0.1:9"}, created_by=admin_user
    )
    integration.set_credential({"access_key": fake.ACCESS_KEY})
    integration.save()
    return integration


def test_admin_uploads_a_file_and_gets_the_result_fragment(admin_client, authress) -> None:
    response = admin_client.post(url("import_usage", authress), {"file": upload(GOOD), "format": "auto"}, **HX)
    assert response.status_code == 200
    body = text(response)
    assert body.startswith("Import usage (CSV)")  # the section alone, not the page
    assert "Imported 2 rows for 2025-03-01 – 2025-03-02 (UTC) (Authress portal format)" in body
    assert set(response["HX-Trigger"].split(", ")) >= {"usage-changed", "events-changed", "integration-changed"}
    assert UsageRecord.objects.filter(integration=authress).count() == 2


def test_without_htmx_a_good_file_redirects_with_a_message(admin_client, authress) -> None:
    response = admin_client.post(url("import_usage", authress), {"file": upload(GOOD), "format": "authress"})
    assert response.status_code == 302 and response["Location"] == url("detail", authress) + "#usage-import"
    page = text(admin_client.get(response["Location"]))
    assert "Imported 2 usage rows for 2025-03-01 – 2025-03-02 (UTC)." in page
    assert "2025-03-03 00:00 UTC" in page  # "Usage through": the end of the latest imported day


def test_errors_are_listed_with_line_numbers_and_nothing_is_stored(admin_client, authress) -> None:
    response = admin_client.post(url("import_usage", authress), {"file": upload(BAD), "format": "auto"}, **HX)
    assert response.status_code == 200
    body = text(response)
    assert "Nothing was imported: 2 problems in the file." in body
    assert "line 3: calls '-1' is not a whole, non-negative number" in body
    assert "line 4: date 'later' is not a date such as 2025-03-01" in body
    assert response["HX-Trigger"] == "events-changed"
    assert not UsageRecord.objects.exists()
    assert "rejected; nothing was stored" in authress.events.get().message


def test_without_htmx_errors_render_the_whole_page(admin_client, authress) -> None:
    response = admin_client.post(url("import_usage", authress), {"file": upload(BAD)})
    assert response.status_code == 200
    body = text(response)
    assert "Event log" in body and "line 3: calls '-1'" in body and "format: This field is required" not in body
    assert not UsageRecord.objects.exists()


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
    theirs = Integration(workspace=other_workspace, provider="authress", name="Globex", settings={"base_url": "http://127.0.0.1:9"})
    theirs.set_credential({"access_key": fake.ACCESS_KEY})
    theirs.save()
    target = reverse("integrations:import_usage", kwargs={"ws": workspace.slug, "pk": theirs.pk})
    assert admin_client.post(target, {"file": upload(GOOD)}).status_code == 404
    assert not UsageRecord.objects.exists()


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
    openai = Integration(workspace=workspace, provider="openai", name="OpenAI", settings={"base_url": "http://127.0.0.1:9/v1"})
    openai.set_credential({"api_key": "sk-admin-import-page-000000000000"})
    openai.save()
    raw = admin_client.get(url("detail", openai)).content.decode()
    assert url("sync", openai) in raw and "Never synced." not in raw
    assert "Import usage (CSV)" in raw and url("import_usage", openai) in raw
    forms = re.findall(r"<form\b[^>]*>", raw)
    assert all("action=" in f for f in forms if "hx-post=" in f)


def test_adding_authress_verifies_against_the_sandbox_and_says_usage_is_imported(admin_client, workspace, sandbox) -> None:
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
    response = admin_client.post(add, {"credential_access_key": "sc_1.kid_1.acc_1", "setting_base_url": f"{sandbox.url}/authress"})
    form = response.context["form"]
    assert "four parts separated by dots" in " ".join(form.errors["credential_access_key"])
    assert sandbox.requests() == [] and not Integration.objects.exists()


def test_the_authress_portal_fixture_imports_through_the_page(admin_client, authress) -> None:
    content = fake.portal_csv(date(2025, 3, 1), date(2025, 3, 8)).encode()
    admin_client.post(url("import_usage", authress), {"file": upload(content)}, **HX)
    again = admin_client.post(url("import_usage", authress), {"file": upload(content)}, **HX)
    rows = len(fake.truth_calls(date(2025, 3, 1), date(2025, 3, 8)))
    assert f"Imported {rows} rows" in text(again)
    assert UsageRecord.objects.count() == rows
