"""Async completion state: tracked actions, early callbacks, tracker
processes, and how each completion came back (latency rows)."""

from django.db import models

from workflows.models import ActionExecution


class TrackedAction(models.Model):
    """One async action the results tracker polls. The work list lives here,
    never only in memory, so any tracker process can pick it up after a restart.

    A tracker leases the rows it polls (``claimed_by``, ``claimed_until``) and
    keeps their schedule in memory: while a row is leased its
    ``next_query_at``, ``queries`` and ``last_query_at`` are those of the
    claim (or of its last query error) and are written back when the lease
    is released (tracker.runner)."""

    MODES = [("poll", "poll"), ("hybrid", "hybrid")]

    action = models.OneToOneField(ActionExecution, on_delete=models.CASCADE, related_name="tracking")
    mode = models.CharField(max_length=10, choices=MODES, default="poll")
    query_interval = models.FloatField(null=True, blank=True, help_text="Seconds; empty = TRACKER['QUERY_INTERVAL'].")
    next_query_at = models.DateTimeField(db_index=True)
    scheduled = models.BooleanField(
        default=True,
        help_text="False until a tracker sets the first query time, from its own QUERY_INTERVAL "
        "or HYBRID_GRACE (so those need setting only where the tracker runs).",
    )
    grace = models.FloatField(
        null=True, blank=True, help_text="Hybrid: seconds before polling starts; empty = TRACKER['HYBRID_GRACE']."
    )
    claimed_by = models.CharField(max_length=100, null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    queries = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0, help_text="Consecutive query errors (drives the backoff).")
    last_error = models.TextField(null=True, blank=True)
    last_query_at = models.DateTimeField(null=True, blank=True)
    added_by = models.CharField(max_length=100, default="engine", help_text="engine, track_result, operator")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["next_query_at"]
        indexes = [
            # What a claim scans: the rows nobody leases, by due time. Leased
            # rows keep a stale next_query_at and must not slow it down.
            models.Index(
                fields=["next_query_at"], condition=models.Q(claimed_by__isnull=True), name="tracker_tracked_free_due"
            ),
        ]

    def __str__(self):
        return f"{self.mode} {self.action_id}"


class CallbackInbox(models.Model):
    """A signed callback that could not be applied when it arrived (its action
    was not visible yet, or it lost a race); applied exactly once later."""

    action_id = models.CharField(max_length=36, db_index=True)
    attempt = models.PositiveIntegerField()
    state = models.CharField(max_length=20)
    output = models.JSONField(null=True, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    applied_at = models.DateTimeField(null=True, blank=True, db_index=True)
    outcome = models.TextField(null=True, blank=True)

    class Meta:
        ordering = ["received_at"]
        verbose_name_plural = "callback inboxes"


class TrackerProcess(models.Model):
    """Heartbeat and counters of one running tracker, for stats and for
    knowing whether any tracker is alive."""

    name = models.CharField(max_length=100, unique=True)
    started_at = models.DateTimeField()
    last_seen = models.DateTimeField()
    query_interval = models.FloatField()
    thread_pool_size = models.PositiveIntegerField()
    queries = models.PositiveBigIntegerField(default=0)
    completions = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveBigIntegerField(default=0)
    periodic_errors = models.PositiveBigIntegerField(
        default=0,
        help_text="Periodic hooks that raised, and sweep items (e.g. overdue actions) that could not be handled.",
    )
    held = models.PositiveIntegerField(default=0, help_text="Tracked actions it leases (polls) now.")
    lag_s = models.FloatField(default=0.0, help_text="Seconds its most overdue leased action is behind schedule.")
    periodic_cpu_s = models.FloatField(
        default=0.0,
        help_text="CPU seconds its periodic hooks (the engine's sweeps, the inbox, the roll-up) used so far.",
    )
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "tracker processes"

    def __str__(self):
        return self.name


class Completion(models.Model):
    """One async action's result coming back: how (``mode``) and when. Raw
    rows are rolled up into CompletionBucket by the tracker's periodic hook and
    kept COMPLETIONS['RAW_DAYS'] for inspection; the pages read the buckets."""

    action_id = models.CharField(max_length=36)
    action_name = models.CharField(max_length=255)
    execution_id = models.CharField(max_length=36, null=True, blank=True)
    mode = models.CharField(
        max_length=20,
        help_text="callback, poll, hybrid-callback, hybrid-poll, by hand, approval, timeout or failed to start",
    )
    door = models.CharField(
        max_length=20,
        default="other",
        help_text="Where it came in: api, signed-url, notification, inbox, tracker, sweep, timer, "
        "operator, approval-page, approval-api, approval-expiry, worker (see "
        "workflows.completions).",
    )
    outside_done_at = models.DateTimeField(
        null=True, blank=True, help_text="When the outside system says it finished, if it says."
    )
    detected_at = models.DateTimeField(db_index=True, help_text="When Gust received the callback or poll answer.")
    recorded_at = models.DateTimeField(help_text="The completing transaction, in which the next task starts.")
    polls = models.PositiveIntegerField(null=True, blank=True)
    interval = models.FloatField(null=True, blank=True, help_text="Polled: the query interval in seconds.")
    statements = models.PositiveIntegerField(
        null=True, blank=True, help_text="SQL statements the door spent up to this row."
    )
    rolled_up = models.BooleanField(default=False)

    class Meta:
        indexes = [models.Index(fields=["rolled_up", "id"], name="tracker_completion_pending")]

    def __str__(self):
        return f"{self.mode} {self.action_name} {self.action_id}"


class CompletionBucket(models.Model):
    """Completions of one minute (``span`` 1) or one hour (``span`` 60), mode
    and action name: counts and log-scale histograms
    (tracker.latency.BINS_PER_DECADE), so the live figures stay fast with
    millions of completions."""

    minute = models.DateTimeField(db_index=True, help_text="The start of the minute or hour.")
    span = models.PositiveSmallIntegerField(default=1, help_text="Minutes: 1 or 60.")
    mode = models.CharField(max_length=20)
    action_name = models.CharField(max_length=255)
    count = models.PositiveIntegerField(default=0)
    polls = models.PositiveBigIntegerField(default=0)
    polled = models.PositiveIntegerField(default=0, help_text="Completions whose poll count is known.")
    interval_sum = models.FloatField(default=0.0, help_text="Sum of the query intervals of the polled ones.")
    statements = models.PositiveBigIntegerField(default=0)
    counted = models.PositiveIntegerField(default=0, help_text="Completions whose SQL statements were counted.")
    detect_hist = models.JSONField(default=dict, help_text='"outside done -> detected" ms: {bin: count}')
    next_hist = models.JSONField(default=dict, help_text='"detected -> next task running" ms: {bin: count}')

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["minute", "span", "mode", "action_name"], name="tracker_completionbucket_span_key"
            )
        ]

    def __str__(self):
        return f"{self.minute:%Y-%m-%d %H:%M} +{self.span}m {self.mode} {self.action_name}: {self.count}"


class BenchmarkRun(models.Model):
    """One ``compare_completion`` run started from the comparison page: a
    worker job runs the command and writes its progress here, so the page
    shows it across reloads. At most one is queued or running at a time
    (the constraint), see ``tracker.benchmarks``."""

    class State(models.TextChoices):
        QUEUED = "QUEUED"
        RUNNING = "RUNNING"
        SUCCESS = "SUCCESS"
        ERROR = "ERROR"

    ACTIVE = (State.QUEUED, State.RUNNING)

    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    slot = models.CharField(max_length=20, default="compare", help_text="One active run per slot.")
    requested_by = models.CharField(max_length=150)
    args = models.JSONField(default=list, help_text="compare_completion's arguments")
    progress = models.FloatField(default=0.0, help_text="0 to 1")
    step = models.CharField(max_length=300, blank=True, default="")
    log_tail = models.TextField(blank=True, default="")
    output = models.CharField(max_length=500, blank=True, default="", help_text="The JSON file it writes.")
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True, help_text="Its heartbeat while it runs.")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["slot"],
                condition=models.Q(state__in=["QUEUED", "RUNNING"]),
                name="tracker_benchmarkrun_one_active",
            )
        ]
        permissions = [("run_benchmark", "Can run the completion benchmark from the comparison page")]

    def __str__(self):
        return f"compare_completion {self.id} {self.state}"
