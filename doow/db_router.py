"""Page reads of usage figures from a read replica; everything else from the primary.

With DATABASE_REPLICA_URL set, the settings add a `replica` database alias and this router.
A GET or HEAD request (ReplicaReadsMiddleware marks it, streamed CSV bodies included) reads
the usage tables — raw rows and rollups, the bulk of every page's work — from the replica.
Everything else is read from the primary: sessions, users, workspaces, integrations, jobs and
rules (a page must see what the previous POST just wrote), and every read of a POST, a Celery
task, beat or a management command (the sync engine, the store, imports, re-attribution and
rollup upkeep read what they are about to write). All writes go to the primary.

A replica lags its primary (by well under a second on streaming replication in one region):
a page may show a sync's rows a moment after the sync says it is done. Migrations run on the
primary only; a physical replica follows them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import Any

from django.db.models import Model
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

PRIMARY = "default"
REPLICA = "replica"
# Read-mostly usage figures a page may show a moment late (model labels, lower case).
# The base table and every rollup level the pages read (usage.rollups.LEVELS' models included).
REPLICA_MODELS = frozenset(
    {
        "usage.usagerecord",
        "usage.usagedaily",
        "usage.usagedailynarrow",
        "usage.usagedailyproject",
        "usage.usagedailytotal",
    }
)
SAFE_METHODS = frozenset({"GET", "HEAD"})

_page_reads: ContextVar[bool] = ContextVar("doow_page_reads", default=False)


class ReplicaRouter:
    def db_for_read(self, model: type[Model], **hints: Any) -> str:
        if _page_reads.get() and model._meta.label_lower in REPLICA_MODELS:
            return REPLICA
        return PRIMARY

    def db_for_write(self, model: type, **hints: Any) -> str:
        return PRIMARY

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True  # the replica is a copy of the primary: the same rows, the same ids

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return db == PRIMARY


class ReplicaReadsMiddleware:
    """Marks GET and HEAD requests as page reads for ReplicaRouter (without the router, or
    without a replica, the mark changes nothing). A streamed body is produced after the view
    returns, so each of its pieces is produced under the mark too."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method not in SAFE_METHODS:
            return self.get_response(request)
        token = _page_reads.set(True)
        try:
            response = self.get_response(request)
        finally:
            _page_reads.reset(token)
        if isinstance(response, StreamingHttpResponse) and not response.is_async:
            response.streaming_content = _as_page_reads(response.streaming_content)
        return response


def _as_page_reads(pieces: Iterable[Any]) -> Iterator[Any]:
    iterator = iter(pieces)
    while True:
        token = _page_reads.set(True)  # set and reset around each piece: the server may
        try:  # resume the generator from anywhere
            piece = next(iterator)
        except StopIteration:
            return
        finally:
            _page_reads.reset(token)
        yield piece
