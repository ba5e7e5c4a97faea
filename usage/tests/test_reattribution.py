"""Re-attribution in the background: correct on a large table, batched (queries grow with
batches, not rows), with progress on its job, and one job at a time per workspace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fnmatch import fnmatchcase

from django.db import connection
from django.test.utils import CaptureQueriesContext

from integrations.models import Integration
from usage import attribution, rollups, services
from usage.models import (
    Application,
    AttributionRule,
    License,
    ReattributionJob,
    UsageRecord,
)
from usage.tasks import reattribute_workspace

T0 = datetime(2026, 10, 1, tzinfo=UTC)
MODELS = ("gpt-4o", "gpt-4o-mini", "o1", "gpt-3.5-turbo", "text-embedding-3-small")
PROJECTS = ("proj_a", "proj_b", "proj_c", "")


def make_rows(integration: Integration, n: int, provider: str = "openai") -> None:
    """n distinct rows cycling through models, projects and regions (bulk_create, no attribution)."""
    UsageRecord.objects.bulk_create(
        [
            UsageRecord(
                workspace_id=integration.workspace_id,
                integration=integration,
                provider=provider,
                bucket_start=T0 + timedelta(hours=i // 60),
                bucket_end=T0 + timedelta(hours=i // 60 + 1),
                model=MODELS[i % len(MODELS)],
                project=PROJECTS[(i // 5) % len(PROJECTS)],
                region=("us", "eu")[(i // 20) % 2],
                api_key=f"key_{i % 13}",
                metric="input_tokens",
                quantity=Decimal(i),
                unit="tokens",
            )
            for i in range(n)
        ],
        batch_size=2000,
    )


def reference(rules: list[AttributionRule], row: UsageRecord) -> tuple[int | None, int | None, int | None]:
    """The specification, written out naively: first rule by (priority, id) whose provider is
    equal and whose every non-empty pattern matches by fnmatchcase."""
    for r in sorted(rules, key=lambda r: (r.priority, r.pk)):
        if r.provider == row.provider and all(
            fnmatchcase(getattr(row, f), getattr(r, f)) for f in AttributionRule.MATCH_FIELDS if getattr(r, f)
        ):
            return r.application_id, r.license_id, r.pk
    return None, None, None


def run_job(workspace, django_capture_on_commit_callbacks) -> ReattributionJob:
    with django_capture_on_commit_callbacks(execute=True):
        job = services.reattribution_request(workspace=workspace)
    job.refresh_from_db()
    return job


def test_reattribution_of_a_large_table_matches_the_rules(workspace, integration, django_capture_on_commit_callbacks):
    make_rows(integration, 20_000)
    chatbot = Application.objects.create(workspace=workspace, name="Chatbot")
    search = Application.objects.create(workspace=workspace, name="Search")
    openai = Application.objects.create(workspace=workspace, name="OpenAI")
    enterprise = License.objects.create(
        workspace=workspace, application=chatbot, plan_name="Enterprise", start_date=T0.date()
    )
    rules = [
        AttributionRule.objects.create(
            workspace=workspace,
            provider="openai",
            project="proj_a",
            model="gpt-4o*",
            application=chatbot,
            license=enterprise,
            priority=10,
        ),
        AttributionRule.objects.create(
            workspace=workspace, provider="openai", project="proj_[ab]", application=search, priority=20
        ),
        AttributionRule.objects.create(
            workspace=workspace, provider="openai", region="eu", api_key="key_?", application=search, priority=20
        ),
        AttributionRule.objects.create(
            workspace=workspace, provider="openai", model="o1", application=chatbot, priority=5
        ),
        AttributionRule.objects.create(workspace=workspace, provider="anthropic", application=openai, priority=0),
        AttributionRule.objects.create(
            workspace=workspace, provider="openai", project="proj_c", application=openai, priority=1000, is_default=True
        ),
    ]
    job = run_job(workspace, django_capture_on_commit_callbacks)

    assert (job.status, job.done, job.total, job.progress_percent) == ("done", 20_000, 20_000, 100)
    matcher = attribution.load_matcher(workspace_id=workspace.pk)
    stored = list(UsageRecord.objects.all())
    for row in stored:
        expected = reference(rules, row)
        assert (row.application_id, row.license_id, row.rule_id) == expected
        assert matcher.attribute(row.provider, row) == attribution.Attribution(*expected)
    # Every kind of outcome occurs, so the comparison above means something.
    outcomes = {(r.application_id, r.rule_id) for r in stored}
    assert {rules[0].pk, rules[1].pk, rules[2].pk, rules[3].pk, rules[5].pk, None} <= {rule for _, rule in outcomes}


def test_changing_a_rule_moves_existing_rows(workspace, integration, django_capture_on_commit_callbacks):
    make_rows(integration, 500)
    chatbot = Application.objects.create(workspace=workspace, name="Chatbot")
    with django_capture_on_commit_callbacks(execute=True):
        rule = services.attribution_rule_save(
            rule=AttributionRule(workspace=workspace, provider="openai", model="o1", application=chatbot)
        )
    assert UsageRecord.objects.filter(application=chatbot).count() == 100
    rule.model = "gpt-*"
    with django_capture_on_commit_callbacks(execute=True):
        services.attribution_rule_save(rule=rule)
    assert UsageRecord.objects.filter(application=chatbot).count() == 300
    assert not UsageRecord.objects.filter(application=chatbot, model="o1").exists()
    with django_capture_on_commit_callbacks(execute=True):
        services.attribution_rule_delete(rule=rule)
    assert not UsageRecord.objects.filter(application__isnull=False).exists()


def test_queries_grow_with_batches_not_rows(workspace, integration, monkeypatch):
    monkeypatch.setattr(attribution, "BATCH_SIZE", 250)
    apps = [Application.objects.create(workspace=workspace, name=f"App {i}") for i in range(3)]
    for i, app in enumerate(apps):
        AttributionRule.objects.create(workspace=workspace, provider="openai", model=MODELS[i], application=app)

    def queries_for(rows: int) -> int:
        UsageRecord.objects.all().delete()
        make_rows(integration, rows)
        rollups.rebuild_workspace(workspace)  # rows written without upkeep: bring rollups in step
        job = ReattributionJob.objects.create(workspace=workspace)
        with CaptureQueriesContext(connection) as captured:
            services.reattribution_run(job_id=job.pk)
        return len(captured)

    small, large = queries_for(1_000), queries_for(4_000)  # 4 and 16 batches of 250
    per_batch = (large - small) / 12
    print(f"queries: {small} for 1,000 rows, {large} for 4,000 rows; {per_batch:.1f} per batch")
    # Per batch: one SELECT, at most one UPDATE per outcome (3 rules + none), progress, the
    # "is there a newer job?" check, and one SELECT of the re-check of rows stored in the last
    # minutes (all of them, here) with its heartbeat; each batch's transaction (a savepoint and its release, in the
    # walk and in the re-check), one upsert of its moves in the daily rollups and one DELETE of
    # slices left empty, and the same two in each derived level (the total, narrow and project
    # rollups). Nothing per row: 3,000 more rows cost 12 batches' worth.
    assert per_batch <= 1 + 4 + 2 + 1 + 1 + 2 + 2 + 2 + 2 * len(rollups.LEVELS)
    assert large < 4_000 / 10


def test_the_job_records_its_progress_batch_by_batch(workspace, integration, monkeypatch):
    make_rows(integration, 1_000)
    app = Application.objects.create(workspace=workspace, name="All")
    AttributionRule.objects.create(workspace=workspace, provider="openai", application=app)
    job = ReattributionJob.objects.create(workspace=workspace)
    seen: list[tuple[str, int, int]] = []
    real = attribution.reattribute

    def spy(records, matcher, **kwargs):
        on_batch = kwargs.pop("on_batch", None)

        def record_progress(rows: int) -> bool:
            result = on_batch(rows) if on_batch else True
            current = ReattributionJob.objects.get(pk=job.pk)
            seen.append((current.status, current.done, current.total))
            return result

        return real(records, matcher, batch_size=300, on_batch=record_progress, **kwargs)

    monkeypatch.setattr(services, "reattribute", spy)
    reattribute_workspace(job.pk)
    assert seen[:4] == [("running", 300, 1000), ("running", 600, 1000), ("running", 900, 1000), ("running", 1000, 1000)]
    job.refresh_from_db()
    assert (job.status, job.done, job.total, job.finished_at is not None) == ("done", 1000, 1000, True)


def test_requests_while_queued_reuse_the_queued_job(workspace, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = services.reattribution_request(workspace=workspace)
        second = services.reattribution_request(workspace=workspace)
    assert first.pk == second.pk
    assert len(callbacks) == 2  # each enqueues; the second message finds the job done and stops
    for callback in callbacks:
        callback()
    assert list(ReattributionJob.objects.values_list("status", flat=True)) == ["done"]


def test_a_newer_job_supersedes_a_running_one(workspace, integration, monkeypatch):
    make_rows(integration, 1_000)
    app = Application.objects.create(workspace=workspace, name="All")
    AttributionRule.objects.create(workspace=workspace, provider="openai", application=app)
    older = ReattributionJob.objects.create(workspace=workspace)
    real = attribution.reattribute
    newer: list[ReattributionJob] = []

    def rules_change_during_the_first_batch(records, matcher, **kwargs):
        on_batch = kwargs.pop("on_batch", None)

        def first_batch_then_a_change(rows: int) -> bool:
            if not newer:
                newer.append(ReattributionJob.objects.create(workspace=workspace))
            return on_batch(rows) if on_batch else True

        return real(records, matcher, batch_size=100, on_batch=first_batch_then_a_change, **kwargs)

    monkeypatch.setattr(services, "reattribute", rules_change_during_the_first_batch)
    services.reattribution_run(job_id=older.pk)
    older.refresh_from_db()
    assert (older.status, older.done, older.error) == ("failed", 100, services.SUPERSEDED)
    monkeypatch.setattr(services, "reattribute", real)
    services.reattribution_run(job_id=newer[0].pk)
    newer[0].refresh_from_db()
    assert (newer[0].status, newer[0].done) == ("done", 1_000)
    assert not UsageRecord.objects.filter(application__isnull=True).exists()


def test_a_newer_job_waits_for_the_running_one_then_takes_over_from_a_dead_worker(workspace, monkeypatch):
    monkeypatch.setattr(services, "SUPERSEDE_WAIT_SECONDS", 0.3)
    monkeypatch.setattr(services, "SUPERSEDE_POLL_SECONDS", 0.05)
    dead = ReattributionJob.objects.create(workspace=workspace, status=ReattributionJob.Status.RUNNING)
    queued = ReattributionJob.objects.create(workspace=workspace)
    job = ReattributionJob.objects.create(workspace=workspace)
    services.reattribution_run(job_id=job.pk)
    dead.refresh_from_db()
    queued.refresh_from_db()
    job.refresh_from_db()
    assert (dead.status, dead.error) == ("failed", services.ABANDONED)
    assert (queued.status, queued.error) == ("failed", services.SUPERSEDED)
    assert job.status == "done"


def test_a_superseded_queued_job_does_not_run(workspace):
    older = ReattributionJob.objects.create(workspace=workspace)
    ReattributionJob.objects.create(workspace=workspace)
    services.reattribution_run(job_id=older.pk)
    older.refresh_from_db()
    assert (older.status, older.done) == ("failed", 0)


def test_a_finished_job_is_not_run_again(workspace):
    job = ReattributionJob.objects.create(workspace=workspace, status=ReattributionJob.Status.DONE, done=5, total=5)
    services.reattribution_run(job_id=job.pk)
    job.refresh_from_db()
    assert (job.status, job.done) == ("done", 5)


def test_other_workspaces_rows_are_left_alone(
    workspace, other_workspace, integration, django_capture_on_commit_callbacks
):
    theirs = Integration(workspace=other_workspace, provider="openai", name="Theirs")
    theirs.set_credential({"api_key": "sk-admin-theirs-0000"})
    theirs.save()
    make_rows(theirs, 50)
    app = Application.objects.create(workspace=workspace, name="Mine")
    AttributionRule.objects.create(workspace=workspace, provider="openai", application=app)
    make_rows(integration, 50)
    job = run_job(workspace, django_capture_on_commit_callbacks)
    assert job.done == 50
    assert not theirs.usage_records.filter(application__isnull=False).exists()
    assert integration.usage_records.filter(application=app).count() == 50


# ---------------------------------------------------------------- moving rules
def _order(workspace) -> list[int]:
    return list(workspace.attribution_rules.order_by("priority", "pk").values_list("pk", flat=True))


def test_moving_a_rule_swaps_it_with_its_neighbour(workspace, django_capture_on_commit_callbacks):
    app = Application.objects.create(workspace=workspace, name="App")
    a, b, c = (
        AttributionRule.objects.create(workspace=workspace, provider="openai", model=m, application=app, priority=p)
        for m, p in (("a", 10), ("b", 20), ("c", 30))
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert services.attribution_rule_move(rule=c, direction="up")
    assert _order(workspace) == [a.pk, c.pk, b.pk]
    assert sorted(workspace.attribution_rules.values_list("priority", flat=True)) == [10, 20, 30]
    assert not services.attribution_rule_move(rule=a, direction="up")
    assert services.attribution_rule_move(rule=a, direction="down")
    assert _order(workspace) == [c.pk, a.pk, b.pk]


def test_moving_among_equal_priorities_changes_only_what_it_must(workspace):
    app = Application.objects.create(workspace=workspace, name="App")
    first = AttributionRule.objects.create(workspace=workspace, provider="openai", application=app, priority=0)
    ties = [
        AttributionRule.objects.create(
            workspace=workspace, provider="openai", model=str(i), application=app, priority=100
        )
        for i in range(3)
    ]
    default = AttributionRule.objects.create(
        workspace=workspace, provider="openai", application=app, priority=1000, is_default=True
    )
    services.attribution_rule_move(rule=ties[2], direction="up")
    assert _order(workspace) == [first.pk, ties[0].pk, ties[2].pk, ties[1].pk, default.pk]
    services.attribution_rule_move(rule=ties[2], direction="up")
    assert _order(workspace) == [first.pk, ties[2].pk, ties[0].pk, ties[1].pk, default.pk]
    first.refresh_from_db()
    default.refresh_from_db()
    assert (first.priority, default.priority) == (0, 1000)
