"""Normalized usage (one row = one quantity of one metric for one bucket and dimension set),
and the inventory it is attributed to: applications, their licenses, and attribution rules."""

from __future__ import annotations

from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Value
from django.db.models.functions import Coalesce

from usage.dimensions import DIMENSIONS, UNATTRIBUTED_DIMENSIONS

DIMENSION_FIELDS = DIMENSIONS
NATURAL_KEY = ("integration", "bucket_start", "bucket_end", *DIMENSION_FIELDS, "metric")


class UsageRecord(models.Model):
    workspace = models.ForeignKey("accounts.Workspace", on_delete=models.CASCADE, related_name="usage_records")
    integration = models.ForeignKey("integrations.Integration", on_delete=models.CASCADE, related_name="usage_records")
    provider = models.CharField(max_length=64)
    bucket_start = models.DateTimeField()
    bucket_end = models.DateTimeField()
    account = models.CharField(max_length=200, blank=True, default="")
    project = models.CharField(max_length=200, blank=True, default="")
    region = models.CharField(max_length=64, blank=True, default="")
    model = models.CharField(max_length=200, blank=True, default="")
    deployment = models.CharField(max_length=200, blank=True, default="")
    endpoint = models.CharField(max_length=200, blank=True, default="")
    resource = models.CharField(max_length=200, blank=True, default="")
    operation = models.CharField(max_length=200, blank=True, default="")
    api_key = models.CharField(max_length=200, blank=True, default="")
    service_tier = models.CharField(max_length=64, blank=True, default="", db_default="")
    batch = models.CharField(max_length=64, blank=True, default="", db_default="")
    context_window = models.CharField(max_length=64, blank=True, default="", db_default="")
    inference_geo = models.CharField(max_length=64, blank=True, default="", db_default="")
    speed = models.CharField(max_length=64, blank=True, default="", db_default="")
    metric = models.CharField(max_length=32)
    quantity = models.DecimalField(max_digits=30, decimal_places=9)
    unit = models.CharField(max_length=16)
    provenance = models.CharField(max_length=16, default="reported")
    # The connector stream that wrote the row ("" for imported rows), and the store call that
    # last wrote it: a re-read that answers the stream removes its rows it did not write again
    # (usage.store.usage_store_chunk). Neither is part of the natural key.
    stream = models.CharField(max_length=32, blank=True, default="")
    store_batch = models.BigIntegerField(null=True, blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    # The provider's own labels of the usage ({"team": "search"}; Google Cloud's resource labels
    # in the billing export). Not part of the natural key and not in the daily rollups: kept for
    # attribution rules (AttributionRule.label) and shown with the row.
    # db_default: a writer that names only the older columns (a raw INSERT, a COPY of the
    # earlier column list during a rolling deploy) still stores a row, with no labels.
    labels = models.JSONField(default=dict, blank=True, db_default=models.Value({}, output_field=models.JSONField()))
    # Attribution, set at ingest and whenever the rules change (see usage/attribution.py).
    application = models.ForeignKey(
        "usage.Application", null=True, blank=True, on_delete=models.SET_NULL, related_name="usage_records"
    )
    license = models.ForeignKey(
        "usage.License", null=True, blank=True, on_delete=models.SET_NULL, related_name="usage_records"
    )
    rule = models.ForeignKey(
        "usage.AttributionRule", null=True, blank=True, on_delete=models.SET_NULL, related_name="usage_records"
    )

    class Meta:
        ordering = ["bucket_start", "pk"]
        constraints = [models.UniqueConstraint(fields=NATURAL_KEY, name="usage_record_natural_key")]
        indexes = [
            # (…, id): the export's order (oldest bucket first, ties by id) read straight from the
            # index, so COPY streams without sorting the workspace's rows (usage/export_copy.py).
            models.Index(fields=["workspace", "bucket_start", "id"], name="usage_record_ws_start_id"),
            models.Index(fields=["integration", "bucket_start"]),
            models.Index(fields=["workspace", "application", "bucket_start"]),
        ]

    def __str__(self) -> str:
        return f"{self.metric}={self.quantity} {self.unit} @ {self.bucket_start:%Y-%m-%d %H:%M}"


def rollup_slice(name: str, *dimensions: str) -> models.UniqueConstraint:
    """A rollup level's unique slice: integration, day, the level's dimensions, metric, unit,
    application and license (NULL application/license compare equal here: COALESCE to 0, on
    SQLite and PG)."""
    return models.UniqueConstraint(
        F("integration"),
        F("day"),
        *(F(d) for d in dimensions),
        F("metric"),
        F("unit"),
        Coalesce(F("application"), Value(0)),
        Coalesce(F("license"), Value(0)),
        name=name,
    )


def rollup_day_indexes(prefix: str) -> list[models.Index]:
    """A rollup level's date-range indexes: per workspace (pages) and per integration (its page,
    upkeep)."""
    return [
        models.Index(fields=["workspace", "day"], name=f"{prefix}_ws_day"),
        models.Index(fields=["integration", "day"], name=f"{prefix}_int_day"),
    ]


class RollupSlice(models.Model):
    """What every rollup level holds (usage/rollups.py): the sum of base quantities and the
    count of base rows of one slice — integration, provider, local day (in the workspace's time
    zone, by bucket_start), metric, unit, application and license — plus the level's own
    dimensions, declared by each concrete model with its workspace and integration.
    """

    provider = models.CharField(max_length=64)
    day = models.DateField(help_text="Local calendar day of bucket_start in the workspace's time zone.")
    metric = models.CharField(max_length=32)
    unit = models.CharField(max_length=16)
    # Deleting an application or license sets the base rows' attribution to NULL; its rollup
    # rows go with it (CASCADE, so no two slices collapse into one) and the service that
    # deletes it refreshes the days they covered in the same transaction (usage.services).
    application = models.ForeignKey(
        "usage.Application", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    license = models.ForeignKey("usage.License", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    quantity = models.DecimalField(max_digits=30, decimal_places=9)
    # A plain integer: re-attribution moves rows between slices by difference, and a slice that
    # would go below zero shows a day that was out of step; it is then recomputed (usage.rollups).
    rows = models.IntegerField(default=0, help_text="Base rows summed.")

    class Meta:
        abstract = True
        ordering = ["day", "pk"]

    def __str__(self) -> str:
        return f"{self.day} {self.metric}={self.quantity} {self.unit}"


class UsageDaily(RollupSlice):
    """Daily rollup of UsageRecord: the sum of base quantities per local calendar day (in the
    workspace's time zone, by bucket_start), integration, dimensions, metric, unit, application
    and license. Pages that aggregate read this table, never the hourly base table.

    Kept equal to the base table by recomputing slices (usage/rollups.py): every write path
    (store, import, re-attribution) deletes and re-inserts the days it touched, in the same
    transaction; integration deletion cascades. Never edited row by row.
    """

    workspace = models.ForeignKey("accounts.Workspace", on_delete=models.CASCADE, related_name="usage_daily")
    integration = models.ForeignKey("integrations.Integration", on_delete=models.CASCADE, related_name="usage_daily")
    region = models.CharField(max_length=64, blank=True, default="")
    model = models.CharField(max_length=200, blank=True, default="")
    account = models.CharField(max_length=200, blank=True, default="")
    project = models.CharField(max_length=200, blank=True, default="")
    deployment = models.CharField(max_length=200, blank=True, default="")
    endpoint = models.CharField(max_length=200, blank=True, default="")
    resource = models.CharField(max_length=200, blank=True, default="")
    operation = models.CharField(max_length=200, blank=True, default="")
    api_key = models.CharField(max_length=200, blank=True, default="")
    service_tier = models.CharField(max_length=64, blank=True, default="", db_default="")
    batch = models.CharField(max_length=64, blank=True, default="", db_default="")
    context_window = models.CharField(max_length=64, blank=True, default="", db_default="")
    inference_geo = models.CharField(max_length=64, blank=True, default="", db_default="")
    speed = models.CharField(max_length=64, blank=True, default="", db_default="")

    class Meta(RollupSlice.Meta):
        constraints = [rollup_slice("usage_daily_slice", *DIMENSIONS)]
        indexes = [
            *rollup_day_indexes("usage_daily"),
            # The explorer's filter choices: a loose index scan per column (usage.queries.indexed_values).
            *(
                models.Index(fields=["workspace", column], name=f"usage_daily_ws_{column}")
                for column in ("metric", "model", "project", "region")
            ),
            # Unattributed usage (usage.summaries.unattributed_groups): its GROUP BY over all days
            # reads only the rows without an application, from this index alone (PostgreSQL: an
            # index-only scan in group order, no sort, no heap; SQLite: the keys only, no INCLUDE).
            models.Index(
                fields=["workspace", "provider", *UNATTRIBUTED_DIMENSIONS, "metric", "unit"],
                include=["integration", "day", "rows", "quantity"],
                condition=models.Q(application__isnull=True),
                name="usage_daily_unattributed",
            ),
        ]


class Team(models.Model):
    """Who owns an application's spend: a team, optionally with the finance cost centre it is
    charged to. Spend splits by team through its applications (usage with no application, or
    an application without a team, is "No team")."""

    workspace = models.ForeignKey("accounts.Workspace", on_delete=models.CASCADE, related_name="teams")
    name = models.CharField(max_length=120)
    cost_centre = models.CharField(
        "cost centre", max_length=60, blank=True, help_text="The finance code spend is charged to, e.g. CC-4100."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "pk"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="team_name_per_workspace")]

    def __str__(self) -> str:
        return f"{self.name} ({self.cost_centre})" if self.cost_centre else self.name


class UsageDailyNarrow(RollupSlice):
    """The narrow daily rollup: UsageDaily summed without its high-cardinality dimensions
    (account, project, deployment, endpoint, resource, operation, api_key): one row per local
    day, integration, model, region, metric, unit, application and license.

    A page that groups and filters only by these columns (usage.rollups.NARROW_COLUMNS) reads it
    instead of UsageDaily (`usage.rollups.daily_for(workspace, columns)`): the same sums over
    several times fewer rows. Kept in the same transactions as UsageDaily, from UsageDaily's
    freshly computed rows (usage/rollups.py), so its totals always equal UsageDaily's.
    """

    workspace = models.ForeignKey("accounts.Workspace", on_delete=models.CASCADE, related_name="+")
    integration = models.ForeignKey(
        "integrations.Integration", on_delete=models.CASCADE, related_name="usage_daily_narrow"
    )
    region = models.CharField(max_length=64, blank=True, default="")
    model = models.CharField(max_length=200, blank=True, default="")

    class Meta(RollupSlice.Meta):
        constraints = [rollup_slice("usage_daily_narrow_slice", "model", "region")]
        indexes = rollup_day_indexes("usage_narrow")


class UsageDailyTotal(RollupSlice):
    """The total rollup: UsageDaily summed without any dimension: one row per local day,
    integration, metric, unit, application and license.

    What a view split by provider, integration, application, team or license (or not split)
    reads when no dimension is filtered (`usage.rollups.daily_for(workspace, columns)`): the
    explorer's totals and spend over long periods, the overview's spend. Kept with the other
    derived levels, by the same code, in the same transactions as UsageDaily (usage/rollups.py,
    `LEVELS`).
    """

    workspace = models.ForeignKey("accounts.Workspace", on_delete=models.CASCADE, related_name="+")
    integration = models.ForeignKey(
        "integrations.Integration", on_delete=models.CASCADE, related_name="usage_daily_total"
    )

    class Meta(RollupSlice.Meta):
        constraints = [rollup_slice("usage_daily_total_slice")]
        indexes = rollup_day_indexes("usage_total")


class UsageDailyProject(RollupSlice):
    """The project rollup: UsageDaily summed per project, without model, region and the other
    dimensions: one row per local day, integration, project, metric, unit, application and
    license.

    What a view split or filtered by project reads (the explorer's split by project, an
    integration's usage by project) when it needs no model or region
    (`usage.rollups.daily_for(workspace, columns)`): UsageDaily holds a row per model and
    project, this one a row per project. Kept with the narrow rollup, by the same code, in the
    same transactions as UsageDaily (usage/rollups.py, `LEVELS`).
    """

    workspace = models.ForeignKey("accounts.Workspace", on_delete=models.CASCADE, related_name="+")
    integration = models.ForeignKey(
        "integrations.Integration", on_delete=models.CASCADE, related_name="usage_daily_project"
    )
    project = models.CharField(max_length=200, blank=True, default="")

    class Meta(RollupSlice.Meta):
        constraints = [rollup_slice("usage_daily_project_slice", "project")]
        indexes = rollup_day_indexes("usage_project")


class Application(models.Model):
    """Something the company pays for: an AI provider account, an internal tool, a SaaS product."""

    workspace = models.ForeignKey("accounts.Workspace", on_delete=models.CASCADE, related_name="applications")
    name = models.CharField(max_length=120)
    vendor = models.CharField(max_length=120, blank=True)
    owner = models.CharField(max_length=120, blank=True, help_text="Who answers for it: a person or a team.")
    # The owning team (cost centre) its spend is split by; deleting the team leaves it unowned.
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="applications")
    category = models.CharField(max_length=60, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "pk"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="application_name_per_workspace")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        if self.team is not None and self.workspace_id and self.team.workspace_id != self.workspace_id:
            raise ValidationError({"team": "Choose a team of the application's own workspace."})


class License(models.Model):
    class Kind(models.TextChoices):
        SEATS = "seats", "Seats"
        COMMITMENT = "usage_commitment", "Usage commitment"
        PAY_AS_YOU_GO = "pay_as_you_go", "Pay-as-you-go"

    workspace = models.ForeignKey("accounts.Workspace", on_delete=models.CASCADE, related_name="licenses")
    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="licenses")
    plan_name = models.CharField(max_length=120)
    kind = models.CharField(max_length=24, choices=Kind.choices, default=Kind.PAY_AS_YOU_GO)
    start_date = models.DateField()
    end_date = models.DateField(null=True, blank=True)
    committed_amount = models.DecimalField(max_digits=18, decimal_places=2, null=True, blank=True)
    currency = models.CharField(max_length=3, default="USD")
    seat_count = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["application__name", "plan_name", "pk"]

    def __str__(self) -> str:
        return f"{self.application.name} – {self.plan_name}"


class AttributionRule(models.Model):
    """Usage of `provider` whose dimensions match every non-empty pattern → application (+ license).

    Patterns are exact values or shell-style wildcards (`gpt-4o*`, `proj_?b`); an empty pattern
    matches anything. Rules are tried by ascending `priority`, then id; the first match wins.
    """

    MATCH_FIELDS = DIMENSIONS

    workspace = models.ForeignKey("accounts.Workspace", on_delete=models.CASCADE, related_name="attribution_rules")
    provider = models.CharField(max_length=64, help_text="Registry slug of the provider this rule applies to.")
    account = models.CharField(max_length=200, blank=True)
    project = models.CharField(max_length=200, blank=True)
    region = models.CharField(max_length=200, blank=True)
    model = models.CharField(max_length=200, blank=True)
    deployment = models.CharField(max_length=200, blank=True)
    endpoint = models.CharField(max_length=200, blank=True)
    api_key = models.CharField(max_length=200, blank=True)
    resource = models.CharField(max_length=200, blank=True)
    operation = models.CharField(max_length=200, blank=True)
    label = models.CharField(
        max_length=200,
        blank=True,
        help_text="A label of the usage as key=value, e.g. team=search (the value may use * and ?); empty: any.",
    )
    service_tier = models.CharField(max_length=64, blank=True, default="", db_default="")
    batch = models.CharField(max_length=64, blank=True, default="", db_default="")
    context_window = models.CharField(max_length=64, blank=True, default="", db_default="")
    inference_geo = models.CharField(max_length=64, blank=True, default="", db_default="")
    speed = models.CharField(max_length=64, blank=True, default="", db_default="")
    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="rules")
    license = models.ForeignKey(License, null=True, blank=True, on_delete=models.SET_NULL, related_name="rules")
    priority = models.PositiveIntegerField(default=100, help_text="Lower runs first.")
    is_default = models.BooleanField(default=False, help_text="Created when the provider was connected.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["priority", "pk"]

    def __str__(self) -> str:
        patterns = ", ".join(f"{f}={getattr(self, f)}" for f in self.MATCH_FIELDS if getattr(self, f))
        if self.label:
            patterns = ", ".join(p for p in (patterns, f"label {self.label}") if p)
        return f"{self.provider}{' [' + patterns + ']' if patterns else ''} → {self.application}"


class BackgroundJob(models.Model):
    """What every background job of a workspace shares: a status, progress as done of total, the
    error that ended it. Pages poll a job's progress_percent; `is_active` keeps a second one of
    the same kind from starting."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    ACTIVE = (Status.QUEUED, Status.RUNNING)
    # What doow.jobs needs to tell a lost worker from a live one (job_lost, job_claim).
    RUNNING = (Status.RUNNING,)
    HEARTBEAT = "heartbeat_at"
    CLAIMS = "claims"

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    total = models.PositiveBigIntegerField(default=0)
    done = models.PositiveBigIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    claims = models.PositiveIntegerField(
        default=0, db_default=0, help_text="Times a worker started it (a redelivered message restarts it)."
    )
    # Null for a job an older release claimed (it does not know the column): it counts as lost
    # only after doow.jobs.NO_HEARTBEAT_PATIENCE.
    heartbeat_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When its worker last wrote progress: a running job silent for long is lost (HEARTBEAT_STALE).",
    )

    class Meta:
        abstract = True
        ordering = ["-created_at", "-pk"]

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def progress_percent(self) -> int:
        return int(100 * self.done / self.total) if self.total else (100 if self.status == self.Status.DONE else 0)


class ClaimedByMessage(models.Model):
    """The task message whose run claimed the job last. That same message delivered again while
    the job runs means its worker process died: Celery puts a killed pool child's message back
    on the queue at once (acks_late, reject_on_worker_lost), and it claims the job again at once
    instead of waiting HEARTBEAT_STALE for beat (doow.jobs.job_claim)."""

    claim_message = models.CharField(
        max_length=64,
        blank=True,
        default="",
        db_default="",
        help_text="The task message that claimed it last (empty: a command run in the foreground).",
    )

    class Meta:
        abstract = True


class ReattributionJob(BackgroundJob, ClaimedByMessage):
    """A background re-attribution of a workspace's usage after its rules changed."""

    workspace = models.ForeignKey("accounts.Workspace", on_delete=models.CASCADE, related_name="reattribution_jobs")

    def __str__(self) -> str:
        return f"Re-attribution #{self.pk} ({self.status})"


class RollupRebuildJob(BackgroundJob, ClaimedByMessage):
    """A background rebuild of a workspace's daily rollups (after its time zone changed, or
    asked for by `manage.py rebuild_rollups`), one integration at a time, with progress."""

    workspace = models.ForeignKey("accounts.Workspace", on_delete=models.CASCADE, related_name="rollup_rebuild_jobs")
    time_zone = models.CharField(max_length=64, help_text="The zone the rollups are being rebuilt in.")
    total = models.PositiveIntegerField(default=0, help_text="Integrations to rebuild.")
    done = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Rollup rebuild #{self.pk} ({self.time_zone}, {self.status})"


class UsageImport(ClaimedByMessage):
    """A usage CSV uploaded for import, and how its import went.

    The file waits here, in the database every worker reads (never on the web host's disk),
    until a worker has checked and stored it; its bytes are dropped when the import ends.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        CHECKING = "checking", "Checking"
        STORING = "storing", "Storing"
        DONE = "done", "Imported"
        FAILED = "failed", "Rejected"

    ACTIVE = (Status.QUEUED, Status.CHECKING, Status.STORING)
    # What doow.jobs needs to tell a lost worker from a live one (job_lost, job_claim): the
    # heartbeat is updated_at, each claim counts an attempt.
    RUNNING = (Status.CHECKING, Status.STORING)
    HEARTBEAT = "updated_at"
    CLAIMS = "attempts"

    workspace = models.ForeignKey("accounts.Workspace", on_delete=models.CASCADE, related_name="usage_imports")
    integration = models.ForeignKey("integrations.Integration", on_delete=models.CASCADE, related_name="usage_imports")
    created_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="usage_imports"
    )
    source = models.CharField(max_length=200, blank=True, help_text="The uploaded file's name.")
    requested_format = models.CharField(max_length=16, default="auto")
    format = models.CharField(max_length=16, blank=True, help_text="The format the header showed.")
    data = models.BinaryField(blank=True, default=b"", editable=False)
    size = models.PositiveBigIntegerField(default=0, help_text="Bytes uploaded.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    lines_total = models.PositiveIntegerField(
        default=0, help_text="Data lines in the file (an estimate until checked)."
    )
    lines_checked = models.PositiveIntegerField(default=0)
    rows_prepared = models.PositiveIntegerField(default=0)
    rows = models.PositiveIntegerField(default=0, help_text="Rows stored.")
    first_start = models.DateTimeField(null=True, blank=True)
    last_end = models.DateTimeField(null=True, blank=True)
    problems = models.JSONField(default=list, blank=True, help_text="The first problems: [line or null, message].")
    problems_total = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, help_text="Why the import stopped, when it was not the file's fault.")
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(null=True, blank=True, help_text="Last progress a worker reported.")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["integration", "-created_at"]), models.Index(fields=["status", "created_at"])]

    def __str__(self) -> str:
        return f"Import #{self.pk} of {self.source or 'a CSV file'} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def progress_percent(self) -> int:
        if self.status == self.Status.CHECKING and self.lines_total:
            return min(100, int(100 * self.lines_checked / self.lines_total))
        if self.status == self.Status.STORING and self.rows:
            return min(100, int(100 * self.rows_prepared / self.rows))
        return 100 if self.status == self.Status.DONE else 0

    @property
    def problems_unlisted(self) -> int:
        return max(0, self.problems_total - len(self.problems))


class PriceOverride(models.Model):
    """A workspace's own price: a discount on a provider's list prices, or a unit price for one
    model and metric (a negotiated rate, or a price for a model no list knows). It applies to
    usage from `effective_from` (UTC day) on, so estimates of closed months do not change
    silently; for one provider (discount) or model and metric (unit price) the latest
    effective date not after the usage's day wins."""

    class Kind(models.TextChoices):
        DISCOUNT = "discount", "Discount on a provider"
        UNIT_PRICE = "unit_price", "Unit price for a model"

    workspace = models.ForeignKey("accounts.Workspace", on_delete=models.CASCADE, related_name="price_overrides")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    provider = models.CharField(max_length=64, help_text="Registry slug of the provider.")
    model = models.CharField(max_length=200, blank=True, help_text="The model as stored in usage (unit prices only).")
    metric = models.CharField(max_length=32, blank=True, help_text="The metric priced (unit prices only).")
    discount_percent = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    # USD per 1,000,000 tokens for token metrics, per unit (second, request) otherwise: how
    # providers publish them.
    price = models.DecimalField(max_digits=18, decimal_places=9, null=True, blank=True)
    effective_from = models.DateField()
    note = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["provider", "model", "metric", "-effective_from", "pk"]
        indexes = [models.Index(fields=["workspace", "provider"])]

    def __str__(self) -> str:
        if self.kind == self.Kind.DISCOUNT:
            return f"{self.provider}: {self.discount_percent}% off from {self.effective_from}"
        return f"{self.provider} {self.model} {self.metric}: ${self.price} from {self.effective_from}"


class PricingRecomputeJob(BackgroundJob):
    """A background recomputation of a workspace's estimated_cost rows after its prices changed."""

    workspace = models.ForeignKey("accounts.Workspace", on_delete=models.CASCADE, related_name="pricing_jobs")
    total = models.PositiveBigIntegerField(default=0, help_text="Usage rows to price.")
    written = models.PositiveBigIntegerField(default=0, help_text="Estimates written.")
    # Both default to "" in the database too, so processes of the release before (which do not
    # know the columns) can still insert jobs during a rolling deploy.
    price_data = models.CharField(
        max_length=80,
        blank=True,
        default="",
        db_default="",
        help_text="The price data (rules, genai-prices, table digest) the job priced with; set once it is done.",
    )
    requested_price_data = models.CharField(
        max_length=80,
        blank=True,
        default="",
        db_default="",
        help_text="The price data installed where the job was requested (beat does not request it twice).",
    )
    attempt = models.PositiveSmallIntegerField(
        default=1, db_default=1, help_text="Beat's attempt at this price data (it retries a failed job a few times)."
    )
    sends = models.PositiveIntegerField(
        default=0, db_default=0, help_text="Task messages sent for the job (a stale queued job is sent again)."
    )
    sent_at = models.DateTimeField(null=True, blank=True)
    claimed_send = models.PositiveIntegerField(
        default=0, db_default=0, help_text="The message that started it: only its redelivery restarts it."
    )
    rerun = models.BooleanField(
        default=False, db_default=False, help_text="Prices changed while it ran: it runs again once it ends."
    )

    class Meta(BackgroundJob.Meta):
        constraints = [
            # One active recompute per workspace: a second request reuses (or re-runs) it.
            models.UniqueConstraint(
                fields=["workspace"],
                condition=models.Q(status__in=("queued", "running")),
                name="pricing_job_one_active_per_workspace",
            )
        ]

    def __str__(self) -> str:
        return f"Price recomputation #{self.pk} ({self.status})"
