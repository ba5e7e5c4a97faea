"""AWS Bedrock connector: token usage per model and region, from CloudWatch's AWS/Bedrock metrics.

Authenticates by assuming the customer's role (with the external id Doow generated) or with an
IAM user's key pair; per region, discovers the ModelIds with ListMetrics and reads hourly Sums
with GetMetricData. See docs/providers/aws_bedrock.md for the customer's side of it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

import boto3

from integrations.providers.aws_bedrock.aws import Aws, SessionFactory, open_session
from integrations.providers.aws_bedrock.credential import check, prepare, setup_steps
from integrations.providers.aws_bedrock.schema import (
    DIMENSION,
    HOUR,
    INVOCATIONS,
    MANTLE_DIMENSIONS,
    MANTLE_ENDPOINT,
    MANTLE_INFERENCES,
    MANTLE_METRICS,
    MANTLE_NAMESPACE,
    NAMESPACE,
    MetricDataPage,
    Query,
    batches,
    build_queries,
    is_application_profile,
    mantle_samples,
    normalize_model_id,
    parse_inference_profile,
    parse_list_metrics_keys,
    parse_metric_data_page,
    parse_regions,
    usage_samples,
)
from integrations.providers.base import (
    Answered,
    FetchJob,
    FormField,
    Identity,
    PermissionDenied,
    Provider,
    ProviderResponseError,
    ProviderUnavailable,
    SetupStep,
    Stream,
    UsageSample,
    Window,
    align_down,
    align_up,
    in_stream,
)
from integrations.providers.toolkit import paginate

if TYPE_CHECKING:
    from integrations.http import HttpClient

MAX_PAGES = 1_000  # a NextToken loop that never ends is a bug, not a large account
CLOUDWATCH = Stream("cloudwatch", "Invocations and tokens per model and region, hourly (CloudWatch AWS/Bedrock)")
MANTLE = Stream(
    "mantle",
    "Inferences and tokens per model and region of the bedrock-mantle endpoint (OpenAI-compatible and "
    "Anthropic Messages APIs), hourly (CloudWatch AWS/BedrockMantle)",
)
# ListMetrics lists only metrics with data in the last two weeks. Every model id a sync saw is
# remembered in the integration's state, per namespace and region, and queried explicitly on
# later syncs, so a backfill of an older window still reads a model idle since.
STATE_KEY = "models_seen"
PROFILES_KEY = "profile_models"  # application inference profile ARN -> its foundation model
MAX_REMEMBERED = 2_000  # per namespace and region; the oldest-named beyond it are dropped


class AwsBedrockProvider(Provider):
    slug = "aws_bedrock"
    keys_version = 2  # issue 13: application inference profiles named by their foundation model
    name = "AWS Bedrock"
    category = "cloud"
    vendor = "Amazon Web Services"
    docs_path = "docs/providers/aws_bedrock.md"
    credential_help = (
        "Recommended: in IAM, create a role that trusts Doow's AWS account with the external id Doow "
        "generates for you, allow it cloudwatch:ListMetrics and cloudwatch:GetMetricData, and paste its "
        "ARN. Or paste an access key id and secret access key of an IAM user with those two permissions."
    )
    credential_fields = (
        FormField(
            "role_arn",
            "Role ARN (recommended)",
            help_text="arn:aws:iam::<account>:role/<name>; leave empty when you use an access key instead.",
            required=False,
            alternative=True,
            placeholder="arn:aws:iam::123456789012:role/DoowUsageRead",
        ),
        FormField(
            "access_key_id",
            "Access key id",
            help_text="Only without a role: an IAM user's key, AKIA…",
            required=False,
            alternative=True,
            placeholder="AKIA…",
        ),
        FormField(
            "secret_access_key",
            "Secret access key",
            help_text="Only without a role: the secret shown once when the access key was created.",
            secret=True,
            required=False,
            alternative=True,
        ),
    )
    setting_fields = (
        FormField(
            "regions",
            "Regions",
            help_text="Regions where you call Bedrock, separated by commas. Cross-region inference is counted "
            "in the region you called.",
            placeholder="us-east-1, eu-central-1",
        ),
        FormField(
            "endpoint_url",
            "Endpoint URL",
            help_text="Leave empty. Only for tests or a local AWS fake; it replaces every AWS endpoint.",
            required=False,
        ),
    )
    url_settings = ("endpoint_url",)
    # Bedrock publishes to CloudWatch within a few minutes of an invocation ending.
    reporting_delay = timedelta(minutes=10)
    # Late datapoints land in their own hour for a while after it: re-read the last hours.
    restatement_window = timedelta(hours=6)
    bucket = HOUR
    chunk = timedelta(days=1)
    # Answered per region for the ModelIds read (those ListMetrics listed plus those remembered
    # from earlier syncs, every metric read for them); a model neither listed nor remembered is
    # not read, so its rows stay.
    streams = (CLOUDWATCH, MANTLE)
    max_queries_per_call: ClassVar[int] = 500  # GetMetricData's limit
    assume_role_seconds: ClassVar[int] = 3600

    def __init__(self, *, session_factory: SessionFactory = boto3.session.Session) -> None:
        # Tests hand in a factory making stubbed sessions; the app uses boto3's default chain.
        self.session_factory = session_factory

    # ------------------------------------------------------------ credential (credential.py)
    def prepare_credential(
        self, credential: Mapping[str, str], *, previous: Mapping[str, str] | None = None, seed: str = ""
    ) -> dict[str, str]:
        return prepare(credential, previous=previous, seed=seed)

    def check_credential(self, credential: Mapping[str, str]) -> None:
        check(credential)

    def setup_instructions(
        self, credential: Mapping[str, str] | None = None, settings: Mapping[str, str] | None = None
    ) -> list[SetupStep]:
        return setup_steps(credential or {})

    # ------------------------------------------------------------ contract
    def verify(self, credential: Mapping[str, str], settings: Mapping[str, str], *, http: HttpClient) -> Identity:
        regions = parse_regions(self.setting(settings, "regions"))
        self.check_credential(credential)
        aws = self._open(credential, settings, http, regions[0])
        caller = aws.call(aws.client("sts", regions[0]), "get_caller_identity", "sts:GetCallerIdentity")
        account, arn = caller.get("Account"), caller.get("Arn")
        if not isinstance(account, str) or not isinstance(arn, str):
            raise ProviderResponseError("STS GetCallerIdentity returned no Account or Arn.")
        models: dict[str, list[str]] = {}
        for region in regions:
            models[region] = [m for _, m in self._discover(aws, aws.client("cloudwatch", region), region)]
        # ListMetrics passing says nothing about GetMetricData: probe it too, so a policy missing
        # it fails here rather than at the first sync (one metric requested, fractions of a cent).
        probe_model = next((ids[0] for ids in models.values() if ids), "doow-permission-probe")
        end = align_down(datetime.now(UTC))
        self._datapoints(
            aws, aws.client("cloudwatch", regions[0]), regions[0], [probe_model], end - HOUR, end, (INVOCATIONS,)
        )

        details: dict[str, Any] = {
            "caller_arn": arn,
            "models_by_region": {r: ids or ["none"] for r, ids in models.items()},
        }
        if credential.get("role_arn"):
            details["external_id"] = credential.get("external_id", "")
        quiet = [r for r, ids in models.items() if not ids]
        if quiet:
            details["warnings"] = [
                f"No Bedrock invocations in the last two weeks in {', '.join(quiet)} (check the regions)."
            ]
        counts = ", ".join(f"{r}: {len(ids)}" for r, ids in models.items())
        summary = f"AWS account {account} as {arn} · models with invocations in the last two weeks — {counts}"
        return Identity(account_id=account, summary=summary, details=details)

    def read(self, job: FetchJob) -> Iterator[UsageSample]:
        # Hour-aligned on both ends: CloudWatch buckets from StartTime, so an unaligned start
        # would key the same hour twice.
        start, end = align_down(job.window.start), align_up(job.window.end)
        regions = parse_regions(self.setting(job.settings, "regions"))
        aws = self._open(job.credential, job.settings, job.http, regions[0])
        account = aws.account_id
        if not account:
            caller = aws.call(aws.client("sts", regions[0]), "get_caller_identity", "sts:GetCallerIdentity")
            account = str(caller.get("Account") or "")
        seen = _remembered(job.state)
        samples: list[UsageSample] = []
        for region in regions:
            client = aws.client("cloudwatch", region)
            # bedrock-runtime (Converse / InvokeModel): AWS/Bedrock, keyed by ModelId.
            keys = self._discover(aws, client, region)
            model_ids = _merge(seen, NAMESPACE, region, [m for _, m in keys])
            if model_ids:
                points = self._datapoints(aws, client, region, model_ids, start, end)
                resolved = self._profile_models(
                    aws, region, [m for m in model_ids if is_application_profile(m)], job.state
                )
                samples.extend(
                    in_stream(usage_samples(points, account=account, region=region, resolved=resolved), CLOUDWATCH.name)
                )
                self._answer_models(
                    job.answered, CLOUDWATCH.name, Window(start, job.window.end), account, region, model_ids
                )
            # bedrock-mantle (Responses, Chat Completions, Anthropic Messages): AWS/BedrockMantle.
            keys = self._discover(aws, client, region, MANTLE_NAMESPACE, MANTLE_INFERENCES, MANTLE_DIMENSIONS)
            mantle_keys = _merge_keys(seen, MANTLE_NAMESPACE, region, keys)
            if mantle_keys:
                points = {}
                for dimension in sorted({d for d, _ in mantle_keys}):
                    ids = [m for d, m in mantle_keys if d == dimension]
                    queries = build_queries(
                        ids, MANTLE_METRICS, namespace=MANTLE_NAMESPACE, dimension=dimension, prefix="n"
                    )
                    for batch in batches(queries, self.max_queries_per_call):
                        self._read_batch(aws, client, region, batch, start, end, points)
                samples.extend(in_stream(mantle_samples(points, account=account, region=region), MANTLE.name))
                self._answer_models(
                    job.answered, MANTLE.name, Window(start, job.window.end), account, region, sorted({m for _, m in mantle_keys}),
                    endpoint=[MANTLE_ENDPOINT],
                )  # fmt: skip
        if job.state is not None:
            job.state[STATE_KEY] = seen
        samples.sort(key=lambda s: s.bucket_start)  # stable: regions stay in order within an hour
        yield from samples

    # ------------------------------------------------------------ internals
    def _answer_models(
        self,
        answered: list[Answered] | None,
        stream: str,
        window: Window,
        account: str,
        region: str,
        model_ids: list[str],
        **extra: list[str],
    ) -> None:
        """Every metric of each listed ModelId was read. A raw id is stored as (model, deployment)
        = (id, "") or (normalized id, raw id) (usage_samples), so two scopes name exactly the
        listed ids: a model and deployment product would also match an unlisted sibling (the
        plain "anthropic.x" of a listed "us.anthropic.x")."""
        plain = [m for m in model_ids if normalize_model_id(m) == m]
        profiled = [m for m in model_ids if normalize_model_id(m) != m]
        if plain:
            self.answer(
                answered, stream, window, account=[account], region=[region], model=plain, deployment=[""], **extra
            )
        if profiled:
            self.answer(answered, stream, window, account=[account], region=[region], deployment=profiled, **extra)

    def _profile_models(self, aws: Aws, region: str, arns: list[str], state: dict[str, Any] | None) -> dict[str, str]:
        """The foundation model behind each application inference profile, from
        bedrock:GetInferenceProfile (an optional permission: refused, the profile stays its own
        model). Remembered in the state: a profile's model never changes."""
        known = (state or {}).get(PROFILES_KEY)
        known = dict(known) if isinstance(known, dict) else {}
        resolved: dict[str, str] = {}
        client = None
        for arn in arns:
            if isinstance(known.get(arn), str) and known[arn]:
                resolved[arn] = known[arn]
                continue
            client = client or aws.client("bedrock", region)
            try:
                response = aws.call(client, "get_inference_profile", "bedrock:GetInferenceProfile", region=region,
                                    inferenceProfileIdentifier=arn)  # fmt: skip
            except (PermissionDenied, ProviderResponseError):
                continue  # not allowed, or gone: the profile keeps its own name as the model
            model = _parsed(parse_inference_profile, response)
            if model:
                resolved[arn] = known[arn] = model
        if state is not None and known:
            state[PROFILES_KEY] = known
        return resolved

    def _open(self, credential: Mapping[str, str], settings: Mapping[str, str], http: HttpClient, region: str) -> Aws:
        endpoint = self.setting(settings, "endpoint_url")
        return open_session(
            self.session_factory,
            credential,
            endpoint=endpoint,
            http=http,
            region=region,
            duration=self.assume_role_seconds,
        )

    def _discover(
        self,
        aws: Aws,
        client: Any,
        region: str,
        namespace: str = NAMESPACE,
        metric: str = INVOCATIONS,
        dimensions: tuple[str, ...] = (DIMENSION,),
    ) -> list[tuple[str, str]]:
        """(dimension, model id) of the series with `metric` in this region; CloudWatch lists
        only metrics with data in the last two weeks (fetch adds the ids remembered from earlier
        syncs)."""
        params: dict[str, Any] = {"Namespace": namespace, "MetricName": metric}
        if len(dimensions) == 1:
            params["Dimensions"] = [{"Name": dimensions[0]}]
        found: set[tuple[str, str]] = set()

        def get(token: str | None) -> tuple[list[tuple[str, str]], str | None]:
            response = aws.call(
                client,
                "list_metrics",
                "cloudwatch:ListMetrics",
                region=region,
                **params,
                **({"NextToken": token} if token else {}),
            )
            return _parsed(lambda body: parse_list_metrics_keys(body, dimensions), response)

        for keys, _next in paginate(get, lambda page: page[1], source="CloudWatch ListMetrics", max_pages=MAX_PAGES,
                                    repeated="CloudWatch ListMetrics repeated its NextToken."):  # fmt: skip
            found.update(keys)
        return sorted(found)

    def _datapoints(
        self,
        aws: Aws,
        client: Any,
        region: str,
        model_ids: list[str],
        start: datetime,
        end: datetime,
        metrics: tuple[str, ...] | None = None,
    ) -> dict[tuple[datetime, str, str], Decimal]:
        queries = build_queries(model_ids, metrics) if metrics else build_queries(model_ids)
        points: dict[tuple[datetime, str, str], Decimal] = {}
        for batch in batches(queries, self.max_queries_per_call):
            self._read_batch(aws, client, region, batch, start, end, points)
        return points

    def _read_batch(
        self, aws: Aws, client: Any, region: str, batch: list[Query], start: datetime, end: datetime, points: dict
    ) -> None:
        by_id = {q.id: q for q in batch}
        params: dict[str, Any] = {
            "MetricDataQueries": [q.payload() for q in batch],
            "StartTime": start,
            "EndTime": end,
            "ScanBy": "TimestampAscending",
        }

        def get(token: str | None) -> MetricDataPage:
            response = aws.call(
                client,
                "get_metric_data",
                "cloudwatch:GetMetricData",
                region=region,
                **params,
                **({"NextToken": token} if token else {}),
            )
            return _parsed(parse_metric_data_page, response)

        for page in paginate(get, lambda page: page.next_token, source="CloudWatch GetMetricData", max_pages=MAX_PAGES,
                             repeated="CloudWatch GetMetricData repeated its NextToken."):  # fmt: skip
            partial = False
            for series in page.series:
                query = by_id.get(series.id)
                if query is None:
                    raise ProviderResponseError(f"CloudWatch returned a result for an unknown query id {series.id!r}.")
                if series.status == "Forbidden":
                    raise PermissionDenied(
                        f"CloudWatch refused to read {query.metric} in {region} (status Forbidden).",
                        hint="Allow cloudwatch:GetMetricData on Resource * for the role or user.",
                    )
                if series.status == "InternalError":
                    raise ProviderUnavailable(f"CloudWatch had an internal error reading {query.metric} in {region}.")
                partial = partial or series.status == "PartialData"
                for moment, value in series.points:
                    if start <= moment < end:  # the same datapoint on two pages is one datapoint
                        points[(moment, query.model_id, query.metric)] = value
            if partial and not page.next_token:
                raise ProviderResponseError(f"CloudWatch returned partial data in {region} without a NextToken.")


def _remembered(state: dict[str, Any] | None) -> dict[str, dict[str, list[list[str]]]]:
    """The model ids earlier syncs saw, {namespace: {region: [[dimension, id], ...]}}; anything
    malformed (an older or hand-edited state) counts as nothing remembered."""
    raw = (state or {}).get(STATE_KEY)
    seen: dict[str, dict[str, list[list[str]]]] = {}
    if not isinstance(raw, dict):
        return seen
    for namespace, regions in raw.items():
        if not isinstance(regions, dict):
            continue
        for region, keys in regions.items():
            if isinstance(keys, list):
                good = [
                    list(k)
                    for k in keys
                    if isinstance(k, list) and len(k) == 2 and all(isinstance(x, str) and x for x in k)
                ]
                seen.setdefault(str(namespace), {})[str(region)] = good
    return seen


def _merge_keys(
    seen: dict[str, dict[str, list[list[str]]]], namespace: str, region: str, keys: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    """The listed keys plus those remembered for this namespace and region; remembers them all."""
    merged = sorted({(d, m) for d, m in keys} | {(d, m) for d, m in seen.get(namespace, {}).get(region, [])})
    seen.setdefault(namespace, {})[region] = [[d, m] for d, m in merged[:MAX_REMEMBERED]]
    return merged


def _merge(seen: dict[str, dict[str, list[list[str]]]], namespace: str, region: str, model_ids: list[str]) -> list[str]:
    return [m for _, m in _merge_keys(seen, namespace, region, [(DIMENSION, m) for m in model_ids])]


def _parsed(parse: Any, response: dict[str, Any]) -> Any:
    """Validate one response, tagging a shape error with its status and request id."""
    try:
        return parse(response)
    except ProviderResponseError as error:
        meta = (response.get("ResponseMetadata") or {}) if isinstance(response, dict) else {}
        error.http_status = error.http_status or meta.get("HTTPStatusCode")
        error.request_id = error.request_id or str(meta.get("RequestId", "") or "")[:200]
        raise
