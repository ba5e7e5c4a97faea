"""The fake Replicate API: documented shapes, cursor pagination with full `next` URLs on the
sandbox's own host, time filters, statuses that change with the clock, auth and errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from sandbox import replicate as fake

DAY = datetime(2025, 3, 10, tzinfo=UTC)
ACCOUNT = "/replicate/v1/account"
PREDICTIONS = "/replicate/v1/predictions"
WINDOW = {"created_after": "2025-03-10T00:00:00Z", "created_before": "2025-03-12T00:00:00Z"}


@pytest.fixture(autouse=True)
def real_clock():
    fake.set_clock(None)
    yield
    fake.set_clock(None)


def get(url: str, params: Any = None, token: str | None = fake.API_TOKEN, scheme: str = "Bearer") -> requests.Response:
    headers = {"Authorization": f"{scheme} {token}"} if token else {}
    return requests.get(url, params=params, headers=headers, timeout=5)


def walk(sandbox, params: dict[str, str]) -> list[dict[str, Any]]:
    pages, url, query = [], sandbox.url + PREDICTIONS, params
    while url:
        body = get(url, query).json()
        pages.append(body)
        url, query = body["next"], None
    return pages


def test_account(sandbox) -> None:
    response = get(sandbox.url + ACCOUNT)
    assert response.status_code == 200 and response.json() == fake.ACCOUNT
    assert response.headers["cf-ray"].endswith("-SJC")
    assert get(sandbox.url + ACCOUNT, scheme="Token").status_code == 200  # the legacy scheme works too


@pytest.mark.parametrize("token", [None, fake.REVOKED_TOKEN, "r8_nonsense"])
def test_unauthenticated_is_a_problem_json_401(sandbox, token) -> None:
    response = get(sandbox.url + PREDICTIONS, token=token)
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json() == {
        "title": "Unauthenticated",
        "detail": "You did not pass a valid authentication token",
        "status": 401,
    }


def test_forbidden_token_reads_the_account_but_not_predictions(sandbox) -> None:
    assert get(sandbox.url + ACCOUNT, token=fake.FORBIDDEN_TOKEN).status_code == 200
    response = get(sandbox.url + PREDICTIONS, token=fake.FORBIDDEN_TOKEN)
    assert response.status_code == 403 and response.json() == fake.error_body(403)


def test_page_envelope_and_prediction_shape(sandbox) -> None:
    body = get(sandbox.url + PREDICTIONS, WINDOW).json()
    assert set(body) == {"next", "previous", "results"} and body["previous"] is None
    assert len(body["results"]) == fake.PAGE_SIZE
    created = [r["created_at"] for r in body["results"]]
    assert created == sorted(created, reverse=True), "newest first"
    for r in body["results"]:
        assert {"id", "model", "version", "source", "status", "created_at", "metrics", "urls", "data_removed"} <= set(r)
        assert r["status"] in ("succeeded", "failed", "canceled") and r["data_removed"] is True
        assert r["input"] == {} and r["output"] is None  # inputs and outputs are gone after an hour
        assert r["created_at"].endswith("Z") and len(r["created_at"]) == 27
        assert r["urls"]["get"] == f"{sandbox.url}/replicate/v1/predictions/{r['id']}"
        if r["started_at"] is not None:
            assert isinstance(r["metrics"]["predict_time"], float)
        else:  # canceled before it ran
            assert r["status"] == "canceled" and r["metrics"] == {}
    assert any("deployment" in r for r in body["results"])


def test_next_is_a_full_url_on_the_requested_host_keeping_the_filters(sandbox) -> None:
    body = get(sandbox.url + PREDICTIONS, WINDOW).json()
    parts = urlsplit(body["next"])
    assert f"{parts.scheme}://{parts.netloc}" == sandbox.url and parts.path == PREDICTIONS
    query = parse_qs(parts.query)
    assert query["created_after"] == [WINDOW["created_after"]] and query["created_before"] == [WINDOW["created_before"]]
    assert query["cursor"][0]
    # A different Host header (e.g. through localhost) gives links on that host.
    port = urlsplit(sandbox.url).port
    via_localhost = get(f"http://localhost:{port}{PREDICTIONS}", WINDOW).json()
    assert via_localhost["next"].startswith(f"http://localhost:{port}{PREDICTIONS}?")


def test_walking_next_returns_every_prediction_once(sandbox) -> None:
    pages = walk(sandbox, WINDOW)
    ids = [r["id"] for p in pages for r in p["results"]]
    expected = fake.truth_predictions(DAY, DAY + timedelta(days=2))
    assert ids == [p.id for p in expected] and len(set(ids)) == len(ids)
    assert len(pages) == -(-len(expected) // fake.PAGE_SIZE) and pages[-1]["next"] is None
    assert all(p["previous"] for p in pages[1:])


def test_previous_leads_back_to_the_page_before(sandbox) -> None:
    first = get(sandbox.url + PREDICTIONS, WINDOW).json()
    second = get(first["next"]).json()
    back = get(second["previous"]).json()
    assert [r["id"] for r in back["results"]] == [r["id"] for r in first["results"]]
    assert back["previous"] is None and back["next"]


def test_created_after_is_inclusive_and_created_before_exclusive(sandbox) -> None:
    midnight = "2025-03-11T00:00:00Z"
    before = walk(sandbox, {"created_after": WINDOW["created_after"], "created_before": midnight})
    after = walk(sandbox, {"created_after": midnight, "created_before": WINDOW["created_before"]})
    at_boundary = [r for p in after for r in p["results"] if r["created_at"] == "2025-03-11T00:00:00.000000Z"]
    assert at_boundary, "the day's first microsecond has a prediction"
    assert all(r["created_at"] < "2025-03-11" for p in before for r in p["results"])
    total = sum(len(p["results"]) for p in before + after)
    assert total == len(fake.truth_predictions(DAY, DAY + timedelta(days=2)))


def test_status_follows_the_clock(sandbox) -> None:
    nightly = "2025-03-10T23:50:00.000000Z"
    params = {"created_after": nightly, "created_before": "2025-03-11T00:00:00Z"}

    def job(now: datetime) -> dict[str, Any]:
        with fake.clock(now):
            results = get(sandbox.url + PREDICTIONS, params).json()["results"]
        return next(r for r in results if r["created_at"] == nightly)

    starting = job(datetime(2025, 3, 10, 23, 50, 0, 10, tzinfo=UTC))
    assert (starting["status"], starting["started_at"], starting["metrics"]) == ("starting", None, {})
    running = job(datetime(2025, 3, 11, 0, 15, tzinfo=UTC))
    assert running["status"] == "processing" and running["started_at"] and running["completed_at"] is None
    assert running["metrics"] == {} and running["data_removed"] is False and running["input"]
    done = job(datetime(2025, 3, 11, 1, 0, tzinfo=UTC))
    assert done["status"] == "succeeded" and done["completed_at"] and done["data_removed"] is False
    assert 35 * 60 <= done["metrics"]["predict_time"] <= 45 * 60
    assert job(datetime(2025, 3, 11, 3, tzinfo=UTC))["data_removed"] is True


def test_nothing_is_listed_before_it_is_created(sandbox) -> None:
    with fake.clock(datetime(2025, 3, 10, 12, tzinfo=UTC)):
        body = get(sandbox.url + PREDICTIONS, {"created_after": "2025-03-10T11:00:00Z"}).json()
        assert all(r["created_at"] < "2025-03-10T12:00:00.000001Z" for r in body["results"])
        assert body["results"] and body["next"] is None
    now = datetime.now(UTC)
    assert (
        get(sandbox.url + PREDICTIONS, {"created_after": (now + timedelta(minutes=1)).isoformat()}).json()["results"]
        == []
    )


def test_without_filters_the_newest_predictions_come_first(sandbox) -> None:
    before = datetime.now(UTC)
    body = get(sandbox.url + PREDICTIONS).json()
    after = datetime.now(UTC)
    assert len(body["results"]) == fake.PAGE_SIZE and body["next"]
    newest = datetime.fromisoformat(body["results"][0]["created_at"])
    # The newest prediction that existed when the request was served (idle hours may precede it)
    newest_before = fake.truth_predictions(before - timedelta(days=7), before, now=before)[0].created_at
    assert newest_before <= newest <= after


def test_bad_parameters(sandbox) -> None:
    response = get(sandbox.url + PREDICTIONS, {"created_after": "yesterday"})
    assert response.status_code == 400 and response.json()["detail"] == "created_after: Enter a valid date/time."
    response = get(sandbox.url + PREDICTIONS, {"cursor": "garbage!"})
    assert response.status_code == 404 and response.json() == {"detail": "Invalid cursor"}


def test_unknown_path_and_method(sandbox) -> None:
    assert get(sandbox.url + "/replicate/v1/collections").json() == {"detail": "Not found."}
    response = requests.post(
        sandbox.url + PREDICTIONS, headers={"Authorization": f"Bearer {fake.API_TOKEN}"}, timeout=5
    )
    assert response.status_code == 405


def test_injected_faults_use_replicate_error_bodies(sandbox) -> None:
    sandbox.fault(PREDICTIONS, 429, headers={"Retry-After": "2"})
    response = get(sandbox.url + PREDICTIONS)
    assert response.status_code == 429 and response.headers["Retry-After"] == "2"
    assert response.json() == {"detail": "Request was throttled. Expected available in 1 second."}
    sandbox.fault(PREDICTIONS, 503)
    assert get(sandbox.url + PREDICTIONS).json() == {"title": "Service Unavailable", "status": 503}
