"""The sync engine and the beat dispatcher.

One code path for the Celery task, "Sync now" and `manage.py sync`: a lease lock per
integration; the window [watermark - restatement, now - delay) split into chunks; each chunk
fetched, stored in one transaction with the watermark advance (rows the chunk's complete
answer no longer holds are removed in the same transaction); typed provider errors turned
into events, a status and the time of the next try.

After a connector upgrade that changed its keys (Provider.keys_version above the version the
integration's rows were written with), a sync without an explicit range also re-reads the
history the integration holds, after its regular window, through the same chunks (see
`_reread_plan`).
"""

from __future__ import annotations

import bisect
import json
import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings as django_settings
from django.db import connections, transaction
from django.db.models import F, Q
from django.db.models.expressions import RawSQL
from django.utils import timezone

from doow.jobs import task_named
from integrations.events import integration_record_error, integration_record_event
from integrations.http import RETRY_AFTER_CEILING, HttpClient
from integrations.models import MAX_BACKFILL_DAYS, Integration, IntegrationEvent, SyncNotAllowed, SyncRun
from integrations.providers.base import (
    SKIPPED_STATE,
    Answered,
    Provider,
    ProviderError,
    UsageSample,
    Window,
    align_down,
)
from usage.models import UsageRecord
from usage.pricing.estimate import estimate_answers, pricing_estimate_samples
from usage.store import usage_prepare_samples, usage_store_chunk

logger = logging.getLogger(__name__)

__all__ = ["SyncBusy", "SyncNotAllowed", "integration_dispatch_due", "integration_sync", "sync_window"]

# Credential rejections in a row after which scheduled syncs stop until someone acts. Only
# rejections count: any other outcome in between (a success, a 429, a 5xx, a timeout) ends the
# streak, since a provider that answers something else is not saying the key is dead.
PAUSE_AFTER_CREDENTIAL_FAILURES = 3
# Consecutive transient failures (429, 5xx, timeouts) before the integration shows as needing attention.
TRANSIENT_FAILURES_BEFORE_ERROR = 3
# The dispatcher pushes next_sync_at this far ahead when it enqueues, so a queued sync is
# not enqueued again every minute; the sync itself sets the real next time when it ends.
DISPATCH_CLAIM = timedelta(minutes=15)
DISPATCH_EXPIRES_SECONDS = 600
# The most integrations one tick claims (the rest wait for the next tick): 10,000 due at once.
# Publishing that many takes seconds on an idle machine (docs/performance.md); a tick that
# outlasts beat's minute is still correct, the next one finds them claimed.
DISPATCH_BATCH = 10_000
# Publishing failures in a row after which the broker is taken to be down and the rest of
# the batch is released to the next tick instead of each waiting out the broker's timeout.
DISPATCH_GIVE_UP_AFTER = 5
MAX_BACKOFF = RETRY_AFTER_CEILING  # the longest the engine ever waits before trying again
# The furthest back the history re-read after a connector upgrade goes: the longest backfill
# an integration may ask for. Older rows stay as they were stored.
REREAD_HISTORY = timedelta(days=MAX_BACKFILL_DAYS)
DAY = timedelta(days=1)
ABANDONED_MESSAGE = (
    "The worker running this sync stopped before it finished; the next sync resumed from the stored watermark."
)


class SyncBusy(Exception):
    """Another worker holds this integration's sync lock."""


class SyncCrashed(ProviderError):
    """A bug or unforeseen failure inside the sync; recorded as a `sync` event without details."""

    category = "sync"
    default_hint = "Nothing already stored was changed. If this repeats, report it to your operator."


class SyncLockLost(Exception):
    """The lease expired mid-sync and another worker took over; stop without writing more."""


# ------------------------------------------------------------------ scheduling
def integration_dispatch_due(*, now: datetime | None = None) -> list[int]:
    """Enqueue every due integration by id (with `expires`); returns the ids enqueued.

    Due means: its next scheduled sync has come, or its last sync was stranded by a worker
    that died mid-sync and whose lease has lapsed (`Integration.objects.stranded`). The
    latter resumes from its stored watermark within the lease plus one dispatcher tick,
    whatever its next_sync_at says.

    One tick costs the same few queries however many integrations are due (up to
    DISPATCH_BATCH): the due ones are claimed in one batched statement (`_claim_due`), which
    also marks the runs of dead workers abandoned, so two dispatchers (or a dispatcher and a
    slow queue) never enqueue one integration twice. The messages then go out through one
    broker connection. One failure to enqueue never stops the others; a broker that keeps
    failing releases the rest of the batch to the next tick in one UPDATE.
    """
    sync_integration = task_named("integrations.tasks.sync_integration")
    now = now or timezone.now()
    claimed_until = now + DISPATCH_CLAIM
    claimed = _claim_due(now, claimed_until)
    if not claimed:
        return []
    enqueued: list[int] = []
    released: list[int] = []
    failures_in_a_row = 0
    with sync_integration.app.producer_or_acquire() as producer:
        for pk in claimed:
            if failures_in_a_row >= DISPATCH_GIVE_UP_AFTER:
                released.append(pk)  # the broker is down: don't wait out its timeout 10,000 times
                continue
            try:
                sync_integration.apply_async(
                    args=(pk,),
                    kwargs={"trigger": SyncRun.Trigger.SCHEDULE},
                    expires=DISPATCH_EXPIRES_SECONDS,
                    producer=producer,
                )
            except Exception:  # the broker may hiccup; the claim is released below
                logger.exception("could not enqueue sync of integration %s", pk)
                failures_in_a_row += 1
                released.append(pk)
                continue
            failures_in_a_row = 0
            enqueued.append(pk)
    if released:
        # Due again at the next tick (a stranded one too: its lapsed lease is gone now). Only
        # a claim nobody has touched since is released.
        Integration.objects.filter(pk__in=_ids_param(released), next_sync_at=claimed_until).update(next_sync_at=now)
    return enqueued


def _claim_due(now: datetime, claimed_until: datetime) -> list[int]:
    """Claim up to DISPATCH_BATCH due integrations in one statement; returns their ids.

    A claim pushes next_sync_at to `claimed_until` and breaks a lapsed lease; the runs a dead
    worker left "running" are marked abandoned in the same transaction, so the next tick no
    longer sees the integration as stranded while its re-enqueued sync waits in the queue.

    PostgreSQL: the due rows are read from the statement's snapshot, then locked with
    `FOR UPDATE … SKIP LOCKED` only if they still hold the values that were read
    (compare-and-set): a row another dispatcher is claiming is skipped, not waited for, and
    one it claimed between our snapshot and our lock fails the comparison (the lock re-reads
    the newest row). SQLite has one writer, so one `UPDATE … WHERE id IN (due) RETURNING`
    is atomic by itself.
    """
    due = (
        Integration.objects.due(now)
        .order_by("next_sync_at", "pk")
        .values("pk", "next_sync_at", "lock_token", "lock_expires_at")[:DISPATCH_BATCH]
    )
    connection = connections[Integration.objects.db]
    due_sql, due_params = due.query.get_compiler(connection=connection).as_sql()
    integration_table = connection.ops.quote_name(Integration._meta.db_table)
    run_table = connection.ops.quote_name(SyncRun._meta.db_table)
    # Raw parameters are stored as given: adapt them the way the ORM would (SQLite keeps text).
    claim = [connection.ops.adapt_datetimefield_value(claimed_until), ""]
    abandon = [
        SyncRun.Status.ABANDONED,
        connection.ops.adapt_datetimefield_value(now),
        ABANDONED_MESSAGE,
        SyncRun.Status.RUNNING,
    ]
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"""
                WITH due AS MATERIALIZED ({due_sql}),
                claimable AS (
                    SELECT i.id FROM {integration_table} i JOIN due ON due.pk = i.id
                    WHERE i.next_sync_at IS NOT DISTINCT FROM due.next_sync_at
                      AND i.lock_token = due.lock_token
                      AND i.lock_expires_at IS NOT DISTINCT FROM due.lock_expires_at
                    FOR UPDATE OF i SKIP LOCKED
                ),
                claimed AS (
                    UPDATE {integration_table} i SET next_sync_at = %s, lock_token = %s, lock_expires_at = NULL
                    FROM claimable WHERE i.id = claimable.id
                    RETURNING i.id
                ),
                abandoned AS (
                    UPDATE {run_table} r SET status = %s, finished_at = %s, error = %s
                    FROM claimed WHERE r.integration_id = claimed.id AND r.status = %s
                )
                SELECT id FROM claimed
                """,
                [*due_params, *claim, *abandon],
            )
            return sorted(row[0] for row in cursor.fetchall())
        cursor.execute(
            f"UPDATE {integration_table} SET next_sync_at = %s, lock_token = %s, lock_expires_at = NULL "
            f"WHERE id IN (SELECT pk FROM ({due_sql})) RETURNING id",
            [*claim, *due_params],
        )
        ids = sorted(row[0] for row in cursor.fetchall())
        if ids:
            # Nobody holds these leases now (we matched them free or lapsed, and the write lock
            # is ours until commit): any run still "running" belongs to a dead worker.
            cursor.execute(
                f"UPDATE {run_table} SET status = %s, finished_at = %s, error = %s "
                f"WHERE status = %s AND integration_id IN (SELECT value FROM json_each(%s))",
                [*abandon, json.dumps(ids)],
            )
        return ids


def _abandon_runs(pk: int, now: datetime) -> int:
    return SyncRun.objects.filter(integration_id=pk, status=SyncRun.Status.RUNNING).update(
        status=SyncRun.Status.ABANDONED, finished_at=now, error=ABANDONED_MESSAGE
    )


def _ids_param(ids: list[int]) -> RawSQL:
    """`pk__in` with one parameter however many ids (SQLite caps bound variables)."""
    if connections[Integration.objects.db].vendor == "postgresql":
        return RawSQL("SELECT unnest(%s::bigint[])", [ids])
    return RawSQL("SELECT value FROM json_each(%s)", [json.dumps(ids)])


# ------------------------------------------------------------------ the sync engine
def sync_window(
    *,
    integration: Integration,
    provider: Provider,
    now: datetime,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Window:
    """[watermark - restatement, now - delay), chunk-aligned at the start, bucket-aligned at the end."""
    latest = align_down(now - provider.reporting_delay, provider.bucket)
    end = min(until, latest) if until else latest
    if since is not None:
        start = since
    elif integration.data_through is not None:
        start = integration.data_through - provider.restatement_window
    else:
        start = now - timedelta(days=integration.backfill_days)
    start = min(align_down(start, provider.chunk), end)
    return Window(start, end)


@dataclass(frozen=True)
class Reread:
    """The history re-read after a connector upgrade that one sync carries out."""

    version: int  # the provider's keys version the re-read brings the stored rows to
    began: datetime  # the first bucket of the whole re-read (an earlier sync may have begun it)
    resume: datetime  # where this sync takes it up: what an earlier, stopped sync stored is not read again
    regular_start: datetime  # the start of the sync's regular window: the re-read is the chunks before it
    kept_before: datetime | None  # rows before this are older than a re-read goes: kept as they are


def _reread_plan(integration: Integration, provider: Provider, regular: Window, now: datetime) -> Reread | None:
    """The history re-read this sync must do besides its regular window, or None.

    When the connector's keys changed (`Provider.keys_version` above the version the
    integration's rows were written with, `Integration.keys_version`), the rows a sync wrote
    from the earliest stored bucket on (at most REREAD_HISTORY back) are read again in the
    usual chunks: each chunk's answers replace its old-key rows, as any re-read does, so
    nothing is counted twice. Each stored chunk records its progress (`keys_reread`), so a
    sync that fails or a worker that dies mid-way is resumed where it stopped; only a sync
    that ends successfully stores the new version. An integration holding no synced rows
    has nothing to re-read: it takes the current version at once.
    """
    target = provider.keys_version
    if (integration.keys_version or 1) >= target:
        return None
    first = (
        UsageRecord.objects.filter(integration=integration)
        # Imported rows (and their estimates) are never re-read nor removed.
        .exclude(Q(stream="") | Q(provenance__in=("imported", "estimated")))
        .order_by("bucket_start")
        .values_list("bucket_start", flat=True)
        .first()
    )
    if first is None:
        Integration.objects.filter(pk=integration.pk).update(keys_version=target, keys_reread={})
        integration.keys_version, integration.keys_reread = target, {}
        return None
    floor = align_down(now - REREAD_HISTORY, provider.chunk)
    start = min(align_down(max(first, floor), provider.chunk), regular.start)
    began, resume = start, start
    progress = integration.keys_reread or {}
    if progress.get("version") == target and progress.get("from") and progress.get("through"):
        began = min(start, datetime.fromisoformat(progress["from"]))
        resume = min(max(start, datetime.fromisoformat(progress["through"])), regular.start)
    return Reread(target, began, resume, regular.start, floor if first < floor else None)


def _reread_answers(answers: list[Answered], samples: list[UsageSample]) -> list[Answered]:
    """A re-read chunk's answers, less the UTC days in which their stream returned nothing.

    A day the provider no longer serves (past its retention, an expired export partition) may
    come back empty yet complete: its stored rows were read when the provider still served
    them, so they stay as they are instead of being removed. A stream that returned rows for a
    day replaces that day's old-key rows as usual.
    """
    returned = {(sample.stream, align_down(sample.bucket_start, DAY)) for sample in samples}
    kept: list[Answered] = []
    for answer in answers:
        start, end = answer.window.start, answer.window.end
        served: list[Window] = []
        while start < end:
            stop = min(align_down(start, DAY) + DAY, end)
            if (answer.stream, align_down(start, DAY)) in returned:
                if served and served[-1].end == start:
                    start = served.pop().start  # one answer for consecutive days
                served.append(Window(start, stop))
            start = stop
        kept += [Answered(answer.stream, window, answer.scope) for window in served]
    return kept


def _spans(window: Window, provider: Provider) -> list[tuple[Window, list[Window]]]:
    """The window cut into fetch spans of at most `provider.fetch_span` (and of the operator's
    DOOW_MAX_FETCH_SPAN_DAYS; rounded up to whole chunks, never less than one), each with the
    storage chunks it holds."""
    chunk = provider.chunk
    longest = min(provider.fetch_span, timedelta(days=django_settings.DOOW_MAX_FETCH_SPAN_DAYS))
    span = max(chunk, chunk * math.ceil(longest / chunk))
    spans: list[tuple[Window, list[Window]]] = []
    chunks = _chunks(window, chunk)
    while chunks:
        first = chunks[0].start
        taken = [c for c in chunks if c.end <= first + span] or chunks[:1]
        chunks = chunks[len(taken) :]
        spans.append((Window(first, taken[-1].end), taken))
    return spans


def _by_chunk(samples: list[UsageSample], chunks: list[Window]) -> list[tuple[Window, list[UsageSample]]]:
    """Each chunk with the samples whose bucket starts in it (a bucket before the first chunk
    goes to the first one, past the last one to the last: a fetch's samples are all stored)."""
    starts = [c.start for c in chunks]
    parts: list[list[UsageSample]] = [[] for _ in chunks]
    for sample in samples:
        parts[max(0, bisect.bisect_right(starts, sample.bucket_start) - 1)].append(sample)
    return list(zip(chunks, parts, strict=True))


def _chunks(window: Window, step: timedelta) -> list[Window]:
    chunks: list[Window] = []
    start = window.start
    while start < window.end:
        end = min(align_down(start, step) + step, window.end)
        chunks.append(Window(start, end))
        start = end
    return chunks


def _acquire_lock(pk: int, token: str, now: datetime) -> bool:
    ttl = timedelta(seconds=django_settings.DOOW_SYNC_LOCK_SECONDS)
    # One conditional UPDATE: atomic on PostgreSQL (row lock + re-check) and on SQLite (one writer).
    return (
        Integration.objects.filter(pk=pk)
        .filter(Q(lock_expires_at__isnull=True) | Q(lock_expires_at__lt=now))
        .update(lock_token=token, lock_expires_at=now + ttl)
        == 1
    )


def _renew_lock(pk: int, token: str) -> None:
    ttl = timedelta(seconds=django_settings.DOOW_SYNC_LOCK_SECONDS)
    if not Integration.objects.filter(pk=pk, lock_token=token).update(lock_expires_at=timezone.now() + ttl):
        raise SyncLockLost(f"Lost the sync lock of integration {pk}")


def _lease_heartbeat(pk: int, token: str) -> Callable[[], None]:
    """Renews the lease between a long fetch's calls (a span is up to a month of pages), at
    most every third of the lease, so a live sync never looks stranded to the dispatcher."""
    every = django_settings.DOOW_SYNC_LOCK_SECONDS / 3
    last = time.monotonic()

    def beat() -> None:
        nonlocal last
        if time.monotonic() - last >= every:
            _renew_lock(pk, token)
            last = time.monotonic()

    return beat


def _release_lock(pk: int, token: str) -> None:
    Integration.objects.filter(pk=pk, lock_token=token).update(lock_token="", lock_expires_at=None)


def integration_sync(
    *,
    integration_id: int,
    since: datetime | None = None,
    until: datetime | None = None,
    trigger: str = SyncRun.Trigger.SCHEDULE,
) -> SyncRun:
    """Run one sync now, in this process. Raises SyncBusy / SyncNotAllowed; provider failures
    do not raise: they end the run as failed, with an event, and the returned run says why."""
    integration = Integration.objects.select_related("workspace").get(pk=integration_id)
    integration.check_can_sync()
    token = uuid.uuid4().hex
    if not _acquire_lock(integration.pk, token, timezone.now()):
        raise SyncBusy(f"Integration {integration.pk} is already being synced.")
    try:
        _abandon_runs(integration.pk, timezone.now())
        run = SyncRun.objects.create(integration=integration, trigger=trigger)
        return _sync(integration, run, token, since=since, until=until)
    finally:
        _release_lock(integration.pk, token)


def _sync(
    integration: Integration, run: SyncRun, token: str, *, since: datetime | None, until: datetime | None
) -> SyncRun:
    provider = integration.provider_obj
    now = timezone.now()
    window = sync_window(integration=integration, provider=provider, now=now, since=since, until=until)
    spans = _spans(window, provider)
    # An explicit range (`sync --since`) is read as asked; the next regular sync re-reads.
    reread = _reread_plan(integration, provider, window, now) if since is None and until is None else None
    if reread is not None and reread.resume < window.start:
        # The regular window first (fresh usage is not held up by a long re-read), then the
        # history, oldest first, in the same spans and chunks.
        spans += _spans(Window(reread.resume, window.start), provider)
        window = Window(reread.resume, window.end)
    SyncRun.objects.filter(pk=run.pk).update(
        window_start=window.start, window_end=window.end, chunks_total=sum(len(chunks) for _, chunks in spans)
    )
    http: HttpClient | None = None
    rows = 0
    try:
        credential = integration.get_credential()
        http = provider.http_client(credential)
        http.on_call = _lease_heartbeat(integration.pk, token)
        for span, chunks in spans:
            # One fetch reads the whole span (a provider's pages and windows are used in full:
            # a 30-day backfill costs the calls the provider needs, not one set per day); its
            # samples are then stored chunk by chunk, each with the watermark, as before.
            state = dict(integration.provider_state or {})
            skipped_before = dict(state.get(SKIPPED_STATE) or {})
            answered: list[Answered] = []
            samples = list(
                provider.fetch(credential, integration.settings, span, http=http, state=state, answered=answered)
            )
            # Only a fetch that ended without an error gets here; its answers never reach
            # outside the chunk being stored.
            for index, (chunk, chunk_samples) in enumerate(_by_chunk(samples, chunks)):
                answers = [inside for answer in answered if (inside := answer.within(chunk)) is not None]
                if reread is not None and chunk.start < reread.regular_start:
                    answers = _reread_answers(answers, chunk_samples)
                # Everything slow happens before the transaction: the provider's answers, and the
                # rows attributed and compiled. The transaction (on SQLite, the one write lock that
                # pages, beat and other workers wait for) only executes the prepared statements.
                # The list-price estimate of the chunk's usage is stored with it, and restated with it.
                chunk_samples = [
                    *chunk_samples,
                    *pricing_estimate_samples(integration=integration, samples=chunk_samples),
                ]
                answers += estimate_answers(answers)
                prepared = usage_prepare_samples(integration=integration, samples=chunk_samples)
                with transaction.atomic():
                    stored = usage_store_chunk(integration=integration, prepared=prepared, answered=answers)
                    written = stored.written
                    _advance_watermark(integration, chunk)
                    if reread is not None and chunk.start < reread.regular_start:
                        _record_reread(integration, reread, chunk)
                    # The connector's memory describes the whole span (a scrape measures now):
                    # it is kept with the span's last chunk.
                    if index == len(chunks) - 1 and state != integration.provider_state:
                        Integration.objects.filter(pk=integration.pk).update(provider_state=state)
                        integration.provider_state = state
                    SyncRun.objects.filter(pk=run.pk).update(
                        chunks_done=F("chunks_done") + 1,
                        rows_written=F("rows_written") + written,
                        rows_removed=F("rows_removed") + len(stored.removed),
                        provider_calls=http.calls,
                    )
                rows += written
                _renew_lock(integration.pk, token)
            _report_skipped(integration, run, skipped_before, state.get(SKIPPED_STATE) or {})
    except ProviderError as error:
        return _sync_failed(integration, run, error, http=http, window=window)
    except SyncLockLost:
        raise
    except Exception as exc:  # a bug must not stop the batch or leak details
        logger.exception("sync of integration %s failed unexpectedly", integration.pk)
        crash = SyncCrashed(f"Unexpected error during sync ({type(exc).__name__}); the details are in the worker log.")
        return _sync_failed(integration, run, crash, http=http, window=window)

    finished = timezone.now()
    SyncRun.objects.filter(pk=run.pk).update(
        status=SyncRun.Status.SUCCESS, finished_at=finished, provider_calls=http.calls
    )
    if reread is not None:
        _reread_done(integration, provider, run, reread, window)
    Integration.objects.filter(pk=integration.pk).update(
        status=Integration.Status.ACTIVE,
        last_sync_at=finished,
        last_success_at=finished,
        next_sync_at=finished + integration.sync_interval,
        consecutive_failures=0,
        consecutive_credential_failures=0,
        last_error_category="",
        last_error_message="",
    )
    if rows == 0:
        delay_minutes = int(provider.reporting_delay.total_seconds() // 60)
        _record_sync_info(
            integration,
            run,
            f"The sync succeeded but {provider.name} reported no usage between "
            f"{window.start:%Y-%m-%d %H:%M} and {window.end:%Y-%m-%d %H:%M} UTC.",
            "If you expected usage here: check that Test connection shows the account that owns it, "
            f"and that the usage is older than {provider.name}'s reporting delay (about {delay_minutes} minutes).",
        )
    run.refresh_from_db()
    return run


def _record_sync_info(integration: Integration, run: SyncRun, message: str, hint: str) -> None:
    integration_record_event(
        integration=integration,
        sync_run=run,
        level=IntegrationEvent.Level.INFO,
        category=IntegrationEvent.Category.SYNC,
        message=message,
        hint=hint,
    )


def _record_reread(integration: Integration, reread: Reread, chunk: Window) -> None:
    """The re-read has stored everything before `chunk.end` (inside the chunk's transaction)."""
    progress = {"version": reread.version, "from": reread.began.isoformat(), "through": chunk.end.isoformat()}
    Integration.objects.filter(pk=integration.pk).update(keys_reread=progress)
    integration.keys_reread = progress


def _reread_done(integration: Integration, provider: Provider, run: SyncRun, reread: Reread, window: Window) -> None:
    """The whole history was read again: the rows now carry the connector's current keys."""
    Integration.objects.filter(pk=integration.pk).update(keys_version=reread.version, keys_reread={})
    integration.keys_version, integration.keys_reread = reread.version, {}
    kept = "Days the provider no longer serves (past its retention) keep the rows stored before."
    if reread.kept_before is not None:
        kept = (
            f"Usage before {reread.kept_before:%Y-%m-%d} is older than a re-read goes back ({MAX_BACKFILL_DAYS} days) "
            f"and stays as it was stored; so do days the provider no longer serves."
        )
    _record_sync_info(
        integration,
        run,
        f"History re-read after a connector upgrade: {reread.began:%Y-%m-%d %H:%M} to "
        f"{window.end:%Y-%m-%d %H:%M} UTC was read again from {provider.name} and stored with the "
        f"connector's new keys; the old-key rows of each re-read window were replaced, not added to.",
        f"Nothing to do. {kept} `python manage.py sync ID --since YYYY-MM-DD` re-reads a range by hand.",
    )


def _report_skipped(integration: Integration, run: SyncRun, before: dict[str, str], after: dict[str, str]) -> None:
    """One warning per part of the usage the credential may not read (providers.base
    SKIPPED_STATE), when it is first skipped: the rest of the sync succeeded and was stored."""
    for stream, message in after.items():
        if before.get(stream) == message:
            continue
        integration_record_event(
            integration=integration,
            sync_run=run,
            level=IntegrationEvent.Level.WARNING,
            category=IntegrationEvent.Category.SCOPE,
            message=str(message),
            hint=(
                "The rest of the usage was read and stored. Give the key access to this part too "
                "(the provider's docs page says which permission), or ignore this if it is not used."
            ),
        )


def _advance_watermark(integration: Integration, chunk: Window) -> None:
    """Move data_through to the chunk's end when the chunk continues the stored range."""
    current = Integration.objects.filter(pk=integration.pk).values_list("data_through", flat=True).get()
    if current is None or (chunk.start <= current < chunk.end):
        Integration.objects.filter(pk=integration.pk).update(data_through=chunk.end)
        integration.data_through = chunk.end


def _backoff(failures: int, interval: timedelta) -> timedelta:
    return min(MAX_BACKOFF, max(timedelta(minutes=1), timedelta(minutes=2 ** min(failures, 10))), interval * 6)


def _retry_after(error: ProviderError) -> timedelta | None:
    """The provider's own wait, when it gave a usable one, never beyond MAX_BACKOFF.

    The seam already bounds Retry-After, but a connector may build RateLimited from another
    header (a reset time, milliseconds): whatever it holds must not crash the failure handler
    (timedelta(seconds=inf) raises) or push the next sync out of sight.
    """
    seconds = getattr(error, "retry_after", None)
    if not isinstance(seconds, int | float) or not math.isfinite(seconds) or seconds <= 0:
        return None
    return timedelta(seconds=min(float(seconds), MAX_BACKOFF.total_seconds()))


def _sync_failed(
    integration: Integration, run: SyncRun, error: ProviderError, *, http: HttpClient | None, window: Window
) -> SyncRun:
    now = timezone.now()
    event = integration_record_error(integration, error, sync_run=run)
    SyncRun.objects.filter(pk=run.pk).update(
        status=SyncRun.Status.FAILED,
        finished_at=now,
        error_category=error.category,
        error=event.message,
        provider_calls=http.calls if http else 0,
    )
    failures = integration.consecutive_failures + 1
    credential_failures = integration.consecutive_credential_failures + 1 if error.category == "credential" else 0
    if error.category == "rate_limit":
        wait = _retry_after(error) or _backoff(failures, integration.sync_interval)
        next_sync: datetime | None = now + max(wait, timedelta(minutes=1))
    elif error.permanent:
        next_sync = now + integration.sync_interval
    else:
        next_sync = now + _backoff(failures, integration.sync_interval)
    # Throttling and outages fix themselves: only after several in a row does the admin need to look.
    transient = not error.permanent and error.category != "sync"
    status = (
        Integration.Status.ACTIVE
        if transient and failures < TRANSIENT_FAILURES_BEFORE_ERROR
        else Integration.Status.ERROR
    )
    if credential_failures >= PAUSE_AFTER_CREDENTIAL_FAILURES:
        status = Integration.Status.PAUSED
        next_sync = None
    Integration.objects.filter(pk=integration.pk).update(
        status=status,
        last_sync_at=now,
        consecutive_failures=failures,
        consecutive_credential_failures=credential_failures,
        last_error_category=error.category,
        last_error_message=event.message,
        next_sync_at=next_sync,
    )
    if status == Integration.Status.PAUSED:
        integration_record_event(
            integration=integration,
            sync_run=run,
            level=IntegrationEvent.Level.ERROR,
            category=IntegrationEvent.Category.CREDENTIAL,
            message=f"Paused after {credential_failures} syncs in a row were refused with a rejected credential.",
            hint="Rotate the credential with a valid key; the integration resumes when the new key verifies.",
        )
    run.refresh_from_db()
    return run
