"""Scale-out, proven with real processes: 3 replicas of the server behind a real nginx.

The scenarios are bench/replicas.py's own functions (the script prints the same runs as a table):
(a) 3 clients sending jobs back to back: least-request never queues a job behind another while a
    replica idles, and nobody gets a 503; round-robin does queue (the control that shows the
    check can fail);
(b) 9 clients at once against 3 x (1 + --max_queue 1) places: only 200s and 503s, every 503 has
    Retry-After, clients wait that long, and every job ends with a complete, valid ZIP;
(c) SIGKILL of the replica streaming one client's answer: that client sees a broken response whose
    bytes are not a valid ZIP; the other jobs end with valid ZIPs; new jobs go to the living ones.

Needs nginx (Debian: `apt-get install -y --no-install-recommends nginx`); ~4 minutes on 2 cores.
"""

import importlib.util
import os
import sys

import pytest

pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load(name: str):
    """bench/<name>.py as a module (bench/ is scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(
        f"bench_{name}", os.path.join(REPO, "bench", f"{name}.py")
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


replicas = _load("replicas")
capacity = _load("capacity")

needs_nginx = pytest.mark.skipif(
    replicas.nginx_binary() is None,
    reason="nginx is not installed (apt-get install -y --no-install-recommends nginx)",
)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    with replicas.Bench(str(tmp_path_factory.mktemp("scaleout"))) as b:
        yield b


def _explain(jobs) -> str:
    def attempts(j):
        return [(a.status, round(a.t0, 1), a.retry_after, a.upstream, a.error) for a in j.attempts]

    return "\n".join(
        f"client {j.client} {j.frames} frames: queued {j.queued_s} s, zip: {j.zip_problem}, "
        f"attempts {attempts(j)}"
        for j in jobs
    )


# --- the proxy is configured as the chart configures the gateway -------------------------------
def test_proxy_settings_follow_the_chart(tmp_path):
    import yaml

    with open(os.path.join(REPO, "charts", "sam2-tracker", "values.yaml")) as f:
        values = yaml.safe_load(f)
    assert replicas.ROUTE_TIMEOUT_S == values["predictor"]["timeoutSeconds"]
    assert replicas.MAX_UPLOAD_MB == values["server"]["maxUploadMb"]
    conf = replicas.nginx_conf(str(tmp_path), 8000, ["127.0.0.1:1", "127.0.0.1:2"], "least_conn")
    for line in (
        "least_conn;",
        "proxy_request_buffering off;",
        "proxy_buffering off;",
        f"proxy_read_timeout {replicas.ROUTE_TIMEOUT_S}s;",
        f"proxy_send_timeout {replicas.ROUTE_TIMEOUT_S}s;",
        f"client_max_body_size {replicas.MAX_UPLOAD_MB}m;",
        "proxy_http_version 1.1;",
        "proxy_next_upstream error timeout;",
        "zone sam2_predictor",
    ):
        assert line in conf, line
    directives = "\n".join(line.split("#", 1)[0] for line in conf.splitlines())
    assert "http_503" not in directives and "non_idempotent" not in directives
    assert (
        "least_conn"
        not in replicas.nginx_conf(str(tmp_path), 8000, ["127.0.0.1:1"], "round_robin").split(
            "upstream", 1
        )[1]
    )


# --- (a) -----------------------------------------------------------------------------------------
@needs_nginx
def test_least_request_sends_each_job_to_an_idle_replica(bench):
    jobs = replicas.scenario_a(bench.proxies["least_conn"], bench.videos)
    row = replicas.summarize("a", "least_conn", jobs)
    assert row["busy_503"] == 0 and row["other_status"] == 0, _explain(jobs)
    assert row["failures"] == 0 and row["valid_zips"] == len(jobs), _explain(jobs)
    # No job waited behind another: with 3 clients and 3 replicas there is always an idle one.
    assert row["queued_jobs"] == 0, _explain(jobs)
    assert len({j.upstream for j in jobs}) == 3, _explain(jobs)


@needs_nginx
def test_round_robin_control_queues_jobs_behind_a_busy_replica(bench):
    """The same clients through a balancer that ignores load: the check above would fail."""
    jobs = replicas.scenario_a(bench.proxies["round_robin"], bench.videos)
    row = replicas.summarize("a", "round_robin", jobs)
    assert row["failures"] == 0, _explain(jobs)
    assert row["queued_jobs"] + row["busy_503"] >= 1, _explain(jobs)


# --- (b) -----------------------------------------------------------------------------------------
@needs_nginx
def test_nine_clients_get_200_or_503_with_retry_after_and_all_finish(bench):
    jobs = replicas.scenario_b(bench.proxies["least_conn"], bench.videos)
    row = replicas.summarize("b", "least_conn", jobs)
    statuses = {a.status for j in jobs for a in j.attempts}
    assert statuses <= {200, 503}, _explain(jobs)
    # 9 jobs, 6 places: at least 3 refused at first.
    assert row["busy_503"] >= 3, _explain(jobs)
    assert row["503_without_retry_after"] == 0, _explain(jobs)
    assert all(a.retry_after >= 1 for j in jobs for a in j.attempts if a.status == 503)
    assert row["retry_before_retry_after"] == 0, _explain(jobs)
    assert row["valid_zips"] == 9 and row["failures"] == 0, _explain(jobs)


# --- (c): must run last, it kills a replica ------------------------------------------------------
@needs_nginx
def test_sigkill_mid_stream_breaks_only_that_stream(bench):
    jobs, victim, after = replicas.scenario_c(
        bench.proxies["least_conn"], bench.replicas, bench.videos
    )
    hit = jobs[0]
    assert hit.upstream == victim.addr
    last = hit.attempts[-1]
    # The answer had started (200, some masks), then broke: an error, never a clean end...
    assert last.status == 200 and last.body_bytes > 0, _explain(jobs)
    assert last.error is not None, f"the cut-off answer ended cleanly:\n{_explain(jobs)}"
    # ...and the bytes received are not a ZIP that validates.
    assert not hit.valid_zip and hit.zip_problem is not None, _explain(jobs)
    # The two other jobs, on other replicas, are untouched.
    assert all(j.valid_zip for j in jobs[1:]), _explain(jobs)
    assert all(j.upstream != victim.addr for j in jobs[1:])
    # New jobs after the kill reach the two living replicas.
    assert all(j.valid_zip and j.upstream != victim.addr for j in after), _explain(after)


# --- the capacity model: quick checks of its arithmetic ------------------------------------------
def test_capacity_model_keeps_little_and_utilisation():
    p = capacity.Params(replicas=4, max_queue=2, seconds_per_frame=0.02, overhead_s=2.0)
    sim = capacity.Sim(p)
    capacity.poisson_arrivals(
        sim, rate_per_h=360, hours=10, mean_s=30, fps=30, dist="fixed", seed=0
    )
    res = capacity.summarize(sim.run())
    job_s = 2.0 + 900 * 0.02
    offered = 360 / 3600 * job_s / 4  # 0.5 per replica
    assert res["gpu_util"] == pytest.approx(offered, rel=0.08)
    assert res["rate_503"] < 0.01


def test_capacity_model_least_request_beats_round_robin_on_mixed_lengths():
    out = {}
    for routing in ("least_request", "round_robin"):
        p = capacity.Params(replicas=14, routing=routing, seconds_per_frame=1 / 45.6)
        out[routing] = capacity.simulate(p, 1000, 2, 60, 30, "lognormal", seeds=2)
    assert out["least_request"]["rate_503"] < out["round_robin"]["rate_503"]
    assert out["least_request"]["wait_p95"] < out["round_robin"]["wait_p95"]
