"""Scale-out proof with real processes: 3 replicas of the server behind a real nginx.

    python bench/replicas.py                   # both policies, scenarios a, b, c; prints the table
    python bench/replicas.py --rounds 3        # a and b three times each (policies alternating)
    python bench/replicas.py --json out.json   # also the raw per-job records (bench/capacity.py
                                               # --validate reads them)

Every replica is `python -m model` (tiny, random weights, image_size 256, CPU), started as a user
starts it. Two nginx processes sit in front of the same three replicas, configured as the chart
configures the gateway (see `nginx_conf`); they differ only in balancing: `least_conn` (the
least-request policy the chart asks the route for) and nginx's default round-robin (what a plain
Kubernetes Service or an unconfigured gateway does).

(a) 3 clients, each sending jobs back to back (videos of different lengths) -> with least-request
    no request is refused and no job waits behind another while a replica idles.
(b) 9 clients at once, `--max_queue 1` (3 replicas x (1 running + 1 queued) = 6 places) -> only
    200s and 503s; every 503 carries Retry-After; clients wait that long and retry; every job ends
    with a complete, valid ZIP.
(c) 3 clients at once, least-request; the replica serving client 0 is SIGKILLed while it streams
    -> client 0 sees a broken stream (an HTTP error mid-body, and bytes that are not a valid ZIP);
    the two other jobs end with valid ZIPs; afterwards new jobs go to the two living replicas.

Needs nginx (Debian: `apt-get install -y --no-install-recommends nginx`). About 4-5 minutes on
2 CPU cores with one round.
"""

import argparse
import io
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

# The chart's values these settings mirror (charts/sam2-tracker/values.yaml).
ROUTE_TIMEOUT_S = 1830  # predictor.timeoutSeconds: HTTPRoute timeouts.request, VirtualService
# timeout, ingress-nginx proxy-read/send-timeout
MAX_UPLOAD_MB = 1024  # server.maxUploadMb: ingress-nginx proxy-body-size, the server's limit
IMAGE_SIZE = 256  # ~0.16 s per frame for hiera tiny on 2 cores (shared/NOTES.md)
WIDTH, HEIGHT = 320, 192
POINT = f"{WIDTH // 2},{HEIGHT // 2}"
POLICIES = ("least_conn", "round_robin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nginx_binary() -> Optional[str]:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


# --- inputs -------------------------------------------------------------------------------------
def write_checkpoint(path: str) -> str:
    """The real SAM2.1 tiny architecture with random weights, in the official format (~2 s)."""
    if not os.path.isfile(path):
        subprocess.run(
            [
                sys.executable,
                os.path.join(REPO, "tools", "random_checkpoint.py"),
                "--model_size",
                "tiny",
                "--out",
                path,
            ],
            check=True,
            cwd=REPO,
        )
    return path


def write_video(
    path: str, n: int, width: int = WIDTH, height: int = HEIGHT, fps: float = 12.0, seed: int = 0
) -> str:
    """A red disc and a blue square drifting over a noisy green field (as tests/videos.py)."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    field_ = rng.integers(0, 40, size=(height, width, 3), dtype=np.uint8)
    field_[..., 1] += 80
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    assert writer.isOpened(), f"OpenCV cannot write mp4v to {path}"
    for i in range(n):
        f = field_.copy()
        cx = int(width * 0.2 + i * (width * 0.6) / max(1, n - 1))
        cv2.circle(f, (cx, height // 2), max(8, height // 6), (30, 30, 220), -1)
        sx = int(width * 0.75 - i * (width * 0.4) / max(1, n - 1))
        cv2.rectangle(
            f, (sx, height // 8), (sx + width // 8, height // 8 + height // 5), (200, 60, 20), -1
        )
        writer.write(f)
    writer.release()
    return path


# --- the replicas -------------------------------------------------------------------------------
class Replica:
    """One `python -m model` process on loopback."""

    def __init__(self, checkpoint: str, workdir: str, max_queue: int, threads: int = 1):
        self.http_port, self.grpc_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.addr = f"127.0.0.1:{self.http_port}"
        spool = os.path.join(workdir, f"spool-{self.http_port}")
        os.makedirs(spool, exist_ok=True)
        self.log_path = os.path.join(workdir, f"replica-{self.http_port}.log")
        self.args = [
            sys.executable,
            "-m",
            "model",
            "--model_name",
            "sam2",
            "--model_size",
            "tiny",
            "--checkpoint",
            checkpoint,
            "--image_size",
            str(IMAGE_SIZE),
            "--device",
            "cpu",
            "--http_port",
            str(self.http_port),
            "--grpc_port",
            str(self.grpc_port),
            "--max_queue",
            str(max_queue),
            "--spool_dir",
            spool,
        ]
        # Three replicas share 2 cores here (on a cluster each has its own GPU): one torch thread
        # each keeps them from thrashing each other.
        self.env = dict(
            os.environ,
            TQDM_DISABLE="1",
            PYTHONUNBUFFERED="1",
            OMP_NUM_THREADS=str(threads),
            MKL_NUM_THREADS=str(threads),
        )
        self.proc: Optional[subprocess.Popen] = None
        self.killed = False

    def start(self) -> "Replica":
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            self.args, cwd=REPO, env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )
        return self

    def wait_ready(self, timeout: float = 300) -> "Replica":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"replica exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"replica not ready in {timeout} s:\n{self.log()}")

    def log(self) -> str:
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")[-4000:]

    def kill(self) -> None:
        """SIGKILL: no drain, no goodbye, as when a node dies or the OOM killer strikes."""
        self.killed = True
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout: float = 60) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self._log.close()


# --- the proxy ----------------------------------------------------------------------------------
def nginx_conf(prefix: str, port: int, upstreams: List[str], policy: str) -> str:
    """nginx as the chart configures the gateway in front of the predictor Service.

    Each directive names the chart setting it mirrors (charts/sam2-tracker/templates/ingress.yaml,
    httproute.yaml, virtualservice.yaml; values in charts/sam2-tracker/values.yaml).
    """
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}")
    balance = (
        (
            "    # Least-request: a new job goes to the replica with the fewest open requests\n"
            "    # (running + queued). The chart's route asks for the same (Istio\n"
            "    # DestinationRule LEAST_REQUEST, Envoy Gateway BackendTrafficPolicy\n"
            "    # LeastRequest).\n"
            "    least_conn;\n"
        )
        if policy == "least_conn"
        else (
            "    # nginx's default: plain round-robin, as a Kubernetes Service spreads\n"
            "    # connections without looking at load.\n"
        )
    )
    servers = "".join(f"    server {u} max_fails=1 fail_timeout=10s;\n" for u in upstreams)
    # As root, nginx would switch its worker to `nobody`, who cannot enter a private temp folder.
    user = "user root;\n" if os.geteuid() == 0 else ""
    return f"""# Generated by bench/replicas.py ({policy}).
{user}worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 1024; }}

http {{
  access_log {prefix}/access.log;
  client_body_temp_path {prefix}/client_body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;

  upstream sam2_predictor {{
    # Shared memory, so the balancing state is one table whatever the number of workers.
    zone sam2_predictor 64k;
{balance}{servers}  }}

  server {{
    listen 127.0.0.1:{port};

    # proxy-body-size = server.maxUploadMb (ingress.yaml); HTTPRoute and VirtualService set no
    # body limit, so the server's own --max_upload_mb is the only one.
    client_max_body_size {MAX_UPLOAD_MB}m;
    # proxy-request-buffering: "off" (ingress.yaml): the upload streams to the replica as it
    # arrives, so a busy replica's 503 comes before the client has sent the whole video. Envoy
    # (HTTPRoute, VirtualService) streams request bodies by default.
    proxy_request_buffering off;
    # proxy-buffering: "off" (ingress.yaml): each mask reaches the client as it is made.
    proxy_buffering off;
    # proxy-read-timeout / proxy-send-timeout = predictor.timeoutSeconds (ingress.yaml);
    # HTTPRoute rules[].timeouts.request (httproute.yaml) and VirtualService timeout
    # (virtualservice.yaml) are the same {ROUTE_TIMEOUT_S} s.
    proxy_read_timeout {ROUTE_TIMEOUT_S}s;
    proxy_send_timeout {ROUTE_TIMEOUT_S}s;
    # HTTP/1.1 to the replica, as ingress-nginx and Envoy speak to it (nginx's own default is
    # 1.0). The ZIP comes chunked; a replica that dies mid-stream is a premature close, which nginx
    # passes on as a response without its last chunk: the client sees a broken stream.
    proxy_http_version 1.1;
    # Only a refused or failed connection moves to the next replica (nginx's and ingress-nginx's
    # default). A 503 goes back to the client with its Retry-After (no http_503 here), and a POST
    # that reached a replica is never sent again (no non_idempotent): the VirtualService's
    # `retries: attempts: 0` (virtualservice.yaml), since a retried upload would start a second job.
    proxy_next_upstream error timeout;

    location /track {{
      proxy_pass http://sam2_predictor;
      # Diagnostic only, not in the chart: which replica answered.
      add_header X-Upstream-Addr $upstream_addr always;
    }}
    location / {{
      proxy_pass http://sam2_predictor;
    }}
  }}
}}
"""


class Proxy:
    """One nginx process (master + 1 worker) in its own prefix folder."""

    def __init__(self, workdir: str, upstreams: List[str], policy: str):
        self.policy = policy
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.prefix = os.path.join(workdir, f"nginx-{policy}")
        os.makedirs(self.prefix, exist_ok=True)
        self.conf_path = os.path.join(self.prefix, "nginx.conf")
        with open(self.conf_path, "w") as f:
            f.write(nginx_conf(self.prefix, self.port, upstreams, policy))
        self.proc: Optional[subprocess.Popen] = None

    def start(self, timeout: float = 20) -> "Proxy":
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError("nginx is not installed (apt-get install -y nginx)")
        cmd = [binary, "-p", self.prefix, "-c", self.conf_path, "-e", self.prefix + "/error.log"]
        subprocess.run(cmd + ["-t", "-q"], check=True)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.proc.returncode}: {self.error_log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"nginx did not listen in {timeout} s: {self.error_log()}")

    def error_log(self) -> str:
        try:
            with open(os.path.join(self.prefix, "error.log")) as f:
                return f.read()[-20000:]
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: the master waits for its worker
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- one client's job ---------------------------------------------------------------------------
@dataclass
class Attempt:
    status: Optional[int]  # None: no HTTP status (connection failed)
    t0: float  # seconds since the scenario started
    t1: float
    retry_after: Optional[float] = None
    upstream: Optional[str] = None
    error: Optional[str] = None  # transport error, e.g. a broken stream
    body_bytes: int = 0


@dataclass
class JobResult:
    client: int
    frames: int
    attempts: List[Attempt] = field(default_factory=list)
    valid_zip: bool = False
    zip_problem: Optional[str] = None
    queued_s: Optional[float] = None  # from the manifest: time behind another job on the device
    tracking_s: Optional[float] = None
    start: float = 0.0  # seconds since the scenario started
    end: float = 0.0

    @property
    def wall_s(self) -> float:
        return self.end - self.start

    @property
    def retries(self) -> int:
        return max(0, len(self.attempts) - 1)

    @property
    def upstream(self) -> Optional[str]:
        return self.attempts[-1].upstream if self.attempts else None


def check_zip(data: bytes, frames: int) -> Optional[str]:
    """None when `data` is a complete answer for a `frames`-frame video, else what is wrong."""
    from PIL import Image

    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        return f"not a ZIP ({exc})"
    try:
        if zf.testzip() is not None:
            return "an entry fails its CRC"
        names = zf.namelist()
        expected = {f"masks/{i:05d}.png" for i in range(frames)}
        if names[-1:] != ["manifest.json"]:
            return "manifest.json is not the last entry"
        if set(names[:-1]) != expected:
            return f"{len(names) - 1} masks for {frames} frames"
        manifest = json.loads(zf.read("manifest.json"))
        if manifest["masks"]["count"] != frames or manifest["video"]["frame_count"] != frames:
            return "the manifest's counts disagree with the video"
        for name in names[:-1]:
            img = Image.open(io.BytesIO(zf.read(name)))
            if img.format != "PNG" or img.mode != "L" or img.size != (WIDTH, HEIGHT):
                return f"{name} is not a {WIDTH}x{HEIGHT} 8-bit grayscale PNG"
    except Exception as exc:  # noqa: BLE001 - any failure to read it back is a bad ZIP
        return f"unreadable ({type(exc).__name__}: {exc})"
    return None


def run_job(
    base_url: str,
    video: bytes,
    frames: int,
    client: int,
    clock: Callable[[], float],
    rng: random.Random,
    max_attempts: int = 30,
    on_progress: Optional[Callable[[Attempt], None]] = None,
) -> JobResult:
    """POST /track until an answer other than 503, honouring Retry-After (plus up to 0.5 s of
    jitter so clients refused together do not all come back in the same instant)."""
    job = JobResult(client=client, frames=frames, start=clock())
    body = b""
    while len(job.attempts) < max_attempts:
        att = Attempt(status=None, t0=clock(), t1=0.0)
        job.attempts.append(att)
        chunks: List[bytes] = []
        try:
            with requests.post(
                base_url + "/track",
                params={"frame_idx": 0, "points": POINT},
                data=video,
                headers={"Content-Type": "application/octet-stream"},
                stream=True,
                timeout=(10, ROUTE_TIMEOUT_S),
            ) as r:
                att.status = r.status_code
                att.upstream = (r.headers.get("X-Upstream-Addr") or "").split(", ")[-1] or None
                if r.status_code == 503:
                    ra = r.headers.get("Retry-After")
                    att.retry_after = float(ra) if ra is not None else None
                    r.content  # noqa: B018 - read the small JSON error, free the connection
                else:
                    for chunk in r.iter_content(chunk_size=None):
                        chunks.append(chunk)
                        att.body_bytes += len(chunk)
                        if on_progress is not None:
                            on_progress(att)
        except requests.RequestException as exc:
            att.error = f"{type(exc).__name__}: {str(exc)[:160]}"
        att.t1 = clock()
        body = b"".join(chunks)
        if att.status == 503 and att.retry_after is not None and att.error is None:
            time.sleep(att.retry_after + rng.uniform(0, 0.5))
            continue
        break  # an answer, a transport error, or a 503 without Retry-After (a failure)
    job.end = clock()
    last = job.attempts[-1]
    if last.status == 200:
        job.zip_problem = check_zip(body, frames)
        job.valid_zip = job.zip_problem is None and last.error is None
        if job.zip_problem is None:
            manifest = json.loads(zipfile.ZipFile(io.BytesIO(body)).read("manifest.json"))
            job.queued_s = manifest["timings"].get("queued_s")
            job.tracking_s = manifest["timings"].get("tracking_s")
    else:
        job.zip_problem = "no 200 answer"
    return job


def run_clients(
    plans: List[List[int]],
    base_url: str,
    videos: Dict[int, bytes],
    seed: int = 0,
    on_progress: Optional[Dict[int, Callable[[Attempt], None]]] = None,
) -> List[JobResult]:
    """One thread per plan; each sends its plan's videos (frame counts) back to back."""
    t_start = time.monotonic()

    def clock() -> float:
        return time.monotonic() - t_start

    results: List[List[JobResult]] = [[] for _ in plans]
    barrier = threading.Barrier(len(plans))

    def client(i: int) -> None:
        rng = random.Random(seed * 1000 + i)
        barrier.wait()
        for frames in plans[i]:
            results[i].append(
                run_job(
                    base_url,
                    videos[frames],
                    frames,
                    i,
                    clock,
                    rng,
                    on_progress=(on_progress or {}).get(i),
                )
            )

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(len(plans))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [job for per_client in results for job in per_client]


# --- scenarios ----------------------------------------------------------------------------------
# (a) Frame counts per client. Client 0 starts with a long video while clients 1 and 2 send short
# ones back to back: a balancer that does not look at load keeps rotating onto client 0's busy
# replica (about every third request) while another idles; least-request never does.
PLAN_A = [[48, 12], [12, 18, 12, 18, 12], [18, 12, 18, 12, 12]]
# (b) Nine jobs at once.
PLAN_B = [[n] for n in (12, 24, 18, 24, 12, 18, 12, 24, 18)]
# (c) Client 0's video is long enough to be killed mid-stream; the others are ordinary.
PLAN_C = [[48], [24], [24]]
PLAN_C_AFTER = [[12], [12]]
FRAME_COUNTS = sorted(
    {n for plan in (PLAN_A, PLAN_B, PLAN_C, PLAN_C_AFTER) for p in plan for n in p}
)


def scenario_a(proxy: Proxy, videos, seed: int = 0) -> List[JobResult]:
    return run_clients(PLAN_A, proxy.url, videos, seed)


def scenario_b(proxy: Proxy, videos, seed: int = 0) -> List[JobResult]:
    return run_clients(PLAN_B, proxy.url, videos, seed)


def scenario_c(
    proxy: Proxy,
    replicas: List[Replica],
    videos,
    kill_after_bytes: int = 4096,
    kill_delay_s: float = 1.0,
):
    """SIGKILL the replica that streams client 0's answer once its first masks have arrived.

    Returns (jobs, the killed replica, jobs sent after the kill)."""
    streaming: Dict[str, str] = {}
    started_streaming = threading.Event()

    def watch(att: Attempt) -> None:
        if att.status == 200 and att.body_bytes >= kill_after_bytes and att.upstream:
            streaming["upstream"] = att.upstream
            started_streaming.set()

    box: Dict[str, List[JobResult]] = {}

    def clients() -> None:
        box["jobs"] = run_clients(PLAN_C, proxy.url, videos, seed=7, on_progress={0: watch})

    t = threading.Thread(target=clients, daemon=True)
    t.start()
    if not started_streaming.wait(timeout=300):
        t.join()
        raise RuntimeError("client 0's answer never started streaming")
    time.sleep(kill_delay_s)
    victim = {r.addr: r for r in replicas}[streaming["upstream"]]
    victim.kill()
    t.join()
    after = run_clients(PLAN_C_AFTER, proxy.url, videos, seed=8)
    return box["jobs"], victim, after


def proxy_log_lines(
    proxy: Proxy, needles=("prematurely closed", "connect() failed", "no live upstreams")
) -> List[str]:
    """nginx's own account of a failed upstream (error.log lines, trimmed)."""
    return [
        line.split("] ", 1)[-1][:220]
        for line in proxy.error_log().splitlines()
        if any(n in line for n in needles)
    ]


# --- the table ----------------------------------------------------------------------------------
def percentile(values: List[float], q: float) -> Optional[float]:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


QUEUED_THRESHOLD_S = 0.5  # a job that waited longer than this sat behind another job


def summarize(scenario: str, policy: str, jobs: List[JobResult], expected_broken: int = 0) -> dict:
    """One row: counts over all attempts, wall-time percentiles over jobs."""
    attempts = [a for j in jobs for a in j.attempts]
    statuses = [a.status for a in attempts]
    spread: Dict[str, int] = {}
    for j in jobs:
        if j.upstream:
            spread[j.upstream] = spread.get(j.upstream, 0) + 1
    walls = [j.wall_s for j in jobs if j.valid_zip]
    queued = [j.queued_s for j in jobs if j.queued_s is not None]
    return {
        "scenario": scenario,
        "policy": policy,
        "jobs": len(jobs),
        "requests": len(attempts),
        "ok_200": statuses.count(200),
        "busy_503": statuses.count(503),
        "other_status": len([s for s in statuses if s not in (200, 503)]),
        "retries": sum(j.retries for j in jobs),
        "503_without_retry_after": len(
            [a for a in attempts if a.status == 503 and a.retry_after is None]
        ),
        "retry_before_retry_after": _early_retries(jobs),
        "queued_jobs": len([q for q in queued if q > QUEUED_THRESHOLD_S]),
        "queued_p95_s": percentile(queued, 95),
        "wall_p50_s": percentile(walls, 50),
        "wall_p95_s": percentile(walls, 95),
        "valid_zips": len([j for j in jobs if j.valid_zip]),
        "failures": len([j for j in jobs if not j.valid_zip]) - expected_broken,
        "spread": "/".join(str(v) for _, v in sorted(spread.items())),
    }


def _early_retries(jobs: List[JobResult]) -> int:
    """Retries sent before the previous 503's Retry-After had passed (should be none)."""
    early = 0
    for j in jobs:
        for prev, nxt in zip(j.attempts, j.attempts[1:]):  # noqa: B905 - one shorter by design
            if prev.retry_after is not None and nxt.t0 - prev.t1 < prev.retry_after - 0.01:
                early += 1
    return early


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.1f}"
    return str(v)


COLUMNS = [
    ("scenario", "scenario"),
    ("policy", "policy"),
    ("jobs", "jobs"),
    ("requests", "requests"),
    ("ok_200", "200s"),
    ("busy_503", "503s"),
    ("other_status", "other"),
    ("retries", "retries"),
    ("queued_jobs", "queued jobs"),
    ("queued_p95_s", "queue wait p95 s"),
    ("wall_p50_s", "wall p50 s"),
    ("wall_p95_s", "wall p95 s"),
    ("failures", "failures"),
    ("spread", "jobs per replica"),
]


def format_table(rows: List[dict]) -> str:
    head = "| " + " | ".join(title for _, title in COLUMNS) + " |"
    rule = "|" + "---|" * len(COLUMNS)
    body = ["| " + " | ".join(_fmt(row.get(key)) for key, _ in COLUMNS) + " |" for row in rows]
    return "\n".join([head, rule, *body])


def describe_kill(victim_job: JobResult) -> dict:
    """What the killed replica's client saw."""
    last = victim_job.attempts[-1]
    return {
        "status": last.status,
        "transport_error": last.error,
        "body_bytes": last.body_bytes,
        "zip_problem": victim_job.zip_problem,
        "valid_zip": victim_job.valid_zip,
    }


# --- the whole proof ----------------------------------------------------------------------------
class Bench:
    """A checkpoint, the videos, 3 replicas and one nginx per policy, all in `workdir`."""

    def __init__(self, workdir: str, replicas: int = 3, max_queue: int = 1, threads: int = 1):
        self.workdir = workdir
        self.n_replicas, self.max_queue, self.threads = replicas, max_queue, threads
        self.replicas: List[Replica] = []
        self.proxies: Dict[str, Proxy] = {}
        self.videos: Dict[int, bytes] = {}
        self.startup_s: Optional[float] = None

    def __enter__(self) -> "Bench":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        if nginx_binary() is None:
            raise RuntimeError("nginx is not installed (apt-get install -y nginx)")
        ckpt = write_checkpoint(os.path.join(self.workdir, "sam2.1_hiera_tiny.pt"))
        for n in FRAME_COUNTS:
            path = write_video(os.path.join(self.workdir, f"video-{n}.mp4"), n, seed=n)
            with open(path, "rb") as f:
                self.videos[n] = f.read()
        t0 = time.monotonic()
        self.replicas = [
            Replica(ckpt, self.workdir, self.max_queue, self.threads).start()
            for _ in range(self.n_replicas)
        ]
        for r in self.replicas:
            r.wait_ready()
        self.startup_s = time.monotonic() - t0
        addrs = [r.addr for r in self.replicas]
        self.proxies = {p: Proxy(self.workdir, addrs, p).start() for p in POLICIES}

    def stop(self) -> None:
        for p in self.proxies.values():
            p.stop()
        for r in self.replicas:
            r.stop()


def run_proof(
    workdir: str, rounds: int = 1, policies=POLICIES, kill: bool = True, log=print
) -> dict:
    """Scenarios a and b for each policy (`rounds` times, alternating), then c; returns rows and
    the raw job records."""
    out = {"rows": [], "jobs": {}, "kill": None, "machine": {"cpus": os.cpu_count()}}
    with Bench(workdir) as bench:
        log(f"3 replicas ready in {bench.startup_s:.0f} s (started together)")
        out["startup_s"] = bench.startup_s
        collected: Dict[tuple, List[JobResult]] = {}
        for rnd in range(rounds):
            order = policies if rnd % 2 == 0 else tuple(reversed(policies))
            for scenario, fn in (("a: 3 clients", scenario_a), ("b: 9 clients", scenario_b)):
                for policy in order:
                    t0 = time.monotonic()
                    jobs = fn(bench.proxies[policy], bench.videos, seed=rnd)
                    collected.setdefault((scenario, policy), []).extend(jobs)
                    row = summarize(scenario, policy, jobs)
                    log(
                        f"round {rnd + 1} {scenario} {policy}: {time.monotonic() - t0:.0f} s, "
                        f"{row['busy_503']} x 503, {row['queued_jobs']} queued, "
                        f"{row['failures']} failures"
                    )
        for (scenario, policy), jobs in collected.items():
            out["rows"].append(summarize(scenario, policy, jobs))
            out["jobs"][f"{scenario} | {policy}"] = [asdict(j) for j in jobs]
        if kill:
            jobs, victim, after = scenario_c(
                bench.proxies["least_conn"], bench.replicas, bench.videos
            )
            out["rows"].append(
                summarize("c: SIGKILL mid-job", "least_conn", jobs, expected_broken=1)
            )
            out["rows"].append(summarize("c: after the kill", "least_conn", after))
            out["jobs"]["c: SIGKILL mid-job | least_conn"] = [asdict(j) for j in jobs]
            out["jobs"]["c: after the kill | least_conn"] = [asdict(j) for j in after]
            out["kill"] = {
                "victim": victim.addr,
                "client0": describe_kill(jobs[0]),
                "others_valid": [j.valid_zip for j in jobs[1:]],
                "others_upstreams": [j.upstream for j in jobs[1:]],
                "after_upstreams": [j.upstream for j in after],
                "nginx_error_log": proxy_log_lines(bench.proxies["least_conn"]),
            }
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="Run scenarios a and b this many times per policy (alternating).",
    )
    parser.add_argument("--no-kill", action="store_true", help="Skip scenario c.")
    parser.add_argument("--json", default=None, help="Write rows and per-job records here.")
    parser.add_argument(
        "--workdir",
        default=None,
        help="Keep checkpoint, videos, logs and nginx configs here (default: a "
        "temporary folder, removed at the end).",
    )
    args = parser.parse_args(argv)
    workdir = args.workdir or tempfile.mkdtemp(prefix="sam2-replicas-")
    os.makedirs(workdir, exist_ok=True)
    t0 = time.monotonic()
    try:
        out = run_proof(workdir, rounds=args.rounds, kill=not args.no_kill)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    out["total_s"] = time.monotonic() - t0
    print()
    print(
        f"3 replicas (tiny, image_size {IMAGE_SIZE}, CPU, --max_queue 1) behind nginx; "
        f"{WIDTH}x{HEIGHT} videos of {FRAME_COUNTS} frames; {os.cpu_count()} CPU cores"
    )
    print(format_table(out["rows"]))
    if out["kill"]:
        k = out["kill"]
        c0 = k["client0"]
        print(
            f"\nSIGKILL of {k['victim']} mid-stream: client 0 got HTTP {c0['status']}, then "
            f"{c0['transport_error'] or 'no transport error'} after {c0['body_bytes']} bytes; "
            f"its bytes as a ZIP: {c0['zip_problem'] or 'VALID (wrong!)'}. Other clients: "
            f"valid ZIPs {k['others_valid']} from {k['others_upstreams']}; after the kill: "
            f"{k['after_upstreams']}."
        )
        for line in k["nginx_error_log"]:
            print("  nginx:", line)
    print(f"\ntotal {out['total_s']:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
