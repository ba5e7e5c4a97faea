"""Content-Security-Policy (django-csp) on every page, and nothing inline that it would block:
no <script> code, no on…= handlers, no style= attributes, no <style> blocks — in our templates
and in the HTML our pages and Django admin actually send."""

from __future__ import annotations

import io
import re
from datetime import date, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from usage.models import Application, AttributionRule, License

BASE_DIR = Path(settings.BASE_DIR)
DIRECTIVES = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}


def policy(response) -> dict[str, str]:
    header = response.headers.get("Content-Security-Policy")
    assert header, f"no Content-Security-Policy on {response.request['PATH_INFO']}"
    return {part.split()[0]: " ".join(part.split()[1:]) for part in header.split(";") if part.strip()}


class InlineFinder(HTMLParser):
    """Collects what a strict CSP blocks in a page."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self._script: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        for name, value in attrs:
            if name.startswith("on") or name.startswith("hx-on"):
                self.problems.append(f"<{tag} {name}=…> event handler")
            if name == "style":
                self.problems.append(f"<{tag} style={value!r}>")
            if name in ("href", "src", "action") and (value or "").strip().lower().startswith("javascript:"):
                self.problems.append(f"<{tag} {name}=javascript:…>")
        if tag == "style":
            self.problems.append("<style> block")
        if tag == "script" and not named.get("src") and named.get("type") != "application/json":
            self._script = ""

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._script += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._script is not None:
            if self._script.strip():
                self.problems.append(f"inline <script>: {self._script.strip()[:60]!r}")
            self._script = None


def inline_problems(html: str) -> list[str]:
    finder = InlineFinder()
    finder.feed(html)
    return finder.problems


# ---------------------------------------------------------------- templates
TEMPLATE_FILES = sorted(
    [p for p in (BASE_DIR / "templates").rglob("*.html")]
    + [p for app in ("accounts", "integrations", "usage") for p in (BASE_DIR / app).rglob("templates/**/*.html")]
)
TEMPLATE_COMMENT = re.compile(r"\{#.*?#\}|\{%\s*comment\s*%\}.*?\{%\s*endcomment\s*%\}", re.S)
FORBIDDEN_IN_TEMPLATES = [
    (re.compile(r"<script\b(?![^>]*\bsrc=)[^>]*>", re.I), "a <script> without src"),
    (re.compile(r"\son[a-z]+\s*=", re.I), "an on…= event handler"),
    (re.compile(r"\shx-on", re.I), "an hx-on handler (needs eval)"),
    (re.compile(r"\sstyle\s*=", re.I), "a style= attribute"),
    (re.compile(r"<style\b", re.I), "a <style> block"),
    (re.compile(r"javascript:", re.I), "a javascript: URL"),
]


def test_there_are_templates_to_check():
    assert len(TEMPLATE_FILES) > 20


@pytest.mark.parametrize("path", TEMPLATE_FILES, ids=[str(p.relative_to(BASE_DIR)) for p in TEMPLATE_FILES])
def test_no_template_has_inline_code_or_style(path):
    text = TEMPLATE_COMMENT.sub("", path.read_text())
    for pattern, what in FORBIDDEN_IN_TEMPLATES:
        match = pattern.search(text)
        assert match is None, (
            f"{path.relative_to(BASE_DIR)} has {what}: {match.group(0)!r}; the CSP blocks it — use a static file or a CSS class"
        )


# ---------------------------------------------------------------- pages as sent
def _patterns(patterns: list, namespace: str = "", prefix: str = "") -> list[tuple[str, str, URLPattern]]:
    """(namespace, full route, pattern) of every named URL outside Django admin."""
    found = []
    for entry in patterns:
        if isinstance(entry, URLResolver):
            if entry.namespace == "admin":
                continue  # Django admin: below
            found += _patterns(entry.url_patterns, entry.namespace or namespace, prefix + str(entry.pattern))
        elif entry.name:
            found.append((namespace, prefix + str(entry.pattern), entry))
    return found


@pytest.fixture
def everything(sandbox, workspace, admin_user, openai_integration):
    """A synced integration (so charts and tables have rows) and one of each inventory object."""
    day = (timezone.now() - timedelta(days=2)).date().isoformat()
    call_command("sync", str(openai_integration.pk), "--since", day, "--until", day, stdout=io.StringIO())
    app = Application.objects.create(workspace=workspace, name="Chatbot")
    lic = License.objects.create(workspace=workspace, application=app, plan_name="Scale", start_date=date(2026, 1, 1))
    rule = AttributionRule.objects.create(
        workspace=workspace, provider="openai", model="gpt-4o", application=app, license=lic
    )
    return {
        "ws": workspace.slug,
        "provider": "openai",
        "integrations": openai_integration.pk,
        "application": app.pk,
        "license": lic.pk,
        "rule": rule.pk,
        "usage": lic.pk,  # usage:license
        "workspace_pk": workspace.pk,
    }


def _page_urls(values: dict) -> list[str]:
    urls = []
    for namespace, route, pattern in _patterns(get_resolver().url_patterns):
        names = set(re.findall(r"<(?:\w+:)?(\w+)>", route))
        kwargs = {}
        for name in names:
            if name == "pk":
                kind = namespace if namespace in ("integrations", "usage") else pattern.name.split("_")[0]
                if kind not in values:  # an object this test does not create: its template is still scanned
                    kwargs = None
                    break
                kwargs["pk"] = values[kind]
            elif name in values:
                kwargs[name] = values[name]
            else:
                kwargs = None
                break
        if kwargs is not None:
            urls.append(reverse(f"{namespace}:{pattern.name}" if namespace else pattern.name, kwargs=kwargs))
    return urls


def test_every_page_carries_the_policy_and_nothing_inline(admin_client, everything):
    urls = _page_urls(everything)
    assert len(urls) > 30
    html_pages = charts = 0
    for url in urls:
        response = admin_client.get(url)
        assert response.status_code < 500, url
        assert policy(response) | DIRECTIVES == policy(response), url
        if response.status_code == 200 and response.get("Content-Type", "").startswith("text/html"):
            html_pages += 1
            body = response.content.decode()
            assert inline_problems(body) == [], url
            if "<canvas" in body:  # the charts draw from json_script data with a static script
                charts += 1
                assert 'type="application/json"' in body and "js/explorer.js" in body
    assert html_pages > 20 and charts >= 1


def test_the_policy_is_strict():
    response = Client().get(reverse("accounts:login"))
    directives = policy(response)
    assert directives | DIRECTIVES == directives
    header = response.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in header and "unsafe-eval" not in header and "*" not in header
    assert response.headers["X-Frame-Options"] == "DENY"


def test_anonymous_pages_and_errors_carry_it_too(client, workspace):
    for url in (
        reverse("accounts:login"),
        reverse("accounts:password_reset"),
        "/no-such-page/",
        reverse("admin:login"),
    ):
        response = client.get(url)
        policy(response)
        assert inline_problems(response.content.decode()) == [], url


def test_django_admin_pages_need_nothing_inline(everything, django_user_model):
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    crontab = CrontabSchedule.objects.create(minute="0", hour="*/2")
    task = PeriodicTask.objects.create(
        name="every two hours", task="integrations.tasks.dispatch_due_syncs", crontab=crontab
    )
    root = django_user_model.objects.create_superuser("root", "root@example.com", "x")
    staff = Client()
    staff.force_login(root)
    urls = [
        reverse("admin:index"),
        reverse("admin:integrations_integration_changelist"),
        reverse("admin:integrations_integration_change", args=[everything["integrations"]]),
        reverse("admin:integrations_syncrun_changelist"),
        reverse("admin:usage_usagerecord_changelist"),
        reverse("admin:usage_attributionrule_change", args=[everything["rule"]]),
        reverse("admin:usage_license_change", args=[everything["license"]]),
        reverse("admin:accounts_workspace_change", args=[everything["workspace_pk"]]),
        reverse("admin:auth_user_add"),
        reverse("admin:auth_user_change", args=[root.pk]),
        reverse("admin:auth_user_password_change", args=[root.pk]),
        reverse("admin:axes_accessattempt_changelist"),
        reverse("admin:django_celery_beat_periodictask_changelist"),
        reverse("admin:django_celery_beat_periodictask_add"),
        reverse("admin:django_celery_beat_periodictask_change", args=[task.pk]),
        reverse("admin:django_celery_beat_crontabschedule_add"),
    ]
    for url in urls:
        response = staff.get(url)
        assert response.status_code == 200, url
        policy(response)
        assert inline_problems(response.content.decode()) == [], url
    # the periodic-task form keeps its crontab help, from a static script
    body = staff.get(reverse("admin:django_celery_beat_periodictask_change", args=[task.pk])).content.decode()
    assert 'id="readable-crontabs"' in body and "js/periodic_task_form.js" in body
