"""Capacity model: the tracker past one machine, as a discrete-event simulation (stdlib only).

    python bench/capacity.py                       # the tables in bench/capacity.md: 1,000
                                                   # one-minute videos an hour at 1024 on A100s
    python bench/capacity.py --rate 1000 --video-s 60 --model base_plus --compile
    python bench/capacity.py --validate run.json   # replay the 3-replica proof
                                                   # (bench/replicas.py --json run.json) and compare

What is modelled, per replica (one pod = one GPU = one `python -m model`):
- one job on the device at a time, `max_queue` waiting behind it (admission as model/scheduler.py:
  1 + max_queue places; beyond, 503 with Retry-After);
- a job's device time = overhead + frames x seconds per frame; a job is "waiting" from admission
  until the device takes it, and takes `prep_s` (open and probe the upload) before it can start;
- Retry-After as the server computes it (`server`: ceil(EWMA of job time x jobs admitted but not
  yet on the device), or `remaining` (the proposal in capacity.md: the running job's expected
  remaining time);
- the balancer: round-robin (a Kubernetes Service, nginx default), least-request over all replicas
  (nginx least_conn, one gateway instance), power-of-two-choices least-request (Envoy's
  LEAST_REQUEST default, which Istio and Envoy Gateway use), or random;
- clients that honour Retry-After (plus up to 0.5 s of jitter) and retry until served;
- an autoscaler on the product's own gauges (jobs in flight + queue depth, summed, divided by a
  target per replica, as a KEDA prometheus trigger with metricType AverageValue feeds the HPA),
  evaluated every `sync_s` on a metric `lag_s` old, with HPA's 10 % tolerance, a scale-down
  stabilisation window, and a cold start (node + image pull + weights + load + warm-up) before a
  new replica takes traffic; removed replicas are the newest (the ReplicaSet default) and a
  running job gets `grace_s` to finish, else it is cut and its client starts over.

Not modelled: several gateway replicas each counting only their own requests (it makes
least-request behave more like P2C), upload bandwidth, GPU memory limits, node provisioning
beyond a fixed cold start, and a slower device when several jobs share a CPU (the proof's case).
"""

import argparse
import heapq
import json
import math
import random
import statistics
import sys
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Deque, Dict, List, Optional, Sequence

# Published SAM2.1 speed, A100, bfloat16, `vos_optimized=True` (torch.compile), propagation only,
# one object, image_size 1024 (facebookresearch/sam2 README, SAM 2.1 checkpoints table).
PUBLISHED_FPS = {"tiny": 91.2, "small": 84.8, "base_plus": 64.1, "large": 39.5}
# Without compile (the service's default, `--compile` off) SAM2 runs at about half that speed
# (shared/NOTES.md); the model uses half unless told `--compile`.
NO_COMPILE_FACTOR = 0.5

ROUTINGS = ("round_robin", "least_request", "p2c", "random")


@dataclass
class Params:
    replicas: int = 3  # fixed replica count, or the starting count when autoscaling
    max_queue: int = 2  # --max_queue
    seconds_per_frame: float = 1 / (91.2 * NO_COMPILE_FACTOR)
    overhead_s: float = 2.0  # per job: decode of the first frames, init, ZIP tail
    prep_s: float = 0.2  # admission -> the device may take it (open + probe upload)
    routing: str = "least_request"
    retry_after: str = "server"  # "server" (as implemented) or "remaining"
    initial_mean_job_s: float = 10.0  # the server's EWMA starts at 10 s (model/scheduler.py)
    jitter_s: float = 0.5  # clients add up to this much to Retry-After
    # Autoscaling (off when max_replicas <= replicas and min_replicas == replicas).
    autoscale: bool = False
    min_replicas: int = 1
    max_replicas: int = 100
    target_per_replica: float = 1.0  # jobs in flight + queued per replica the autoscaler aims at
    sync_s: float = 15.0  # HPA sync period (kube-controller-manager default)
    lag_s: float = 30.0  # metric age: Prometheus scrape (15 s) + query/KEDA cache
    tolerance: float = 0.1  # HPA default
    scale_down_window_s: float = 300.0  # HPA / KServe default scaleDownStabilizationWindowSeconds
    cold_start_s: float = 120.0  # image pull + weights + model load + warm-up
    grace_s: float = 30.0  # --grace_period (running job's time after SIGTERM)
    victims: str = "newest"  # scale-down removes the newest pods (ReplicaSet default) or
    # "idle" ones first (pod-deletion-cost set by the pods)
    seed: int = 0


@dataclass
class Job:
    id: int
    frames: int
    arrival: float  # first attempt
    client: Optional[int] = None  # closed-loop client, or None for open-loop arrivals
    attempts: int = 0
    rejections: int = 0
    retry_afters: List[float] = field(default_factory=list)
    admitted: Optional[float] = None
    started: Optional[float] = None
    finished: Optional[float] = None
    cut: int = 0  # times a scale-down cut it off
    replica: Optional[int] = None
    eligible: float = 0.0  # admission + prep_s

    @property
    def wait(self) -> float:
        """First attempt -> on the device (retries and queue included)."""
        return self.started - self.arrival

    @property
    def wall(self) -> float:
        return self.finished - self.arrival


class Replica:
    def __init__(self, idx: int, ready_at: float):
        self.idx = idx
        self.ready_at = ready_at
        self.removed_at: Optional[float] = None
        self.running: Optional[Job] = None
        self.run_started = 0.0
        self.run_ends = 0.0
        self.waiting: Deque[Job] = deque()
        self.busy_s = 0.0
        self.mean_job_s = 0.0
        self.draining = False

    def outstanding(self) -> int:
        return len(self.waiting) + (1 if self.running else 0)

    def ready(self, now: float) -> bool:
        return self.ready_at <= now and self.removed_at is None and not self.draining


class Sim:
    """Events on a heap: (time, seq, kind, payload)."""

    def __init__(self, p: Params):
        self.p = p
        self.rng = random.Random(p.seed)
        self.now = 0.0
        self._seq = 0
        self._events: list = []
        self.replicas: List[Replica] = []
        for _ in range(p.replicas):
            self._add_replica(ready_at=0.0)
        self.jobs: List[Job] = []
        self.requests = 0
        self.rejections = 0
        self.rr_next = 0
        self.load_history: List[tuple] = [(0.0, 0)]
        # The HPA seeds its recommendation history with the current count (so it never scales
        # down in its first window).
        self.desired_history: List[tuple] = [(0.0, p.replicas)]
        self.replica_seconds = 0.0
        self.next_job: Dict[int, Callable[[], None]] = {}
        self.max_replicas_seen = p.replicas
        self.unfinished = 0

    # --- plumbing ---------------------------------------------------------------------------
    def at(self, t: float, kind: str, payload=None) -> None:
        self._seq += 1
        heapq.heappush(self._events, (t, self._seq, kind, payload))

    def _add_replica(self, ready_at: float) -> Replica:
        r = Replica(len(self.replicas), ready_at)
        r.mean_job_s = self.p.initial_mean_job_s
        self.replicas.append(r)
        return r

    def live(self) -> List[Replica]:
        return [r for r in self.replicas if r.removed_at is None]

    def job_seconds(self, job: Job) -> float:
        return self.p.overhead_s + job.frames * self.p.seconds_per_frame

    # --- workload ---------------------------------------------------------------------------
    def submit(self, t: float, frames: int, client: Optional[int] = None) -> Job:
        job = Job(id=len(self.jobs), frames=frames, arrival=t, client=client)
        self.jobs.append(job)
        self.unfinished += 1
        self.at(t, "attempt", job)
        return job

    # --- routing ----------------------------------------------------------------------------
    def pick(self) -> Optional[Replica]:
        ready = [r for r in self.replicas if r.ready(self.now)]
        if not ready:
            return None
        routing = self.p.routing
        if routing == "round_robin":
            r = ready[self.rr_next % len(ready)]
            self.rr_next += 1
            return r
        if routing == "random":
            return self.rng.choice(ready)
        if routing == "p2c":
            if len(ready) == 1:
                return ready[0]
            a, b = self.rng.sample(ready, 2)
            if a.outstanding() == b.outstanding():
                return a
            return a if a.outstanding() < b.outstanding() else b
        # least_request: fewest outstanding; ties in turn (nginx's least_conn does round-robin
        # among equals)
        low = min(r.outstanding() for r in ready)
        ties = [r for r in ready if r.outstanding() == low]
        r = ties[self.rr_next % len(ties)]
        self.rr_next += 1
        return r

    # --- the server -------------------------------------------------------------------------
    def retry_after(self, r: Replica) -> float:
        if self.p.retry_after == "remaining":
            left = r.run_ends - self.now if r.running else r.mean_job_s
            return float(max(1, math.ceil(left)))
        not_on_device = len(r.waiting)
        return float(max(1, min(300, math.ceil(r.mean_job_s * max(1, not_on_device)))))

    def attempt(self, job: Job) -> None:
        job.attempts += 1
        self.requests += 1
        r = self.pick()
        if r is None:
            # No ready replica: the gateway answers 503 without Retry-After; clients back off 5 s.
            job.rejections += 1
            self.rejections += 1
            self.at(self.now + 5.0 + self.rng.uniform(0, self.p.jitter_s), "attempt", job)
            return
        if r.outstanding() >= 1 + self.p.max_queue:
            ra = self.retry_after(r)
            job.rejections += 1
            job.retry_afters.append(ra)
            self.rejections += 1
            self.at(self.now + ra + self.rng.uniform(0, self.p.jitter_s), "attempt", job)
            return
        job.admitted, job.replica = self.now, r.idx
        job.eligible = self.now + self.p.prep_s
        r.waiting.append(job)
        self._record_load()
        if r.running is None:
            self.at(job.eligible, "try_start", r)

    def try_start(self, r: Replica) -> None:
        if r.running is not None or not r.waiting or r.removed_at is not None:
            return
        job = r.waiting[0]
        if job.eligible > self.now:
            self.at(job.eligible, "try_start", r)
            return
        r.waiting.popleft()
        r.running, r.run_started = job, self.now
        job.started = self.now
        r.run_ends = self.now + self.job_seconds(job)
        self.at(r.run_ends, "finish", (r, job))

    def finish(self, r: Replica, job: Job) -> None:
        if r.running is not job:
            return  # cut off by a scale-down
        took = self.now - r.run_started
        r.busy_s += took
        r.mean_job_s = 0.7 * r.mean_job_s + 0.3 * took
        r.running = None
        job.finished = self.now
        self.unfinished -= 1
        self._record_load()
        if r.draining and not r.waiting:
            self._remove(r)
        else:
            self.try_start(r)
        if job.client is not None and job.client in self.next_job:
            self.next_job[job.client]()

    # --- the autoscaler ---------------------------------------------------------------------
    def _record_load(self) -> None:
        load = sum(r.outstanding() for r in self.replicas if r.removed_at is None)
        self.load_history.append((self.now, load))

    def _load_at(self, t: float) -> int:
        value = self.load_history[0][1]
        for when, load in reversed(self.load_history):
            if when <= t:
                value = load
                break
        return value

    def autoscale(self) -> None:
        p = self.p
        metric = self._load_at(self.now - p.lag_s)
        live = [r for r in self.live() if not r.draining]
        current = len(live)
        ratio = metric / (p.target_per_replica * max(1, current))
        raw = math.ceil(metric / p.target_per_replica) if abs(ratio - 1) > p.tolerance else current
        raw = max(p.min_replicas, min(p.max_replicas, raw))
        self.desired_history.append((self.now, raw))
        window = [d for t, d in self.desired_history if t >= self.now - p.scale_down_window_s]
        desired = raw if raw >= current else max(window)
        if desired > current:
            for _ in range(desired - current):
                r = self._add_replica(ready_at=self.now + p.cold_start_s)
                self.at(r.ready_at, "ready", r)
        elif desired < current:
            # The ReplicaSet removes the newest pods first, busy or not; with pod-deletion-cost
            # kept up to date by the pods, idle ones would go first.
            if p.victims == "idle":
                order = sorted(live, key=lambda r: (r.outstanding() > 0, -r.ready_at))
            else:
                order = sorted(live, key=lambda r: -r.ready_at)
            for r in order[: current - desired]:
                self._drain(r)
        self.max_replicas_seen = max(self.max_replicas_seen, len(self.live()))
        self.at(self.now + p.sync_s, "autoscale")

    def _drain(self, r: Replica) -> None:
        """SIGTERM: no new jobs; the waiting ones get 503 (clients retry elsewhere); the running
        one gets grace_s, then it is cut and its client starts over."""
        r.draining = True
        while r.waiting:
            job = r.waiting.pop()
            job.admitted = job.replica = None
            self.at(self.now + 5.0, "attempt", job)
        if r.running is None:
            self._remove(r)
        else:
            self.at(self.now + self.p.grace_s, "kill", r)

    def kill(self, r: Replica) -> None:
        if r.removed_at is not None:
            return
        if r.running is not None:
            job = r.running
            r.busy_s += self.now - r.run_started
            r.running = None
            job.cut += 1
            job.started = None
            self.at(self.now + 1.0, "attempt", job)
        self._remove(r)

    def _remove(self, r: Replica) -> None:
        if r.removed_at is None:
            r.removed_at = self.now
            self._record_load()

    # --- run --------------------------------------------------------------------------------
    def run(self, until: Optional[float] = None) -> "Sim":
        if self.p.autoscale:
            self.at(self.p.sync_s, "autoscale")
        handlers = {
            "attempt": self.attempt,
            "try_start": self.try_start,
            "finish": lambda rj: self.finish(*rj),
            "autoscale": lambda _: self.autoscale(),
            "ready": lambda r: self.try_start(r),
            "kill": self.kill,
        }
        while self._events:
            t, _, kind, payload = heapq.heappop(self._events)
            if kind == "autoscale" and (self.unfinished == 0 or (until is not None and t > until)):
                continue  # nothing left to serve: stop ticking
            self.now = t
            handlers[kind](payload)
        self.end = self.now
        return self


# --- workloads ------------------------------------------------------------------------------
def video_frames(rng: random.Random, mean_s: float, fps: float, dist: str) -> int:
    if dist == "fixed":
        seconds = mean_s
    elif dist == "exp":
        seconds = rng.expovariate(1 / mean_s)
    elif dist == "lognormal":  # same mean, sigma 0.8: many short clips, a long tail
        sigma = 0.8
        seconds = rng.lognormvariate(math.log(mean_s) - sigma**2 / 2, sigma)
    else:
        raise ValueError(dist)
    return max(1, int(round(seconds * fps)))


def poisson_arrivals(
    sim: Sim, rate_per_h: float, hours: float, mean_s: float, fps: float, dist: str, seed: int
) -> None:
    rng = random.Random(seed + 1)
    t = 0.0
    while True:
        t += rng.expovariate(rate_per_h / 3600)
        if t > hours * 3600:
            return
        sim.submit(t, video_frames(rng, mean_s, fps, dist))


def closed_loop(sim: Sim, plans: Sequence[Sequence[int]], start: float = 0.0) -> None:
    """One client per plan, each sending its videos back to back (bench/replicas.py's clients)."""
    for c, plan in enumerate(plans):
        queue = deque(plan)

        def send_next(c=c, queue=queue):
            if queue:
                sim.submit(sim.now, queue.popleft(), client=c)

        sim.next_job[c] = send_next
        sim.submit(start, queue.popleft(), client=c)


# --- results --------------------------------------------------------------------------------
def pct(values: List[float], q: float) -> Optional[float]:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q * len(ordered) / 100)))
    return ordered[rank - 1]


def summarize(sim: Sim, warmup_s: float = 0.0) -> dict:
    jobs = [j for j in sim.jobs if j.finished is not None and j.arrival >= warmup_s]
    waits = [j.wait for j in jobs]
    end = sim.end
    ready_s = sum(
        max(0.0, (r.removed_at if r.removed_at is not None else end) - r.ready_at)
        for r in sim.replicas
    )
    held_s = sum(
        max(
            0.0,
            (r.removed_at if r.removed_at is not None else end)
            - (r.ready_at - sim.p.cold_start_s if r.ready_at > 0 else 0.0),
        )
        for r in sim.replicas
    )
    busy = sum(r.busy_s for r in sim.replicas)
    return {
        "jobs": len(jobs),
        "requests": sim.requests,
        "rejected_503": sim.rejections,
        "rate_503": sim.rejections / sim.requests if sim.requests else 0.0,
        "jobs_refused_once": sum(1 for j in jobs if j.rejections) / len(jobs) if jobs else 0.0,
        "queued_jobs": sum(1 for j in jobs if j.started - j.admitted > 0.5 + sim.p.prep_s),
        "wait_p50": pct(waits, 50),
        "wait_p95": pct(waits, 95),
        "wall_p50": pct([j.wall for j in jobs], 50),
        "wall_p95": pct([j.wall for j in jobs], 95),
        "gpu_util": busy / ready_s if ready_s else 0.0,
        "avg_replicas": held_s / end if end else 0.0,
        "max_replicas": sim.max_replicas_seen,
        "cut_jobs": sum(j.cut for j in sim.jobs),
        "gpu_hours": held_s / 3600,
    }


def simulate(
    p: Params,
    rate_per_h: float,
    hours: float,
    mean_s: float,
    fps: float,
    dist: str,
    seeds: int = 3,
    warmup_s: float = 600.0,
) -> dict:
    """Median over `seeds` independent runs of each number."""
    rows = []
    for s in range(seeds):
        q = Params(**{**p.__dict__, "seed": p.seed + s})
        sim = Sim(q)
        poisson_arrivals(sim, rate_per_h, hours, mean_s, fps, dist, seed=q.seed)
        rows.append(summarize(sim.run(), warmup_s=warmup_s))
    return {k: statistics.median([r[k] for r in rows]) for k in rows[0]}


def replicas_needed(
    p: Params,
    rate_per_h: float,
    hours: float,
    mean_s: float,
    fps: float,
    dist: str,
    wait_p95_s: float,
    max_503: float,
    seeds: int = 3,
) -> tuple:
    """Smallest fixed replica count meeting both targets, and its numbers."""
    job_s = p.overhead_s + mean_s * fps * p.seconds_per_frame
    n = max(1, math.ceil(rate_per_h * job_s / 3600))
    while n < 1000:
        q = Params(**{**p.__dict__, "replicas": n, "autoscale": False})
        res = simulate(q, rate_per_h, hours, mean_s, fps, dist, seeds)
        if res["wait_p95"] <= wait_p95_s and res["rate_503"] <= max_503:
            return n, res
        n += 1
    raise RuntimeError("no replica count up to 1000 meets the targets")


# --- tables ---------------------------------------------------------------------------------
def fmt(v, pctage=False) -> str:
    if v is None:
        return "-"
    if pctage:
        return f"{100 * v:.1f} %"
    if isinstance(v, float):
        return f"{v:.1f}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def table(headers: List[str], rows: List[List[str]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def headline(args) -> str:
    """The capacity.md tables."""
    fps_video, mean_s, rate, hours = args.video_fps, args.video_s, args.rate, args.hours
    spf = 1 / (PUBLISHED_FPS[args.model] * (1.0 if args.compile else NO_COMPILE_FACTOR))
    base = Params(
        max_queue=args.max_queue, seconds_per_frame=spf, overhead_s=args.overhead_s, seed=args.seed
    )
    job_s = base.overhead_s + mean_s * fps_video * spf
    offered = rate * job_s / 3600
    lines = [
        f"Workload: {rate:g} videos/hour, mean {mean_s:g} s at {fps_video:g} fps "
        f"({mean_s * fps_video:.0f} frames), {args.hours:g} h simulated (first 10 min "
        f"not counted), median of {args.seeds} seeds. Model {args.model}, image_size 1024, "
        f"{'compiled' if args.compile else 'not compiled'}: {1 / spf:.1f} frames/s on an "
        f"A100, {job_s:.1f} s of GPU per mean video; offered load {offered:.1f} GPUs "
        f"busy on average. --max_queue {args.max_queue}.",
        "",
    ]

    # 1. Fixed replica counts, each routing, two length distributions.
    lines.append("### Fixed replicas: routing and replica count")
    lines.append("")
    rows = []
    counts = sorted({math.ceil(offered) + k for k in (1, 2, 4)})
    for dist in ("fixed", "lognormal"):
        for n in counts:
            for routing in ROUTINGS[:3]:
                q = Params(**{**base.__dict__, "replicas": n, "routing": routing})
                r = simulate(q, rate, hours, mean_s, fps_video, dist, args.seeds)
                rows.append(
                    [
                        dist,
                        str(n),
                        routing,
                        fmt(r["wait_p50"]),
                        fmt(r["wait_p95"]),
                        fmt(r["rate_503"], True),
                        fmt(r["jobs_refused_once"], True),
                        fmt(r["gpu_util"], True),
                    ]
                )
    lines.append(
        table(
            [
                "lengths",
                "replicas",
                "routing",
                "wait p50 s",
                "wait p95 s",
                "503 / request",
                "jobs refused once",
                "GPU util",
            ],
            rows,
        )
    )
    lines.append("")

    # 2. Replicas needed per model size.
    lines.append(
        f"### Replicas needed (least-request, wait p95 <= {args.slo_wait_s:g} s, "
        f"503 <= {100 * args.slo_503:g} % of requests)"
    )
    lines.append("")
    rows = []
    for model in PUBLISHED_FPS:
        for compiled in (False, True):
            spf_m = 1 / (PUBLISHED_FPS[model] * (1.0 if compiled else NO_COMPILE_FACTOR))
            q = Params(**{**base.__dict__, "seconds_per_frame": spf_m})
            for dist in ("fixed", "lognormal"):
                n, r = replicas_needed(
                    q,
                    rate,
                    hours,
                    mean_s,
                    fps_video,
                    dist,
                    args.slo_wait_s,
                    args.slo_503,
                    args.seeds,
                )
                jsec = q.overhead_s + mean_s * fps_video * spf_m
                rows.append(
                    [
                        model,
                        "yes" if compiled else "no",
                        dist,
                        f"{1 / spf_m:.1f}",
                        f"{jsec:.0f}",
                        f"{rate * jsec / 3600:.1f}",
                        str(n),
                        fmt(r["wait_p95"]),
                        fmt(r["rate_503"], True),
                        fmt(r["gpu_util"], True),
                    ]
                )
    lines.append(
        table(
            [
                "model",
                "compiled",
                "lengths",
                "frames/s",
                "GPU s per video",
                "offered GPUs",
                "replicas needed",
                "wait p95 s",
                "503 / request",
                "GPU util",
            ],
            rows,
        )
    )
    lines.append("")

    # 3. Routing's price in GPUs.
    lines.append("### Replicas needed by routing (tiny as above, same targets)")
    lines.append("")
    rows = []
    for dist in ("fixed", "lognormal"):
        for routing in ROUTINGS[:3]:
            q = Params(**{**base.__dict__, "routing": routing})
            n, r = replicas_needed(
                q, rate, hours, mean_s, fps_video, dist, args.slo_wait_s, args.slo_503, args.seeds
            )
            rows.append(
                [
                    dist,
                    routing,
                    str(n),
                    fmt(r["wait_p95"]),
                    fmt(r["rate_503"], True),
                    fmt(r["gpu_util"], True),
                ]
            )
    lines.append(
        table(
            ["lengths", "routing", "replicas needed", "wait p95 s", "503 / request", "GPU util"],
            rows,
        )
    )
    lines.append("")

    # 4. Autoscaled, steady traffic.
    start_n = math.ceil(offered) + 1
    lines.append(
        f"### Autoscaled, steady traffic (KEDA on jobs in flight + queue depth, target 1 "
        f"per replica; starts at {start_n}; metric 30 s old, HPA sync 15 s, cold start "
        f"180 s, 300 s scale-down window, 30 s grace)"
    )
    lines.append("")
    rows = []
    for dist in ("fixed", "lognormal"):
        for routing, victims in (
            ("least_request", "newest"),
            ("least_request", "idle"),
            ("p2c", "newest"),
            ("round_robin", "newest"),
        ):
            q = Params(
                **{
                    **base.__dict__,
                    "replicas": start_n,
                    "autoscale": True,
                    "min_replicas": 1,
                    "max_replicas": 100,
                    "cold_start_s": 180.0,
                    "lag_s": 30.0,
                    "routing": routing,
                    "victims": victims,
                }
            )
            r = simulate(q, rate, hours, mean_s, fps_video, dist, args.seeds)
            rows.append(
                [
                    dist,
                    routing,
                    victims,
                    fmt(r["wait_p50"]),
                    fmt(r["wait_p95"]),
                    fmt(r["rate_503"], True),
                    fmt(r["avg_replicas"]),
                    str(int(r["max_replicas"])),
                    fmt(r["gpu_util"], True),
                    str(int(r["cut_jobs"])),
                ]
            )
    lines.append(
        table(
            [
                "lengths",
                "routing",
                "scale-down removes",
                "wait p50 s",
                "wait p95 s",
                "503 / request",
                "avg replicas",
                "max replicas",
                "GPU util",
                "jobs cut by scale-down",
            ],
            rows,
        )
    )
    lines.append("")

    # 5. A cold step: lag and cold start.
    lines.append("### Autoscaled from 1 replica: the full rate arrives at t = 0 (first hour only)")
    lines.append("")
    rows = []
    for cold in (60.0, 180.0, 420.0):
        for lag in (15.0, 60.0):
            q = Params(
                **{
                    **base.__dict__,
                    "replicas": 1,
                    "autoscale": True,
                    "min_replicas": 1,
                    "max_replicas": 100,
                    "cold_start_s": cold,
                    "lag_s": lag,
                }
            )
            r = simulate(q, rate, 1.0, mean_s, fps_video, "fixed", args.seeds, warmup_s=0)
            rows.append(
                [
                    f"{cold:.0f}",
                    f"{lag:.0f}",
                    fmt(r["wait_p50"]),
                    fmt(r["wait_p95"]),
                    fmt(r["rate_503"], True),
                    fmt(r["avg_replicas"]),
                    str(int(r["max_replicas"])),
                    fmt(r["gpu_util"], True),
                ]
            )
    lines.append(
        table(
            [
                "cold start s",
                "metric lag s",
                "wait p50 s",
                "wait p95 s",
                "503 / request",
                "avg replicas",
                "max replicas",
                "GPU util",
            ],
            rows,
        )
    )
    lines.append("")

    # 6. Retry-After as implemented vs the running job's remaining time, where 503s happen.
    n = math.ceil(offered)
    lines.append(
        f"### Retry-After: as the server computes it vs the running job's remaining "
        f"time ({n} replicas, least-request: tight enough for 503s)"
    )
    lines.append("")
    rows = []
    for ra in ("server", "remaining"):
        for dist in ("fixed", "lognormal"):
            q = Params(**{**base.__dict__, "replicas": n, "retry_after": ra})
            r = simulate(q, rate, hours, mean_s, fps_video, dist, args.seeds)
            rows.append(
                [
                    ra,
                    dist,
                    fmt(r["wait_p50"]),
                    fmt(r["wait_p95"]),
                    fmt(r["rate_503"], True),
                    fmt(r["gpu_util"], True),
                ]
            )
    lines.append(
        table(
            ["Retry-After", "lengths", "wait p50 s", "wait p95 s", "503 / request", "GPU util"],
            rows,
        )
    )
    return "\n".join(lines)


# --- validation against the proof -----------------------------------------------------------
# The proof's workloads (bench/replicas.py PLAN_A / PLAN_B); read from its JSON when present.
def fit_job_time(jobs: List[dict]) -> tuple:
    """Least squares tracking_s = a + b * frames over the valid jobs."""
    pts = [(j["frames"], j["tracking_s"]) for j in jobs if j.get("tracking_s")]
    n = len(pts)
    mx = sum(f for f, _ in pts) / n
    my = sum(t for _, t in pts) / n
    sxx = sum((f - mx) ** 2 for f, _ in pts)
    b = sum((f - mx) * (t - my) for f, t in pts) / sxx if sxx else my / mx
    a = my - b * mx
    return max(0.0, a), b


def measured_row(jobs: List[dict]) -> dict:
    attempts = [a for j in jobs for a in j["attempts"]]
    walls = [j["end"] - j["start"] for j in jobs if j["valid_zip"]]
    return {
        "jobs": len(jobs),
        "requests": len(attempts),
        "rejected_503": sum(1 for a in attempts if a["status"] == 503),
        "queued_jobs": sum(1 for j in jobs if (j.get("queued_s") or 0) > 0.5),
        "wall_p50": pct(walls, 50),
        "wall_p95": pct(walls, 95),
        "retry_after_mean": (
            statistics.mean([a["retry_after"] for a in attempts if a["retry_after"] is not None])
            if any(a["retry_after"] for a in attempts)
            else None
        ),
    }


def plans_from(jobs: List[dict]) -> List[List[int]]:
    """Per client, the frame counts in the order sent, from one round's records."""
    by_client: Dict[int, List[dict]] = {}
    for j in jobs:
        by_client.setdefault(j["client"], []).append(j)
    return [
        [j["frames"] for j in sorted(v, key=lambda j: j["start"])]
        for _, v in sorted(by_client.items())
    ]


def validate(path: str, seeds: int = 20) -> str:
    with open(path) as f:
        proof = json.load(f)
    routing_of = {"least_conn": "least_request", "round_robin": "round_robin"}
    rows = []
    for key, jobs in proof["jobs"].items():
        scenario, policy = [s.strip() for s in key.split("|")]
        if not scenario.startswith(("a", "b")):
            continue
        a, b = fit_job_time(jobs)
        # One round's plan: rounds repeat the same plan, so each client's first 1/rounds jobs.
        rounds = max(1, round(len(jobs) / (12 if scenario.startswith("a") else 9)))
        plans = [p[: len(p) // rounds] for p in plans_from(jobs)]
        overhead = statistics.median(
            [
                (j["end"] - j["start"]) - (j["queued_s"] or 0) - j["tracking_s"]
                for j in jobs
                if j.get("tracking_s") and len(j["attempts"]) == 1
            ]
        )
        sims = []
        for s in range(seeds):
            p = Params(
                replicas=3,
                max_queue=1,
                seconds_per_frame=b,
                overhead_s=a + overhead,
                routing=routing_of[policy],
                initial_mean_job_s=statistics.mean(
                    [j["tracking_s"] for j in jobs if j.get("tracking_s")]
                ),
                prep_s=0.2,
                seed=s,
            )
            sim = Sim(p)
            closed_loop(sim, plans)
            sim.run()
            r = summarize(sim)
            ras = [ra for j in sim.jobs for ra in j.retry_afters]
            r["retry_after_mean"] = statistics.mean(ras) if ras else None
            sims.append(r)
        sim_med = {
            k: statistics.median([r[k] for r in sims if r[k] is not None])
            if any(r[k] is not None for r in sims)
            else None
            for k in ("rejected_503", "queued_jobs", "wall_p50", "wall_p95", "retry_after_mean")
        }
        meas = measured_row(jobs)
        scale = 1.0 / rounds
        rows.append(
            [
                scenario,
                policy,
                str(rounds),
                f"{a:.1f} + {b:.2f}/frame",
                f"{meas['rejected_503'] * scale:.1f}",
                fmt(sim_med["rejected_503"]),
                f"{meas['queued_jobs'] * scale:.1f}",
                fmt(sim_med["queued_jobs"]),
                fmt(meas["wall_p50"]),
                fmt(sim_med["wall_p50"]),
                fmt(meas["wall_p95"]),
                fmt(sim_med["wall_p95"]),
                fmt(meas["retry_after_mean"]),
                fmt(sim_med["retry_after_mean"]),
            ]
        )
    return table(
        [
            "scenario",
            "policy",
            "rounds",
            "job time fitted (s)",
            "503s measured / round",
            "503s simulated",
            "queued jobs measured / round",
            "queued simulated",
            "wall p50 measured",
            "wall p50 simulated",
            "wall p95 measured",
            "wall p95 simulated",
            "Retry-After mean measured",
            "Retry-After mean simulated",
        ],
        rows,
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000, help="Videos per hour (Poisson).")
    parser.add_argument("--video-s", type=float, default=60, help="Mean video length, seconds.")
    parser.add_argument("--video-fps", type=float, default=30, help="Frames per video second.")
    parser.add_argument("--hours", type=float, default=4, help="Simulated hours per run.")
    parser.add_argument("--model", choices=sorted(PUBLISHED_FPS), default="tiny")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="Use the published (compiled) FPS instead of half of it.",
    )
    parser.add_argument("--max-queue", dest="max_queue", type=int, default=2)
    parser.add_argument(
        "--overhead-s",
        dest="overhead_s",
        type=float,
        default=2.0,
        help="Per-job seconds besides the frames.",
    )
    parser.add_argument(
        "--slo-wait-s",
        dest="slo_wait_s",
        type=float,
        default=60,
        help="Target p95 wait (first attempt -> on the GPU).",
    )
    parser.add_argument(
        "--slo-503",
        dest="slo_503",
        type=float,
        default=0.01,
        help="Target share of requests answered 503.",
    )
    parser.add_argument("--seeds", type=int, default=3, help="Runs per cell (median).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--validate",
        metavar="PROOF_JSON",
        default=None,
        help="Compare with bench/replicas.py --json output instead.",
    )
    args = parser.parse_args(argv)
    if args.validate:
        print(validate(args.validate))
    else:
        print(headline(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
