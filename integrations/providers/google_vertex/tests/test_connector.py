"""The connector against the running sandbox: true totals per day, project, region and model;
polling and paging; whole-day alignment; replace-never-add re-reads; verify."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from integrations.providers.base import UsageSample, Window
from integrations.providers.google_vertex import GoogleVertexProvider
from integrations.providers.google_vertex.schema import is_credit
from integrations.providers.google_vertex.tests import support
from integrations.providers.testing import (
    assert_totals_equal,
    fetch_list,
    read_twice,
    sample_key,
    stored_totals,
    totals_by,
)
from sandbox import google_vertex as fake

QUERIES = support.QUERIES_PATH
JOBS = QUERIES + "/"
DAY = timedelta(days=1)


def per_day_project_region_model(samples: list[UsageSample]) -> Counter:
    totals: Counter = Counter()
    for s in samples:
        totals[(s.metric, s.bucket_start.date(), s.project, s.region, s.model)] += s.quantity
    return totals


def test_fetch_reproduces_true_totals_per_day_project_region_and_model(
    provider, credential, vertex_settings, http, week
) -> None:
    samples = fetch_list(provider, credential, vertex_settings, week, http)
    expected = support.true_totals(week.start, week.end, support.by_day_project_region_model)
    assert_totals_equal(per_day_project_region_model(samples), expected, "per day, project, region and model")
    assert {s.account for s in samples} == {fake.BILLING_ACCOUNT}
    assert {(s.metric, s.unit) for s in samples} == {("cost", "USD"), ("input_tokens", "tokens"),
                                                     ("cached_input_tokens", "tokens"), ("output_tokens", "tokens")}  # fmt: skip
    assert all(s.bucket_end - s.bucket_start == DAY for s in samples)
    keys = [sample_key(s) for s in samples]
    assert len(keys) == len(set(keys))


def test_every_sku_stays_visible_with_its_id(provider, credential, vertex_settings, http, week) -> None:
    samples = fetch_list(provider, credential, vertex_settings, week, http)
    assert {s.resource for s in samples} == {sku.id for sku in fake.read_skus()}
    unparsed = {s.operation for s in samples if not s.model and not is_credit(s.operation)}
    assert unparsed == {sku.description for sku in fake.read_skus() if not sku.model}
    gross = totals_by([s for s in samples if not is_credit(s.operation)], "resource")
    truth: Counter = Counter()
    for row in fake.truth_rows(week.start, week.end):
        truth[("cost", row.sku.id)] += row.cost
        if row.sku.tokens:
            truth[("input_tokens" if row.sku.tokens != "output" else "output_tokens", row.sku.id)] += row.usage_amount
        if row.sku.tokens == "cached_input":
            truth[("cached_input_tokens", row.sku.id)] += row.usage_amount
    assert_totals_equal(gross, truth, "gross cost and tokens per SKU")


def test_credits_are_negative_cost_rows_so_the_sum_is_net(provider, credential, vertex_settings, http, week) -> None:
    samples = fetch_list(provider, credential, vertex_settings, week, http)
    credits = [s for s in samples if is_credit(s.operation)]
    assert credits and all(s.quantity < 0 for s in credits)
    assert sum(s.quantity for s in credits) == sum(r.credits for r in fake.truth_rows(week.start, week.end))
    # Each credit type its own rows: the promotion of one project, the committed-use discount of the other.
    by_type = {(s.operation, s.project) for s in credits}
    assert by_type == {
        ("credits: promotion", fake.CREDIT_PROJECT),
        ("credits: committed usage discount", fake.CUD_PROJECT),
    }
    for operation, kind in (
        ("credits: promotion", "PROMOTION"),
        ("credits: committed usage discount", "COMMITTED_USAGE_DISCOUNT"),
    ):
        truth = sum(a for r in fake.truth_rows(week.start, week.end) for t, a in r.credits_by_type if t == kind)
        assert sum(s.quantity for s in credits if s.operation == operation) == truth != 0


def test_the_job_is_polled_then_every_page_read(provider, credential, vertex_settings, http, sandbox, week) -> None:
    fetch_list(provider, credential, vertex_settings, week, http)
    post, *gets = sandbox.requests(QUERIES)
    assert post["method"] == "POST" and post["path"] == QUERIES
    rows = len(fake.truth_rows(week.start, week.end))
    assert len(gets) == -(-rows // fake.PAGE_ROWS) >= 3  # the first poll brings page one
    job = gets[0]["path"].rsplit("/", 1)[1]
    assert job.startswith("job_") and all(g["path"] == f"{QUERIES}/{job}" for g in gets)
    assert "pageToken" not in gets[0]["query"] and all("pageToken" in g["query"] for g in gets[1:])
    for g in gets:
        assert g["query"]["location"] == ["US"] and g["query"]["maxResults"] == ["5000"]
    assert len(sandbox.requests(support.TOKEN_PATH)) == 1


def test_a_job_complete_at_once_needs_no_poll(provider, credential, vertex_settings, http, sandbox) -> None:
    sandbox.fault(QUERIES, 200, body=support.load("query_results_page.json"))
    samples = fetch_list(provider, credential, vertex_settings, Window(support.days_ago(2), support.days_ago(1)), http)
    assert Counter(s.metric for s in samples) == Counter(s.metric for s in support.EXPECTED_PAGE)
    assert len(sandbox.requests(QUERIES)) == 1


def test_unaligned_windows_are_read_as_whole_days(provider, credential, vertex_settings, http) -> None:
    start = support.days_ago(4) + timedelta(hours=10, minutes=37, seconds=5)
    end = support.days_ago(2) + timedelta(hours=5, minutes=20)
    samples = fetch_list(provider, credential, vertex_settings, Window(start, end), http)
    assert {s.bucket_start for s in samples} == {support.days_ago(4), support.days_ago(3), support.days_ago(2)}
    assert_totals_equal(totals_by(samples), support.true_totals(support.days_ago(4), support.days_ago(1)))


def test_adjacent_unaligned_windows_never_double_count(provider, credential, vertex_settings, http) -> None:
    start, middle, end = (
        support.days_ago(4) + timedelta(hours=3),
        support.days_ago(2) + timedelta(hours=13),
        support.days_ago(1),
    )
    first = fetch_list(provider, credential, vertex_settings, Window(start, middle), http)
    second = fetch_list(provider, credential, vertex_settings, Window(middle, end), http)
    stored = stored_totals(first, second)  # the usage store's semantics: same key → replace, never add
    assert support.days_ago(2) in read_twice(first, second), "the day around `middle` is read by both windows"
    assert_totals_equal(stored, support.true_totals(support.days_ago(4), end), "stored totals")


def test_a_restated_day_is_replaced_not_added(provider, credential, vertex_settings, http, week) -> None:
    before = {sample_key(s): s.quantity for s in fetch_list(provider, credential, vertex_settings, week, http)}
    fake.revise(support.days_ago(3).date())
    after = {sample_key(s): s.quantity for s in fetch_list(provider, credential, vertex_settings, week, http)}
    assert before.keys() == after.keys()
    changed = {k for k in after if after[k] != before[k]}
    assert changed and {k[0] for k in changed} == {support.days_ago(3)}
    assert all(after[k] > before[k] for k in changed if k[2] != "cost" or after[k] > 0)


def test_query_project_defaults_to_the_tables_project(
    provider, credential, vertex_settings, http, sandbox, week
) -> None:
    fetch_list(provider, credential, {**vertex_settings, "location": "us", "query_project": ""}, week, http)
    assert sandbox.requests(QUERIES)[0]["path"] == f"/google_vertex/bigquery/v2/projects/{fake.PROJECT_ID}/queries"


# ---------------------------------------------------------------- verify
def test_verify_shows_billing_account_projects_models_and_other_skus(
    provider, credential, vertex_settings, http, sandbox
) -> None:
    identity = provider.verify(credential, vertex_settings, http=http)
    assert identity.account_id == fake.BILLING_ACCOUNT and identity.account_name == fake.SERVICE_ACCOUNT
    assert identity.summary.startswith(
        f"Billing account {fake.BILLING_ACCOUNT} · {fake.BILLING_TABLE} (US) · the last 5 days: "
    )
    assert "2 project(s), 5 model(s)" in identity.summary and "USD net, 2 other SKU(s)" in identity.summary
    details = identity.details
    assert details["projects"] == sorted(fake.PROJECTS)
    assert details["models"] == sorted({s.model for s in fake.read_skus() if s.model})
    assert details["unparsed_skus"] == sorted(s.description for s in fake.read_skus() if not s.model)
    assert details["estimated_bytes_per_query"] > 0 and "warnings" not in details
    assert [r["method"] for r in sandbox.requests(QUERIES)][:2] == ["POST", "POST"]  # the dry run, then the query


def test_verify_warns_when_there_are_no_rows(provider, credential, vertex_settings, http, sandbox) -> None:
    empty = {**support.load("query_results_page.json"), "totalRows": "0",
             "jobReference": {"projectId": fake.PROJECT_ID, "jobId": "job_empty", "location": "US"}}  # fmt: skip
    del empty["rows"]
    sandbox.fault(JOBS, 200, body=empty)
    identity = provider.verify(credential, vertex_settings, http=http)
    assert identity.summary.endswith("no Vertex AI rows in the last 5 days")
    assert identity.details["warnings"][0].startswith("No Vertex AI rows")


def test_verify_warns_near_the_bytes_cap(credential, vertex_settings, http) -> None:
    provider = GoogleVertexProvider()
    provider.max_bytes_billed = 40_000_000  # the sandbox estimates 24 MB for five days
    identity = provider.verify(credential, vertex_settings, http=http)
    assert "close to the" in identity.details["warnings"][0]


def test_setup_instructions_name_the_service_account(provider, credential) -> None:
    steps = provider.setup_instructions(credential, {"query_project": "acme-analytics"})
    assert steps[0].title == "Export billing data to BigQuery"
    assert fake.SERVICE_ACCOUNT in steps[1].text and "roles/bigquery.jobUser" in steps[2].code
    assert "acme-analytics" in steps[2].code and "private_key" not in repr(steps)
    assert "SERVICE_ACCOUNT_EMAIL" in provider.setup_instructions()[1].text
