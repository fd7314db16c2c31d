"""A deterministic simulated Databricks workspace: ground truth first, API views derived from it.

The generator decides what *really* happened (every VM of every cluster: when it was requested, when it
became ready, when it went away, spot or on-demand; every task run on every cluster), and only then
derives what the Databricks APIs show: Jobs API run objects, clusters/get details, cluster events, the
bill. The cost engine later sees only the API views; tests compare its estimate with the truth.

Anchored to the calendar: a day's content depends only on the seed, the scale (and the other settings of
the config but its window) and the date, never on which window was generated, so a day materialized
today, next week or within another ``start``/``days`` gives the same rows. The workspace's long-lived
objects (instance pools, shared clusters, jobs, serving endpoints) are drawn from the seed alone and were
created at ``ANCHOR``; each day's runs, shared-cluster sessions and serving traffic come from RNG streams
of their own, seeded by a stable hash of (seed, scale, date, purpose); run ids are the date's id block
plus a per-day counter. A window's world is the union of its days plus the day before (whose runs and
sessions cross midnight into the first day) and the shared-cluster sessions of the day after (tasks of
the last day's runs may use them): the days of the window are complete, the two around it partial.

Determinism: every choice is drawn from those streams in a fixed order and every collection is iterated
in sorted order, so the same config yields byte-identical payloads.

Times are epoch milliseconds (UTC) like the REST APIs.
"""

import dataclasses
import datetime as dt
import hashlib
import random
from dataclasses import dataclass, field
from functools import lru_cache

from cost_assets.simulation import planted
from cost_assets.simulation.epoch import ANCHOR

# The world counts in epoch ms; these short names are also imported by truth, views and the mock server.
from cost_assets.timeutil import DAY_MS as DAY
from cost_assets.timeutil import HOUR_MS as HOUR
from cost_assets.timeutil import MINUTE_MS as MINUTE
from cost_assets.timeutil import day_start_ms, from_ms

# When the workspace and its long-lived objects were created (nothing happens before; ``epoch.ANCHOR``),
# and the always-on shared cluster started; it runs until FOREVER, beyond any window anyone asks for.
FOREVER = dt.date(2100, 1, 1)
# Run and task-run ids of a day are the date's block plus a per-day counter (ids never depend on which
# days were generated before); a large day uses well under a million of its block.
RUN_IDS_PER_DAY = 10_000_000
ALWAYS_ON = 1  # the index of the always-on shared cluster (worlds with at least two shared clusters)

TEAMS = ["data-eng", "analytics", "ml", "finance", "growth"]
TENANTS = ["acme", "globex", "initech", "o'reilly"]
PROJECTS = ["ingest", "reporting", "forecast", "churn", "search"]
USERS = ["ana@example.com", "bo@example.com", "chen@example.com", "dara@example.com"]

# Node types the simulated workspace uses, per cloud (all are in the bundled price sheet).
NODE_TYPES = {
    "AZURE": ["Standard_DS3_v2", "Standard_DS4_v2", "Standard_E8ds_v4", "Standard_D8ds_v5", "Standard_F4s_v2"],
    "AWS": ["m5.xlarge", "m5.2xlarge", "i3.xlarge", "r5.xlarge", "c5.2xlarge"],
}
AVAILABILITY = {
    "AZURE": ("ON_DEMAND_AZURE", "SPOT_AZURE", "SPOT_WITH_FALLBACK_AZURE"),
    "AWS": ("ON_DEMAND", "SPOT", "SPOT_WITH_FALLBACK"),
}


@dataclass(frozen=True)
class Scale:
    """How big a world is; presets in SCALES, or build one for benchmarks."""

    jobs: int
    runs_per_day: int
    shared_clusters: int
    pools: int
    endpoints: int
    requests_per_day: int


SCALES = {
    "tiny": Scale(jobs=4, runs_per_day=6, shared_clusters=1, pools=1, endpoints=1, requests_per_day=24),
    "small": Scale(jobs=24, runs_per_day=48, shared_clusters=3, pools=1, endpoints=2, requests_per_day=400),
    "medium": Scale(jobs=200, runs_per_day=600, shared_clusters=12, pools=3, endpoints=3, requests_per_day=4000),
    "large": Scale(jobs=2000, runs_per_day=8000, shared_clusters=60, pools=8, endpoints=6, requests_per_day=40000),
}


@dataclass(frozen=True)
class WorldConfig:
    """Everything that decides a world. Same config, same bytes. ``start``/``days`` only choose which days
    the world holds; the other fields decide what happens on each of them."""

    seed: int = 7
    scale: str | Scale = "small"
    start: dt.date = dt.date(2026, 1, 1)
    days: int = 7
    cloud: str = "AZURE"
    tier: str = "PREMIUM"
    workspace_id: str = "1234567890123456"
    account_id: str = "7f4c6a2e-0d1b-4e8a-9c33-5b2f1e0a9d77"
    # Imperfections a real workspace has: the bill is corrected later for this share of cluster-hours,
    # and added workers become ready up to this many seconds before UPSIZE_COMPLETED is logged.
    correction_rate: float = 0.03
    ready_jitter_s: int = 45
    spot_eviction_rate: float = 0.15
    # The planted cost anomalies of ``simulation/planted.py`` (a runaway job, a cluster left running over a
    # weekend, a tenant's serving spike); the simulated workspace resource turns them on.
    anomalies: bool = False
    # Added to every run id: the workspaces of a simulated account (:func:`account_member`) each have a
    # block of their own, as their run ids never meet.
    run_id_base: int = 0

    @property
    def scale_spec(self) -> Scale:
        return self.scale if isinstance(self.scale, Scale) else SCALES[self.scale]

    @property
    def start_ms(self) -> int:
        return day_start_ms(self.start)

    @property
    def end_ms(self) -> int:
        return day_start_ms(self.start + dt.timedelta(days=self.days))

    @property
    def span_ms(self) -> tuple[int, int]:
        """[from, to) of the generated content: the day before the window to the day after it. Ground truth
        and the bill stop at its edges (the always-on cluster runs far beyond them)."""
        return self.start_ms - DAY, self.end_ms + DAY


@dataclass
class Node:
    """One VM: requested at ``provisioned``, ready (billing DBUs) from ``ready`` until ``released``."""

    role: str  # "driver" | "worker"
    node_type: str
    spot: bool
    provisioned: int
    ready: int
    released: int


@dataclass
class Session:
    """One life of a cluster, from CREATING/STARTING to TERMINATING."""

    start: int
    running: int
    end: int
    nodes: list[Node] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)


@dataclass
class Cluster:
    cluster_id: str
    name: str
    source: str  # JOB | UI | API
    node_type: str
    driver_node_type: str
    photon: bool
    single_node: bool
    num_workers: int | None
    autoscale: tuple[int, int] | None
    availability: str
    first_on_demand: int
    pool_id: str | None
    custom_tags: dict[str, str]
    creator: str
    sessions: list[Session] = field(default_factory=list)
    # A long-lived all-purpose cluster's creation (clusters/get start_time) when it predates its sessions
    # in the world; None: created with its first session.
    created: int | None = None

    @property
    def workload(self) -> str:
        return "jobs" if self.source == "JOB" else "all_purpose"


@dataclass
class TaskRun:
    task_key: str
    task_run_id: int
    cluster_id: str
    job_cluster_key: str | None
    start: int
    end: int
    attempt: int
    result: str
    depends_on: list[str] = field(default_factory=list)


@dataclass
class JobRun:
    job_id: int
    run_id: int
    start: int
    end: int
    trigger: str
    tasks: list[TaskRun]
    job_clusters: dict[str, str]  # job_cluster_key -> cluster_id (last cluster used)
    repairs: list[tuple[int, int, int]] = field(default_factory=list)  # (repair id, start, end)


@dataclass
class Job:
    job_id: int
    name: str
    tags: dict[str, str]
    creator: str
    created: int
    mode: str  # "job_cluster" | "shared" | "mixed"
    tasks: list[str]
    cluster_spec: dict
    shared_cluster_id: str | None


@dataclass
class Pool:
    pool_id: str
    name: str
    node_type: str
    min_idle: int
    custom_tags: dict[str, str]


@dataclass
class Endpoint:
    name: str
    endpoint_id: str
    served_entity_id: str
    entity_name: str
    dbu_per_million_tokens: float


@dataclass
class World:
    """The generated truth. API payloads and the bill are derived views (see ``api`` and ``billing``)."""

    config: WorldConfig
    jobs: dict[int, Job]
    clusters: dict[str, Cluster]
    runs: list[JobRun]
    pools: dict[str, Pool]
    endpoints: list[Endpoint]
    requests: list[dict]


def stable_id(*parts: object, length: int = 8) -> str:
    """A short hex id that depends only on ``parts`` (never on process state)."""
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:length]


def cluster_id_for(created_ms: int, *parts: object) -> str:
    """Databricks cluster ids look like ``MMDD-HHMMSS-xxxxxxxx`` (creation time + random suffix)."""
    t = from_ms(created_ms)
    return f"{t:%m%d-%H%M%S}-{stable_id(created_ms, *parts)}"


def _stream(config: WorldConfig, *purpose: object) -> random.Random:
    """An RNG stream of its own for one purpose (and day), from the seed and the scale only: adding,
    dropping or reordering days never shifts another stream's draws."""
    return random.Random(int(stable_id(config.seed, repr(config.scale_spec), *purpose, length=16), 16))


class _Builder:
    """Draws clusters, sessions and runs from one RNG stream, so the order of draws is fixed per stream."""

    def __init__(self, config: WorldConfig, rng: random.Random, first_run_id: int = 0):
        self.cfg = config
        self.rng = rng
        self.scale = config.scale_spec
        self.clusters: dict[str, Cluster] = {}
        self.next_run_id = first_run_id

    # -- ids -------------------------------------------------------------------------------------
    def new_run_id(self) -> int:
        self.next_run_id += self.rng.randint(1, 9)
        return self.next_run_id

    # -- clusters --------------------------------------------------------------------------------
    def cluster_spec(self, pools: list[Pool], shared: bool) -> dict:
        """A random but plausible cluster configuration (the job's new_cluster or a shared cluster)."""
        rng, cloud = self.rng, self.cfg.cloud
        single = (not shared) and rng.random() < 0.1
        pool = pools[rng.randrange(len(pools))] if pools and not single and rng.random() < 0.2 else None
        node = pool.node_type if pool else rng.choice(NODE_TYPES[cloud])
        on_demand, spot, fallback = AVAILABILITY[cloud]
        availability = rng.choices([on_demand, spot, fallback], weights=[4, 1, 5])[0]
        autoscale = None
        num_workers: int | None = 0 if single else rng.randint(1, 6)
        if not single and rng.random() < (0.8 if shared else 0.4):
            lo = rng.randint(1, 3)
            autoscale, num_workers = (lo, lo + rng.randint(2, 6)), None
        return {
            "node_type": node,
            "driver_node_type": node if rng.random() < 0.8 or pool else rng.choice(NODE_TYPES[cloud]),
            "photon": rng.random() < 0.35,
            "single_node": single,
            "num_workers": num_workers,
            "autoscale": autoscale,
            "availability": availability,
            "first_on_demand": 0 if availability == spot else 1,
            "pool_id": pool.pool_id if pool else None,
        }

    def make_cluster(self, spec: dict, cluster_id: str, name: str, source: str, tags: dict, creator: str) -> Cluster:
        c = Cluster(
            cluster_id=cluster_id,
            name=name,
            source=source,
            custom_tags=dict(tags),
            creator=creator,
            node_type=spec["node_type"],
            driver_node_type=spec["driver_node_type"],
            photon=spec["photon"],
            single_node=spec["single_node"],
            num_workers=spec["num_workers"],
            autoscale=spec["autoscale"],
            availability=spec["availability"],
            first_on_demand=spec["first_on_demand"],
            pool_id=spec["pool_id"],
        )
        if c.single_node:
            c.custom_tags["ResourceClass"] = "SingleNode"
        self.clusters[cluster_id] = c
        return c

    def simulate_session(self, c: Cluster, start: int, end: int, first: bool) -> Session:
        """Decide the VMs of one cluster life and derive its events.

        DBUs accrue for ready nodes from RUNNING to TERMINATING; VMs are paid from request to release.
        """
        rng, cfg = self.rng, self.cfg
        spot_avail = c.availability in AVAILABILITY[cfg.cloud][1:]
        fallback = c.availability == AVAILABILITY[cfg.cloud][2]
        setup = rng.randint(20, 50) * 1000 if c.pool_id else rng.randint(150, 330) * 1000
        running = min(start + setup, end - MINUTE)
        s = Session(start=start, running=running, end=end)
        size = (
            {"num_workers": c.num_workers}
            if c.autoscale is None
            else {"autoscale": {"min_workers": c.autoscale[0], "max_workers": c.autoscale[1]}}
        )
        s.events.append(
            _event(c, start, "CREATING" if first else "STARTING", {"cluster_size": size, "user": c.creator})
        )
        if rng.random() < 0.3:
            s.events.append(_event(c, start + (running - start) // 2, "INIT_SCRIPTS_STARTED", {}))
        workers0 = 0 if c.single_node else (c.num_workers if c.autoscale is None else c.autoscale[0])
        # first_on_demand counts the driver first; with 0 the whole cluster follows `availability`.
        s.nodes.append(Node("driver", c.driver_node_type, spot_avail and c.first_on_demand == 0, start, running, end))

        def add_workers(k: int, at: int, ready: int, replacement: bool) -> None:
            for _ in range(k):
                position = sum(1 for n in s.nodes if n.released > at)  # driver is position 0
                spot = spot_avail and position >= c.first_on_demand and not (replacement and fallback)
                s.nodes.append(Node("worker", c.node_type, spot, at, ready, end))

        add_workers(workers0, start, running, False)
        s.events.append(
            _event(c, running, "RUNNING", {"current_num_workers": workers0, "target_num_workers": workers0})
        )
        current, t = workers0, running
        # Autoscaling and spot evictions while the cluster runs, at least 6 minutes apart.
        while c.autoscale is not None or (spot_avail and not c.single_node):
            t += rng.randint(6, 45) * MINUTE
            if t > end - 8 * MINUTE:
                break
            # Only spot *workers* are evicted here (losing a spot driver ends the cluster, not modelled).
            spots = [n for n in s.nodes if n.role == "worker" and n.spot and n.released > t and n.ready <= t]
            if spots and rng.random() < cfg.spot_eviction_rate:
                lost = spots[: rng.randint(1, min(2, len(spots)))]
                for n in lost:
                    n.released = t
                current -= len(lost)
                s.events.append(
                    _event(
                        c,
                        t,
                        "NODES_LOST",
                        {
                            "current_num_workers": current,
                            "target_num_workers": current + len(lost),
                            "reason": {"code": "SPOT_INSTANCE_TERMINATION", "type": "CLOUD_FAILURE", "parameters": {}},
                        },
                    )
                )
                t = self.upsize(c, s, t + 30_000, current, current + len(lost), add_workers, replacement=True)
                current += len(lost)
                continue
            if c.autoscale is None:
                continue
            target = rng.randint(c.autoscale[0], c.autoscale[1])
            if target > current:
                t = self.upsize(c, s, t, current, target, add_workers, replacement=False)
            elif target < current:
                # Downscale: the newest workers are decommissioned at once.
                alive = [n for n in s.nodes if n.role == "worker" and n.released > t]
                for n in sorted(alive, key=lambda n: (n.provisioned, n.spot))[target:]:
                    n.released = t
                # Logged as Databricks does: RESIZING from the current to the lower target, no completion event.
                s.events.append(
                    _event(
                        c,
                        t,
                        "RESIZING",
                        {
                            "current_num_workers": current,
                            "target_num_workers": target,
                            "cause": "AUTOSCALE",
                            "cluster_size": size,
                        },
                    )
                )
            current = target
        s.events.append(
            _event(
                c,
                end,
                "TERMINATING",
                {
                    "reason": {
                        "code": "JOB_FINISHED" if c.source == "JOB" else "INACTIVITY",
                        "type": "SUCCESS",
                        "parameters": {},
                    }
                },
            )
        )
        return s

    def upsize(self, c: Cluster, s: Session, t: int, current: int, target: int, add_workers, replacement: bool) -> int:
        """RESIZING → new VMs requested at ``t`` → UPSIZE_COMPLETED when the last one is ready."""
        done = t + self.rng.randint(60, 200) * 1000
        s.events.append(
            _event(
                c,
                t,
                "RESIZING",
                {
                    "current_num_workers": current,
                    "target_num_workers": target,
                    "cause": "REPLACE_BAD_NODES" if replacement else "AUTOSCALE",
                },
            )
        )
        jitter = self.rng.randint(0, self.cfg.ready_jitter_s) * 1000
        add_workers(target - current, t, done - jitter, replacement)
        s.events.append(
            _event(c, done, "UPSIZE_COMPLETED", {"current_num_workers": target, "target_num_workers": target})
        )
        return done


def _event(c: Cluster, ts: int, kind: str, details: dict) -> dict:
    return {"cluster_id": c.cluster_id, "timestamp": ts, "type": kind, "details": details}


@dataclass
class _Workspace:
    """The long-lived objects, drawn from the seed alone (no window): pools, shared clusters (only the
    always-on one with its session), jobs and serving endpoints."""

    pools: list[Pool]
    shared: list[Cluster]
    jobs: dict[int, Job]
    endpoints: list[Endpoint]


def _workspace(cfg: WorldConfig) -> _Workspace:
    b = _Builder(cfg, _stream(cfg, "workspace"))
    rng, scale, anchor = b.rng, b.scale, day_start_ms(ANCHOR)
    pools = [
        Pool(
            pool_id=f"{ANCHOR:%m%d}-pool-{stable_id(cfg.seed, 'pool', i)}",
            name=f"pool-{i}",
            node_type=rng.choice(NODE_TYPES[cfg.cloud]),
            min_idle=rng.randint(1, 3),
            custom_tags={"team": "platform", "cost_center": f"cc-90{i}"},
        )
        for i in range(scale.pools)
    ]

    # Shared all-purpose clusters, restarted every day (see _shared_sessions); cluster ALWAYS_ON never is.
    shared: list[Cluster] = []
    for i in range(scale.shared_clusters):
        spec = b.cluster_spec(pools, shared=True)
        if i == ALWAYS_ON:
            # Fixed size and on demand, so it logs nothing between its start and FOREVER: a day's state at
            # 00:00 lies beyond any event look-back and is found by walking back to that start.
            spec.update(
                num_workers=spec["num_workers"] or spec["autoscale"][0],
                autoscale=None,
                availability=AVAILABILITY[cfg.cloud][0],
                first_on_demand=1,
            )
        tags = {"team": TEAMS[i % len(TEAMS)], "cost_center": f"cc-{100 + i}"}
        created = anchor + i * MINUTE
        c = b.make_cluster(
            spec,
            cluster_id_for(created, cfg.seed, "shared", i),
            f"shared-{TEAMS[i % len(TEAMS)]}-{i}",
            rng.choice(["UI", "API"]),
            tags,
            rng.choice(USERS),
        )
        c.created = created
        if i == ALWAYS_ON:
            c.sessions.append(b.simulate_session(c, created, day_start_ms(FOREVER), first=True))
        shared.append(c)

    jobs: dict[int, Job] = {}
    for i in range(scale.jobs):
        job_id = 100_000 + i * 7919 + cfg.seed
        mode = (
            "shared"
            if shared and rng.random() < 0.4
            else ("mixed" if shared and rng.random() < 0.15 else "job_cluster")
        )
        tags = {
            "team": rng.choice(TEAMS),
            "tenant": rng.choice(TENANTS),
            "project": rng.choice(PROJECTS),
            "cost_center": f"cc-{rng.randint(1, 9) * 100}",
        }
        if rng.random() < 0.1:
            tags = {}  # an untagged job
        n_tasks = rng.choice([1, 1, 2, 3, 4])
        jobs[job_id] = Job(
            job_id=job_id,
            name=f"{rng.choice(PROJECTS)}-{i}",
            tags=tags,
            creator=rng.choice(USERS),
            created=anchor + i * MINUTE,
            mode=mode,
            tasks=[f"task_{k}" for k in range(n_tasks)],
            cluster_spec=b.cluster_spec(pools, shared=False),
            shared_cluster_id=rng.choice(shared).cluster_id if shared else None,
        )

    endpoints = [
        Endpoint(
            name=name,
            endpoint_id=stable_id(cfg.seed, "ep", name, length=32),
            served_entity_id=stable_id(cfg.seed, "se", name, length=32),
            entity_name=model,
            dbu_per_million_tokens=rate,
        )
        for name, model, rate in [
            ("agent-chat", "databricks-meta-llama-3-3-70b-instruct", 14.0),
            ("support-bot", "databricks-claude-sonnet-4", 40.0),
            ("embeddings", "databricks-gte-large-en", 1.5),
        ][: scale.endpoints]
    ]
    return _Workspace(pools=pools, shared=shared, jobs=jobs, endpoints=endpoints)


def _shared_sessions(cfg: WorldConfig, workspace: _Workspace, day: dt.date) -> dict[str, Session]:
    """The day's session of each daily shared cluster: 6-10 h from about 07:00; cluster 0's from about
    16:00, so its session, usage and runs cross midnight. Each day's session is a restart (STARTING) drawn
    from the day's own stream: it never depends on the day before."""
    out: dict[str, Session] = {}
    if day < ANCHOR:
        return out
    for i, c in enumerate(workspace.shared):
        if i == ALWAYS_ON:
            continue
        b = _Builder(cfg, _stream(cfg, "session", i, day))
        start = day_start_ms(day) + (16 if i == 0 else 7) * HOUR + b.rng.randint(0, 90) * MINUTE
        end = start + b.rng.randint(6 * 60, 10 * 60) * MINUTE
        out[c.cluster_id] = b.simulate_session(c, start, end, first=False)
    return out


def generate_world(config: WorldConfig | None = None) -> World:
    """Generate the world of a window: the workspace, and the content of each day around the window."""
    cfg = config or WorldConfig()
    workspace = _workspace(cfg)
    clusters = {c.cluster_id: c for c in workspace.shared}
    # Shared sessions from two days before the window (runs of the day before may use them) to the day after.
    days = [cfg.start + dt.timedelta(days=d) for d in range(-2, cfg.days + 1)]
    sessions = {day: _shared_sessions(cfg, workspace, day) for day in days}
    for day in sorted(sessions):
        for cluster_id, session in sessions[day].items():
            clusters[cluster_id].sessions.append(session)

    runs: list[JobRun] = []
    for d in range(-1, cfg.days):
        day = cfg.start + dt.timedelta(days=d)
        # The sessions a run of the day may use: the day before's to the day after's, and the always-on one.
        near = {
            cid: [s for k in (-1, 0, 1) if (s := sessions[day + dt.timedelta(days=k)].get(cid))]
            for cid in sessions[day]
        }
        near |= {c.cluster_id: c.sessions for c in workspace.shared[ALWAYS_ON : ALWAYS_ON + 1]}
        b = _Builder(cfg, _stream(cfg, "runs", day), first_run_id=cfg.run_id_base + day.toordinal() * RUN_IDS_PER_DAY)
        runs.extend(_day_runs(b, workspace, day, near))
        clusters.update(b.clusters)
        if cfg.anomalies and planted.is_runaway_day(day):
            b = _Builder(
                cfg, _stream(cfg, "planted-runaway", day), first_run_id=cfg.run_id_base + _planted_run_ids(day)
            )
            runs.append(_runaway_run(b, runaway_job(workspace), day))
            clusters.update(b.clusters)
    if cfg.anomalies:
        clusters.update({c.cluster_id: c for c in _weekend_clusters(cfg)})
    runs.sort(key=lambda r: (r.start, r.run_id))

    requests = [
        r
        for d in range(cfg.days)
        for r in _serving_requests(cfg, workspace.endpoints, cfg.start + dt.timedelta(days=d))
    ]
    if cfg.anomalies:
        requests += [
            r
            for d in range(cfg.days)
            for r in _spike_requests(cfg, workspace.endpoints, cfg.start + dt.timedelta(days=d))
        ]
    requests.sort(key=lambda r: (r["request_time"], r["databricks_request_id"]))
    return World(
        config=cfg,
        jobs=workspace.jobs,
        clusters=clusters,
        runs=runs,
        pools={p.pool_id: p for p in workspace.pools},
        endpoints=workspace.endpoints,
        requests=requests,
    )


@lru_cache(maxsize=4)
def world_for(config: WorldConfig) -> World:
    """Generate once per config (generation is deterministic, so caching is safe); the recent worlds only,
    since the simulated resources ask for a new window for every set of partitions. Four: a simulated
    account cycles through its members' worlds every day, so a bigger cache only keeps more worlds in memory
    (20 workspaces × 30 days peaked at 2,067 MB with 16, 1,891 MB with 4; benchmarks/ACCOUNT.md)."""
    return generate_world(config)


def _day_runs(b: _Builder, workspace: _Workspace, day: dt.date, near: dict[str, list[Session]]) -> list[JobRun]:
    """The runs started on ``day`` (10 % of them late in the evening, so they cross midnight)."""
    rng, day0 = b.rng, day_start_ms(day)
    job_ids = sorted(workspace.jobs)
    runs: list[JobRun] = []
    if day < ANCHOR:
        return runs
    for _ in range(b.scale.runs_per_day):
        job = workspace.jobs[rng.choice(job_ids)]
        start = (
            day0
            + (rng.randint(22 * 60, 23 * 60 + 40) if rng.random() < 0.1 else rng.randint(0, 22 * 60)) * MINUTE
            + rng.randint(0, 59_999)
        )
        run = _simulate_run(b, job, start, near.get(job.shared_cluster_id, []), day0 + DAY)
        if run is not None:
            runs.append(run)
    return runs


def _simulate_run(b: _Builder, job: Job, start: int, shared_sessions: list[Session], day_end: int) -> JobRun | None:
    """One job run: its tasks in order (some in parallel), retries, job clusters and sometimes a repair.

    ``shared_sessions``: the sessions of the job's shared cluster around the run's day. A run on a shared
    cluster starts in a session that began before ``day_end``, so it starts on the day it was drawn for."""
    rng = b.rng
    run_id = b.new_run_id()
    tasks: list[TaskRun] = []
    job_clusters: dict[str, str] = {}
    uses_job_cluster = job.mode in ("job_cluster", "mixed")
    session = None
    if job.mode == "shared":
        # A run on a shared cluster only starts while the cluster is up: move it into a session.
        session = next(
            (s for s in shared_sessions if s.start < day_end and s.end - 40 * MINUTE > max(start, s.running)), None
        )
        if session is None:
            return None
        start = max(start, session.running + rng.randint(1, 20) * MINUTE)
    durations = [rng.randint(4, 70) * MINUTE + rng.randint(0, 59_999) for _ in job.tasks]
    cluster_ready = start + (rng.randint(150, 330) * 1000 if uses_job_cluster else 2000)
    t = cluster_ready
    plan: list[tuple[str, int, int, list[str]]] = []
    for k, key in enumerate(job.tasks):
        parallel = k >= 2 and rng.random() < 0.5  # runs beside the previous task, after the same parent
        t0 = plan[-1][1] if parallel else t
        t1 = t0 + durations[k]
        deps = [plan[-1][3][0] if parallel and plan[-1][3] else job.tasks[k - 1]] if k else []
        plan.append((key, t0, t1, deps))
        t = max(t, t1) + rng.randint(2, 15) * 1000
    if session is not None and t > session.end - MINUTE:
        return None
    # A job cluster's tear-down (cleanup) ends the run, 20-119 s after its last task: now and then after
    # midnight, on a day without its tasks.
    end = t + rng.randint(20, 119) * 1000 if uses_job_cluster else t
    job_cluster = None
    if uses_job_cluster:
        cid = cluster_id_for(start, b.cfg.seed, job.job_id, run_id)
        job_cluster = b.make_cluster(
            job.cluster_spec, cid, f"job-{job.job_id}-run-{run_id}", "JOB", job.tags, job.creator
        )
        job_clusters["main"] = cid
    for k, (key, t0, t1, deps) in enumerate(plan):
        on_shared = job.mode == "shared" or (
            job.mode == "mixed"
            and k % 2 == 1
            and any(s.running <= t0 and t1 + 2 * MINUTE <= s.end for s in shared_sessions)
        )
        cid = job.shared_cluster_id if on_shared else job_cluster.cluster_id
        failed = rng.random() < 0.06
        tasks.append(
            TaskRun(
                key,
                b.new_run_id(),
                cid,
                None if on_shared else "main",
                t0,
                t1,
                0,
                "FAILED" if failed else "SUCCESS",
                deps,
            )
        )
        if failed and t1 + 3 * MINUTE < end:
            # A retry on the same cluster, inside the run (the cluster is still up).
            r0 = t1 + rng.randint(20, 60) * 1000
            r1 = min(r0 + durations[k] // 2, end - 1000)
            if r1 > r0:
                tasks.append(
                    TaskRun(key, b.new_run_id(), cid, None if on_shared else "main", r0, r1, 1, "SUCCESS", deps)
                )
    if job_cluster is not None:
        job_cluster.sessions.append(b.simulate_session(job_cluster, start, end, first=True))
    run = JobRun(
        job_id=job.job_id,
        run_id=run_id,
        start=start,
        end=end,
        trigger="PERIODIC",
        tasks=tasks,
        job_clusters=job_clusters,
    )
    if job_cluster is not None and any(tr.result == "FAILED" for tr in tasks) and rng.random() < 0.4:
        # A repair: the failed tasks run again later on a fresh job cluster with the same key.
        r_start = end + rng.randint(10, 40) * MINUTE
        cid = cluster_id_for(r_start, b.cfg.seed, job.job_id, run_id, "repair")
        rc = b.make_cluster(job.cluster_spec, cid, f"job-{job.job_id}-run-{run_id}", "JOB", job.tags, job.creator)
        t = r_start + rng.randint(150, 330) * 1000
        for tr in [tr for tr in tasks if tr.result == "FAILED" and tr.attempt == 0]:
            t1 = t + rng.randint(4, 30) * MINUTE
            tasks.append(TaskRun(tr.task_key, b.new_run_id(), cid, "main", t, t1, 0, "SUCCESS", tr.depends_on))
            t = t1 + 5000
        rc.sessions.append(b.simulate_session(rc, r_start, t, first=True))
        run.repairs.append((b.new_run_id(), r_start, t))
        run.end = t
        run.job_clusters["main"] = cid
    return run


def _serving_requests(cfg: WorldConfig, endpoints: list[Endpoint], day: dt.date) -> list[dict]:
    """The day's model-serving requests with token counts and usage_context tags (tenant, agent, user)."""
    rng = _stream(cfg, "serving", day)
    out: list[dict] = []
    if not endpoints or day < ANCHOR:
        return out
    day0 = day_start_ms(day)
    for i in range(cfg.scale_spec.requests_per_day):
        ep = endpoints[rng.randrange(len(endpoints))]
        t = day0 + rng.randint(0, DAY - 1)
        context = {
            "tenant": rng.choice(TENANTS),
            "agent": rng.choice(["triage", "writer", "retriever"]),
            "user": rng.choice(USERS),
        }
        if rng.random() < 0.05:
            context.pop("tenant")
        embeddings = ep.entity_name.endswith("-en")
        out.append(
            {
                "workspace_id": cfg.workspace_id,
                "account_id": cfg.account_id,
                "databricks_request_id": stable_id(cfg.seed, "req", day.isoformat(), i, length=32),
                "client_request_id": None if rng.random() < 0.5 else f"c-{day:%Y%m%d}-{i}",
                "requester": context["user"],
                "status_code": 200 if rng.random() > 0.02 else 429,
                "request_time": t,
                "endpoint_name": ep.name,
                "served_entity_id": ep.served_entity_id,
                "entity_name": ep.entity_name,
                "input_token_count": rng.randint(20, 4000),
                "output_token_count": 0 if embeddings else rng.randint(10, 1500),
                "usage_context": context,
            }
        )
    return out


# --- planted anomalies (simulation/planted.py): each from an RNG stream of its own, so the rest of the day
# is drawn exactly as without them ----------------------------------------------------------------------


def _planted_run_ids(day: dt.date) -> int:
    """The planted runs' ids: the top of the date's id block, which the day's ordinary runs never reach."""
    return day.toordinal() * RUN_IDS_PER_DAY + RUN_IDS_PER_DAY - 1_000_000


def runaway_job(workspace: "_Workspace") -> Job:
    """The job that runs away: the first tagged job (by id) that runs on job clusters only."""
    return next(j for _, j in sorted(workspace.jobs.items()) if j.mode == "job_cluster" and j.tags)


def _runaway_run(b: _Builder, job: Job, day: dt.date) -> JobRun:
    """A run of ``job`` stuck in a loop from ~01:00 to ~22:00 on a job cluster of RUNAWAY_WORKERS workers
    (fixed size, on demand: its cost is the hours, not the spot market)."""
    day0 = day_start_ms(day)
    start = day0 + HOUR + b.rng.randint(0, 30) * MINUTE
    end = day0 + 22 * HOUR + b.rng.randint(0, 60) * MINUTE
    spec = dict(
        job.cluster_spec,
        single_node=False,
        num_workers=planted.RUNAWAY_WORKERS,
        autoscale=None,
        availability=AVAILABILITY[b.cfg.cloud][0],
        first_on_demand=1,
        pool_id=None,
    )
    run_id = b.new_run_id()
    cid = cluster_id_for(start, b.cfg.seed, job.job_id, run_id, "runaway")
    c = b.make_cluster(spec, cid, f"job-{job.job_id}-run-{run_id}", "JOB", job.tags, job.creator)
    task = TaskRun(job.tasks[0], b.new_run_id(), cid, "main", start + 4 * MINUTE, end - 2 * MINUTE, 0, "SUCCESS")
    c.sessions.append(b.simulate_session(c, start, end, first=True))
    return JobRun(job.job_id, run_id, start, end, "PERIODIC", [task], {"main": cid})


def weekend_cluster_id(config: WorldConfig, friday: dt.date) -> str:
    """The id of the cluster left running over the planted weekend starting on ``friday``."""
    return cluster_id_for(day_start_ms(friday) + 18 * HOUR, config.seed, "weekend", friday)


def _weekend_clusters(cfg: WorldConfig) -> list[Cluster]:
    """The planted weekend clusters whose life (Friday 18:00 to Monday ~07:00) overlaps the window's span:
    untagged, all-purpose, fixed size, on demand, no run on them (all of it idle)."""
    lo, hi = cfg.span_ms
    first, last = from_ms(lo).date() - dt.timedelta(days=3), from_ms(hi).date()
    fridays = sorted(
        {f for k in range((last - first).days + 1) if (f := planted.weekend_friday(first + dt.timedelta(days=k)))}
    )
    out = []
    for friday in fridays:
        start = day_start_ms(friday) + 18 * HOUR
        b = _Builder(cfg, _stream(cfg, "planted-weekend", friday))
        end = start + 2 * DAY + 13 * HOUR + b.rng.randint(0, 60) * MINUTE
        if end <= lo or start >= hi:
            continue
        node = NODE_TYPES[cfg.cloud][1]
        spec = {
            "node_type": node,
            "driver_node_type": node,
            "photon": False,
            "single_node": False,
            "num_workers": 4,
            "autoscale": None,
            "availability": AVAILABILITY[cfg.cloud][0],
            "first_on_demand": 1,
            "pool_id": None,
        }
        user = b.rng.choice(USERS)
        c = b.make_cluster(spec, weekend_cluster_id(cfg, friday), f"scratch-{user.split('@')[0]}", "UI", {}, user)
        c.sessions.append(b.simulate_session(c, start, end, first=True))
        out.append(c)
    return out


def spike_endpoint(endpoints: list[Endpoint]) -> Endpoint | None:
    """The endpoint the planted spike hits: ``planted.SPIKE_ENDPOINT`` when the world has it, else none."""
    return next((e for e in endpoints if e.name == planted.SPIKE_ENDPOINT), None)


def _spike_requests(cfg: WorldConfig, endpoints: list[Endpoint], day: dt.date) -> list[dict]:
    """The planted tenant's long-context requests on a spike day (from 09:00 to 15:00)."""
    ep = spike_endpoint(endpoints)
    if ep is None or not planted.is_spike_day(day):
        return []
    rng = _stream(cfg, "planted-spike", day)
    day0 = day_start_ms(day)
    out = []
    for i in range(planted.SPIKE_REQUESTS):
        user = rng.choice(USERS)
        out.append(
            {
                "workspace_id": cfg.workspace_id,
                "account_id": cfg.account_id,
                "databricks_request_id": stable_id(cfg.seed, "spike", day.isoformat(), i, length=32),
                "client_request_id": None,
                "requester": user,
                "status_code": 200,
                "request_time": day0 + 9 * HOUR + rng.randint(0, 6 * HOUR - 1),
                "endpoint_name": ep.name,
                "served_entity_id": ep.served_entity_id,
                "entity_name": ep.entity_name,
                "input_token_count": planted.SPIKE_INPUT_TOKENS,
                "output_token_count": planted.SPIKE_OUTPUT_TOKENS,
                "usage_context": {"tenant": planted.SPIKE_TENANT, "agent": "retriever", "user": user},
            }
        )
    return out


def ground_truth_anomalies(config: WorldConfig, days: list[dt.date]) -> list[planted.Planted]:
    """The planted anomalies with a day among ``days`` (none unless ``config.anomalies``); a world without
    the spike's endpoint has no spike."""
    if not config.anomalies:
        return []
    workspace = _workspace(config)
    items = planted.planted(days, runaway_job(workspace).job_id, lambda f: weekend_cluster_id(config, f))
    if spike_endpoint(workspace.endpoints) is None:
        items = [p for p in items if p.kind != "serving_spike"]
    return items


# A simulated account's workspace k (k ≥ 1): its seed, workspace id and run id block are the first one's
# shifted by k steps. Job ids are 100_000 + i·7919 + seed (7919 is prime), so seeds 1000 apart never give
# two workspaces the same job id below 7919 workspaces; run ids are date.toordinal()·RUN_IDS_PER_DAY
# (< 10^13) within a block of 10^13; cluster, pool and endpoint ids hash the seed.
MEMBER_SEED_STEP = 1000
MEMBER_RUN_ID_BLOCK = 10**13


def account_member(config: WorldConfig, index: int) -> WorldConfig:
    """Workspace ``index`` of a simulated account of several: 0 is ``config`` itself (a one-workspace account
    is today's world, byte for byte); every other one is a world of its own (seed), with its own workspace
    id and run id block, so no workspace, job, run, cluster or pool id is shared with another workspace."""
    if index == 0:
        return config
    return dataclasses.replace(
        config,
        seed=config.seed + MEMBER_SEED_STEP * index,
        workspace_id=str(int(config.workspace_id) + index),
        run_id_base=config.run_id_base + MEMBER_RUN_ID_BLOCK * index,
    )


def replace(config: WorldConfig, **changes) -> WorldConfig:
    """A copy of a config with some fields changed (convenience for tests and the CLI)."""
    return dataclasses.replace(config, **changes)
