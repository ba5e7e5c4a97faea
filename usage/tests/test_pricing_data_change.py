"""When the list prices change (genai-prices upgraded, usage/pricing/compute_prices.json edited),
beat's hourly task recomputes every workspace's estimates in the background, once, and the
Pricing page shows the job's progress. Driven through the Celery task and the page, after a
real Replicate sync; the price change is a real edit of a copy of the compute table."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.urls import reverse

from integrations import engine, services
from integrations.models import SyncRun
from sandbox import replicate as fake_replicate
from usage import tasks
from usage.models import DIMENSION_FIELDS, PricingRecomputeJob, UsageRecord
from usage.pricing import catalog, prices
from usage.pricing import services as pricing_services

pytestmark = pytest.mark.django_db
SDXL = "stability-ai/sdxl"  # runs on an L40S, priced per second from the compute table


@pytest.fixture
def replicate_synced(workspace, admin_user, sandbox):
    integration = services.integration_create(
        workspace=workspace, provider_slug="replicate", credential={"api_token": fake_replicate.API_TOKEN},
        settings={"base_url": sandbox.url + fake_replicate.PREFIX + "/v1"}, created_by=admin_user,
    )  # fmt: skip
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    run = engine.integration_sync(integration_id=integration.pk, since=now - timedelta(days=2), until=now,
                                  trigger="command")  # fmt: skip
    assert run.status == SyncRun.Status.SUCCESS, run.error
    return integration


def _forget_prices() -> None:
    for cached in (catalog.compute_table, prices.list_price, prices.price_data_version):
        cached.cache_clear()


@pytest.fixture
def edited_table(tmp_path, monkeypatch):
    """A way to edit the compute table as a release would: a copy with the L40S at a new price."""

    def edit(price: str) -> None:
        data = json.loads(catalog.TABLE_PATH.read_text())
        for entry in data["prices"]:
            if (entry["provider"], entry["key"]) == ("replicate", "gpu-l40s"):
                entry["price_usd"] = price
        path = tmp_path / "compute_prices.json"
        path.write_text(json.dumps(data))
        monkeypatch.setattr(catalog, "TABLE_PATH", path)
        monkeypatch.setattr(prices, "TABLE_PATH", path)
        _forget_prices()

    yield edit
    _forget_prices()  # the real table again (monkeypatch restores the paths first)


def sdxl(integration, metric: str) -> dict:
    """SDXL's rows of one metric by bucket and dimensions (an estimate has its usage's key)."""
    keys = ("bucket_start", "bucket_end", *DIMENSION_FIELDS)
    rows = UsageRecord.objects.filter(integration=integration, metric=metric, model=SDXL).values_list(*keys, "quantity")
    return {tuple(row[:-1]): row[-1] for row in rows}


def sdxl_estimates(integration) -> dict:
    return sdxl(integration, "estimated_cost")


def sdxl_seconds(integration) -> dict:
    """Prediction seconds (trainings run on hardware the table does not name: unpriced)."""
    return {k: q for k, q in sdxl(integration, "compute_seconds").items() if "training" not in k}


def test_changed_list_prices_recompute_every_estimate_in_the_background_once(
    admin_client, replicate_synced, edited_table, django_capture_on_commit_callbacks
):
    seconds = sdxl_seconds(replicate_synced)
    assert seconds and sdxl_estimates(replicate_synced) == {
        k: (s * Decimal("0.000975")).quantize(Decimal("0.000000001")) for k, s in seconds.items()
    }
    # The first run after deploying: the workspace was never recomputed, so it is, with the
    # installed data; a second run finds nothing to do.
    with django_capture_on_commit_callbacks(execute=True):
        tasks.recompute_prices_if_changed()
    first = PricingRecomputeJob.objects.get()
    assert first.status == "done" and first.price_data == prices.price_data_version()
    with django_capture_on_commit_callbacks(execute=True):
        tasks.recompute_prices_if_changed()
    assert PricingRecomputeJob.objects.count() == 1

    edited_table("0.002000")  # the L40S now lists at $0.002/s
    assert prices.price_data_version() != first.price_data
    with django_capture_on_commit_callbacks(execute=True):
        tasks.recompute_prices_if_changed()
    job = PricingRecomputeJob.objects.exclude(pk=first.pk).get()
    assert job.status == "done" and job.total > 0 and job.done == job.total
    assert sdxl_estimates(replicate_synced) == {k: s * Decimal("0.002") for k, s in seconds.items()}

    page = admin_client.get(reverse("usage_settings:pricing", kwargs={"ws": "acme"})).content.decode()
    assert "Up to date" in page and "$0.002000/second" in page  # the price each estimate now uses
    assert f'data-testid="price-data">{prices.price_data_version()}<' in page
    with django_capture_on_commit_callbacks(execute=True):
        tasks.recompute_prices_if_changed()
    assert PricingRecomputeJob.objects.count() == 2


def test_a_queued_recompute_is_left_to_start_and_workspaces_without_usage_are_skipped(
    workspace, other_workspace, replicate_synced, django_capture_on_commit_callbacks
):
    queued = PricingRecomputeJob.objects.create(workspace=workspace, price_data="genai-prices 0.0.1; table old")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        tasks.recompute_prices_if_changed()
    assert not callbacks and list(PricingRecomputeJob.objects.all()) == [queued]
    assert not other_workspace.pricing_jobs.exists()  # no priced usage there: nothing to recompute


# ---------------------------------------------------------------- a recompute that stops partway


class WorkerKilled(BaseException):
    """What a killed worker process looks like to the job: it stops where it is, its `except
    Exception` never runs (the message is then redelivered: ACKS_LATE, REJECT_ON_WORKER_LOST)."""


def _failing_store(monkeypatch, error: BaseException):
    real = pricing_services.usage_store_chunk
    calls = {"n": 0}

    def store(**kwargs):
        calls["n"] += 1
        raise error

    monkeypatch.setattr(pricing_services, "usage_store_chunk", store)
    return lambda: monkeypatch.setattr(pricing_services, "usage_store_chunk", real)


def _beat(capture) -> list:
    with capture(execute=True) as callbacks:
        tasks.recompute_prices_if_changed()
    return callbacks


def _page(client) -> str:
    return client.get(reverse("usage_settings:pricing", kwargs={"ws": "acme"})).content.decode()


def test_a_failed_recompute_is_not_priced_with_the_data_and_beat_retries_it_a_few_times(
    admin_client, replicate_synced, edited_table, monkeypatch, django_capture_on_commit_callbacks
):
    edited_table("0.002000")
    restore = _failing_store(monkeypatch, RuntimeError("disk full"))
    _beat(django_capture_on_commit_callbacks)
    job = PricingRecomputeJob.objects.get()
    assert job.status == "failed" and job.price_data == "" and job.requested_price_data == prices.price_data_version()
    assert "retried automatically" in _page(admin_client)
    _beat(django_capture_on_commit_callbacks)  # within the back-off: not yet
    assert PricingRecomputeJob.objects.count() == 1
    now = datetime.now(UTC)
    for attempt, hours in ((2, 1), (3, 4)):  # back-off: 1 h after the first, 2 h after the second
        with time_machine.travel(now + timedelta(hours=hours, minutes=1), tick=True):
            _beat(django_capture_on_commit_callbacks)
        latest = PricingRecomputeJob.objects.first()
        assert latest.attempt == attempt and latest.status == "failed", latest.attempt
    with time_machine.travel(now + timedelta(hours=30), tick=True):
        _beat(django_capture_on_commit_callbacks)  # three attempts: left failed
        assert PricingRecomputeJob.objects.count() == 3
        page = _page(admin_client)
        assert "failed 3 times" in page and "not retried automatically any more" in page
        restore()
        with django_capture_on_commit_callbacks(execute=True):  # saving an override starts it again
            admin_client.post(reverse("usage_settings:pricing_override_add", kwargs={"ws": "acme"}), {
                "kind": "discount", "provider": "openai", "discount_percent": "10", "effective_from": "2026-01-01",
            })  # fmt: skip
        assert PricingRecomputeJob.objects.first().status == "done"
    seconds = sdxl_seconds(replicate_synced)
    assert sdxl_estimates(replicate_synced) == {k: s * Decimal("0.002") for k, s in seconds.items()}


def test_a_recompute_whose_worker_died_is_restarted_by_its_redelivered_message(
    replicate_synced, edited_table, monkeypatch, django_capture_on_commit_callbacks
):
    edited_table("0.002000")
    restore = _failing_store(monkeypatch, WorkerKilled())
    with pytest.raises(WorkerKilled), django_capture_on_commit_callbacks(execute=True):
        tasks.recompute_prices_if_changed()
    job = PricingRecomputeJob.objects.get()
    assert job.status == "running" and job.price_data == ""  # half done, not priced
    restore()
    tasks.recompute_prices(job.pk, job.sends + 1)  # a copy sent again does not restart a running job…
    job.refresh_from_db()
    assert job.status == "running" and job.claims == 1
    tasks.recompute_prices(job.pk, job.sends)  # nor, while its worker lives, the one that started it…
    job.refresh_from_db()
    assert job.status == "running" and job.claims == 1
    with time_machine.travel(datetime.now(UTC) + pricing_services.HEARTBEAT_STALE + timedelta(minutes=1), tick=False):
        tasks.recompute_prices(job.pk, job.sends)  # …which, delivered again once the worker is lost, does
    job.refresh_from_db()
    assert job.status == "done" and job.done == job.total > 0 and job.claims == 2
    assert job.price_data == prices.price_data_version()
    seconds = sdxl_seconds(replicate_synced)
    assert sdxl_estimates(replicate_synced) == {k: s * Decimal("0.002") for k, s in seconds.items()}
    tasks.recompute_prices(job.pk, job.sends)  # a finished job is left alone
    job.refresh_from_db()
    assert job.claims == 2


def test_a_running_job_whose_worker_died_is_stalled_then_failed_and_retried_and_a_live_one_is_not_restarted(
    admin_client, replicate_synced, edited_table, monkeypatch, django_capture_on_commit_callbacks
):
    edited_table("0.002000")
    restore = _failing_store(monkeypatch, WorkerKilled())
    with pytest.raises(WorkerKilled), django_capture_on_commit_callbacks(execute=True):
        tasks.recompute_prices_if_changed()
    restore()
    job = PricingRecomputeJob.objects.get()
    assert job.status == "running" and job.heartbeat_at is not None
    now = datetime.now(UTC)
    with time_machine.travel(now + timedelta(minutes=10), tick=False):
        _beat(django_capture_on_commit_callbacks)  # silent 10 minutes: still alive
        job.refresh_from_db()
        assert job.status == "running" and "stalled" not in _page(admin_client)
    with time_machine.travel(now + pricing_services.HEARTBEAT_STALE + timedelta(minutes=1), tick=False):
        assert "Recomputing estimates stalled" in _page(admin_client)
        _beat(django_capture_on_commit_callbacks)  # lost: failed, the retry path takes over
        job.refresh_from_db()
        assert job.status == "failed" and job.finished_at is not None and "worker stopped" in job.error
        page = _page(admin_client)
        assert "worker stopped" in page and "retried automatically" in page
    with time_machine.travel(now + timedelta(hours=1, minutes=20), tick=False):
        _beat(django_capture_on_commit_callbacks)
    retry = PricingRecomputeJob.objects.first()
    assert retry.pk != job.pk and retry.attempt == 2 and retry.status == "done"
    seconds = sdxl_seconds(replicate_synced)
    assert sdxl_estimates(replicate_synced) == {k: s * Decimal("0.002") for k, s in seconds.items()}


def test_an_override_saved_while_the_running_job_is_lost_starts_a_new_one(
    admin_client, replicate_synced, monkeypatch, django_capture_on_commit_callbacks
):
    restore = _failing_store(monkeypatch, WorkerKilled())
    with pytest.raises(WorkerKilled), django_capture_on_commit_callbacks(execute=True):
        tasks.recompute_prices_if_changed()
    restore()
    with time_machine.travel(datetime.now(UTC) + pricing_services.HEARTBEAT_STALE + timedelta(minutes=1), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            admin_client.post(reverse("usage_settings:pricing_override_add", kwargs={"ws": "acme"}), {
                "kind": "discount", "provider": "replicate", "discount_percent": "10", "effective_from": "2020-01-01",
            })  # fmt: skip
    old, new = PricingRecomputeJob.objects.order_by("pk")
    assert (old.status, new.status) == ("failed", "done") and not old.rerun


def test_a_job_that_never_started_is_sent_again_and_runs(
    admin_client, replicate_synced, monkeypatch, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as lost:  # the message never arrives
        tasks.recompute_prices_if_changed()
    assert len(lost) == 1
    job = PricingRecomputeJob.objects.get()
    _beat(django_capture_on_commit_callbacks)  # queued a moment ago: left to start
    assert PricingRecomputeJob.objects.get().sends == 1
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=3), tick=True):
        assert "no worker has started it yet" in _page(admin_client)
        with django_capture_on_commit_callbacks(execute=False) as sent_again:
            tasks.recompute_prices_if_changed()
    job.refresh_from_db()
    assert len(sent_again) == 1 and job.sends == 2 and job.status == "queued"
    sent_again[0]()  # the worker takes the message sent again
    job.refresh_from_db()
    assert job.status == "done" and job.claims == 1 and job.price_data == prices.price_data_version()
    lost[0]()  # the first message turns up late: the job is done, nothing runs twice
    job.refresh_from_db()
    assert job.claims == 1

    # In a backlog both copies arrive: the first one starts the job, the other runs nothing.
    PricingRecomputeJob.objects.all().delete()
    with django_capture_on_commit_callbacks(execute=False) as first:
        tasks.recompute_prices_if_changed()
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=3), tick=True):
        with django_capture_on_commit_callbacks(execute=False) as second:
            tasks.recompute_prices_if_changed()
        first[0]()
        second[0]()
    job = PricingRecomputeJob.objects.get()
    assert job.status == "done" and job.claims == 1 and job.sends == 2

    # Work before the job's try (counting its rows) fails the job: it never stays queued.
    with django_capture_on_commit_callbacks(execute=False) as sent:
        admin_client.post(reverse("usage_settings:pricing_override_add", kwargs={"ws": "acme"}), {
            "kind": "discount", "provider": "replicate", "discount_percent": "10", "effective_from": "2026-01-01",
        })  # fmt: skip
    monkeypatch.setattr(pricing_services, "price_data_version", lambda: 1 / 0)
    sent[0]()
    assert PricingRecomputeJob.objects.first().status == "failed"
    assert "ZeroDivisionError" in _page(admin_client)


def test_one_active_recompute_per_workspace_and_a_change_while_it_runs_is_applied_after_it(
    admin_client, replicate_synced, monkeypatch, django_capture_on_commit_callbacks
):
    real = pricing_services.usage_store_chunk
    seen = []

    def store_while_an_admin_saves_an_override(**kwargs):
        if not seen:
            seen.append(1)
            admin_client.post(reverse("usage_settings:pricing_override_add", kwargs={"ws": "acme"}), {
                "kind": "discount", "provider": "replicate", "discount_percent": "50", "effective_from": "2020-01-01",
            })  # fmt: skip
            assert PricingRecomputeJob.objects.count() == 1  # no second pass in parallel
            assert PricingRecomputeJob.objects.get().rerun
        return real(**kwargs)

    monkeypatch.setattr(pricing_services, "usage_store_chunk", store_while_an_admin_saves_an_override)
    _beat(django_capture_on_commit_callbacks)
    first, follow_up = PricingRecomputeJob.objects.order_by("pk")
    assert (first.status, follow_up.status) == ("done", "done")
    seconds = sdxl_seconds(replicate_synced)
    assert sdxl_estimates(replicate_synced) == {
        k: (s * Decimal("0.000975") / 2).quantize(Decimal("0.000000001")) for k, s in seconds.items()
    }
    with pytest.raises(IntegrityError), transaction.atomic():
        PricingRecomputeJob.objects.create(workspace=first.workspace)
        PricingRecomputeJob.objects.create(workspace=first.workspace)


@pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored")  # send_task publishes: that's the point
def test_beat_queues_a_bounded_number_of_workspaces_an_hour_on_the_pricing_queue(
    workspace, other_workspace, replicate_synced, sandbox, settings, django_capture_on_commit_callbacks
):
    from doow.celery import app

    theirs = services.integration_create(
        workspace=other_workspace, provider_slug="replicate", credential={"api_token": fake_replicate.API_TOKEN},
        settings={"base_url": sandbox.url + fake_replicate.PREFIX + "/v1"},
    )  # fmt: skip
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    engine.integration_sync(integration_id=theirs.pk, since=now - timedelta(days=2), until=now, trigger="command")
    settings.DOOW_PRICING_RECOMPUTES_PER_HOUR = 1
    _beat(django_capture_on_commit_callbacks)
    assert [j.workspace_id for j in PricingRecomputeJob.objects.all()] == [workspace.pk]
    _beat(django_capture_on_commit_callbacks)
    assert {j.workspace_id for j in PricingRecomputeJob.objects.all()} == {workspace.pk, other_workspace.pk}
    _beat(django_capture_on_commit_callbacks)
    assert PricingRecomputeJob.objects.count() == 2
    # The recompute lands in the `pricing` queue only, which a worker started without -Q (the
    # demo's) consumes besides `celery`; the sync dispatch and the hourly check stay on `celery`.
    assert {"celery", "pricing"} <= set(app.amqp.queues)
    with app.connection_for_write() as conn:  # the test broker (memory://)
        channel = conn.default_channel
        for queue in app.amqp.queues.values():
            queue(channel).declare()
            channel.queue_purge(queue.name)
        for name in ("usage.tasks.recompute_prices", "usage.tasks.recompute_prices_if_changed"):
            app.send_task(name, connection=conn)
        app.send_task("integrations.tasks.dispatch_due_syncs", connection=conn)
        waiting = {q: channel.queue_declare(queue=q, passive=True).message_count for q in ("celery", "pricing")}
        for queue in app.amqp.queues.values():
            channel.queue_purge(queue.name)
    assert waiting == {"celery": 2, "pricing": 1}  # the hourly check only queues: never behind a recompute


def test_a_job_requested_for_other_data_than_the_worker_has_is_requested_again_after_the_back_off(
    replicate_synced, caplog, django_capture_on_commit_callbacks
):
    """Mixed releases: beat asked for its data, a worker of the older release priced with its
    own. Beat asks again for the same data only after RETRY_BACKOFF (not every hour of a
    deploy), and the worker says so in its log."""
    job = pricing_services.pricing_recompute_request(workspace=replicate_synced.workspace, requested="rules 0; new")
    with caplog.at_level("WARNING"):
        tasks.recompute_prices(job.pk, job.sends)
    job.refresh_from_db()
    assert job.status == "done" and job.price_data == prices.price_data_version()
    assert "requested with price data 'rules 0; new'" in caplog.text
    PricingRecomputeJob.objects.filter(pk=job.pk).update(requested_price_data=prices.price_data_version(),
                                                         price_data="rules 0; old")  # fmt: skip
    _beat(django_capture_on_commit_callbacks)
    assert PricingRecomputeJob.objects.count() == 1
    with time_machine.travel(datetime.now(UTC) + pricing_services.RETRY_BACKOFF + timedelta(minutes=1), tick=False):
        _beat(django_capture_on_commit_callbacks)
    again = PricingRecomputeJob.objects.first()
    assert PricingRecomputeJob.objects.count() == 2 and again.price_data == prices.price_data_version()
    _beat(django_capture_on_commit_callbacks)  # priced with the installed data: nothing more
    assert PricingRecomputeJob.objects.count() == 2


def test_bumping_the_rules_version_recomputes(replicate_synced, monkeypatch, django_capture_on_commit_callbacks):
    _beat(django_capture_on_commit_callbacks)
    assert PricingRecomputeJob.objects.count() == 1
    monkeypatch.setattr(prices, "PRICING_RULES_VERSION", prices.PRICING_RULES_VERSION + 1)
    _forget_prices()
    try:
        assert prices.price_data_version().startswith(f"rules {prices.PRICING_RULES_VERSION};")
        _beat(django_capture_on_commit_callbacks)
        assert PricingRecomputeJob.objects.count() == 2
    finally:
        monkeypatch.undo()
        _forget_prices()


def test_an_older_release_can_still_insert_a_job_during_a_rolling_deploy(workspace):
    """Columns added since default in the database: an insert that names none of them works."""
    table = PricingRecomputeJob._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (workspace_id, status, total, done, written, error, created_at)"
            " VALUES (%s, 'done', 0, 0, 0, '', %s)",
            [workspace.pk, datetime.now(UTC)],
        )
    job = PricingRecomputeJob.objects.get()
    assert (job.price_data, job.requested_price_data, job.attempt, job.sends, job.rerun) == ("", "", 1, 0, False)


def test_the_recompute_command_runs_the_workspaces_active_job_instead_of_a_second_one(
    replicate_synced, edited_table, django_capture_on_commit_callbacks
):
    import io

    from django.core.management import call_command

    with django_capture_on_commit_callbacks(execute=False) as sent:  # queued, not yet taken by a worker
        tasks.recompute_prices_if_changed()
    edited_table("0.002000")
    out = io.StringIO()
    call_command("recompute_estimates", "--workspace", "acme", stdout=out)
    job = PricingRecomputeJob.objects.get()
    assert "acme: " in out.getvalue() and "(done)" in out.getvalue()
    assert job.status == "done" and job.price_data == prices.price_data_version()
    sent[0]()  # the worker's message, late: nothing runs twice
    job.refresh_from_db()
    assert job.claims == 1
    seconds = sdxl_seconds(replicate_synced)
    assert sdxl_estimates(replicate_synced) == {k: s * Decimal("0.002") for k, s in seconds.items()}


def test_staff_see_each_jobs_attempt_and_price_data_in_the_admin(superuser_client, workspace):
    PricingRecomputeJob.objects.create(
        workspace=workspace, status="failed", attempt=2, requested_price_data="rules 1; genai-prices 9.9.9; table abc"
    )
    page = superuser_client.get(reverse("admin:usage_pricingrecomputejob_changelist")).content.decode()
    assert "rules 1; genai-prices 9.9.9; table abc" in page and "Attempt" in page


def test_an_override_saved_as_a_worker_claims_the_queued_job_runs_it_again(
    admin_client, replicate_synced, monkeypatch, django_capture_on_commit_callbacks
):
    """The request read the job queued; the worker's claim commits before the request's update
    (PostgreSQL, read committed): the change is not lost, the job runs again after."""
    add = reverse("usage_settings:pricing_override_add", kwargs={"ws": "acme"})
    override = {"kind": "discount", "provider": "replicate", "discount_percent": "10", "effective_from": "2020-01-01"}
    with django_capture_on_commit_callbacks(execute=False):
        admin_client.post(add, override)
    job = PricingRecomputeJob.objects.get()
    manager = PricingRecomputeJob.objects
    real_filter = manager.filter

    def filter_after_the_claim(*args, **kwargs):
        if kwargs.get("status") == "queued" and "pk" in kwargs:
            real_filter(pk=job.pk).update(status="running", claims=1, heartbeat_at=datetime.now(UTC))
        return real_filter(*args, **kwargs)

    monkeypatch.setattr(manager, "filter", filter_after_the_claim)
    with django_capture_on_commit_callbacks(execute=False):
        admin_client.post(add, {**override, "discount_percent": "20"})
    monkeypatch.undo()
    job.refresh_from_db()
    assert job.status == "running" and job.rerun and PricingRecomputeJob.objects.count() == 1


def test_a_run_claimed_again_before_it_stores_a_week_stores_nothing(
    replicate_synced, monkeypatch, django_capture_on_commit_callbacks
):
    real = pricing_services.pricing_estimate_samples
    stored = []

    def estimate_then_another_run_claims(**kwargs):
        PricingRecomputeJob.objects.update(claims=F("claims") + 1)  # a newer run took the job
        return real(**kwargs)

    monkeypatch.setattr(pricing_services, "pricing_estimate_samples", estimate_then_another_run_claims)
    monkeypatch.setattr(pricing_services, "usage_store_chunk", lambda **kwargs: stored.append(kwargs))
    _beat(django_capture_on_commit_callbacks)
    job = PricingRecomputeJob.objects.get()
    assert stored == [] and job.status == "running" and job.done == 0


def test_a_queued_job_waiting_behind_another_workspaces_recompute_is_not_sent_again(
    replicate_synced, other_workspace, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        tasks.recompute_prices_if_changed()
    job = PricingRecomputeJob.objects.get()
    now = datetime.now(UTC)
    PricingRecomputeJob.objects.create(workspace=other_workspace, status="running", heartbeat_at=now)
    with time_machine.travel(now + timedelta(minutes=10), tick=False):
        with django_capture_on_commit_callbacks(execute=False) as sent:
            tasks.recompute_prices_if_changed()
    job.refresh_from_db()
    assert sent == [] and job.sends == 1  # the other one runs: this one waits its turn
    with time_machine.travel(now + pricing_services.HEARTBEAT_STALE + timedelta(minutes=1), tick=False):
        with django_capture_on_commit_callbacks(execute=False) as sent:
            tasks.recompute_prices_if_changed()
    job.refresh_from_db()
    assert len(sent) == 1 and job.sends == 2  # no recompute alive: its message was lost
