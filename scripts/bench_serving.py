"""Benchmark the prediction service against ``mlflow models serve`` on the same model.

Starts the servers with the same number of workers on this machine: the service with its
embedded SQLite prediction log (the default), the same service publishing its events to a local
Redis stream (``EVENTS_URL``, every input carried), and ``mlflow models serve``. Drives each with
the same ``wrk`` load (single images at concurrency 1, 8 and 32; batches of 64 and 256),
measures the HTTP floor (``/health/live``) and the in-process SavedModel, and writes
``reports/bench_serving.json`` and ``reports/bench_serving.md``.

The model's variants (``MODEL_VARIANT``: the SavedModel, TFLite float and int8 through LiteRT)
are compared in one run: each service's single-image (c=8) and batch-256 figures beside its own
``/health/live`` and beside the same variant called in-process; and a profile of the service's
request path (cProfile over the Flask app, self time grouped by where the code lives) says where
the time beyond the model goes.

Usage: ``make bench-serving`` (needs ``wrk`` and ``redis-server``: ``apt-get install wrk
redis-server``). Not part of the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import requests

from mnist_contracts.event_store import DEFAULT_MAXLEN
from mnist_pipeline.markdown import table

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))  # app/ (the service's own model loader) beside src/

LUA = """
local body = os.getenv("WRK_BODY_FILE")
if body then
  local f = io.open(body, "rb"); wrk.body = f:read("*a"); f:close()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.status + summary.errors.timeout
  io.write(string.format(
    'RESULT {"requests": %d, "seconds": %.3f, "errors": %d, '
    .. '"p50_ms": %.3f, "p95_ms": %.3f, "p99_ms": %.3f}\\n',
    summary.requests, summary.duration / 1e6, errors,
    latency:percentile(50) / 1e3, latency:percentile(95) / 1e3, latency:percentile(99) / 1e3))
end
"""


LITE = ("tflite-float", "tflite-int8")
VARIANT_SCENARIOS = ("1 image, c=8", "256 images, c=4")


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 180) -> None:
    """Poll ``url`` until it answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited while starting: {url}")
        try:
            if requests.get(url, timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise SystemExit(f"server did not become ready: {url}")


def wrk(url: str, body: Path | None, connections: int, seconds: int, lua: Path) -> dict[str, Any]:
    """Run wrk and return its summary."""
    env = {**os.environ}
    if body is not None:
        env["WRK_BODY_FILE"] = str(body)
    threads = max(1, min(2, connections))
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"]
    out = subprocess.run(
        [*cmd, "-s", str(lua), url], env=env, capture_output=True, text=True, check=True
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    result["requests_per_s"] = round(result["requests"] / result["seconds"], 1)
    return result


def in_process_images_per_s(
    model_dir: Path, batch: int = 256, seconds: float = 3.0, variant: str = "savedmodel"
) -> float:
    """Images/s of one variant called directly, one thread, ``batch`` images a call.

    Through the same function the service calls (:func:`app.serving_model.load_runtime`).
    """
    from app.serving_model import load_runtime
    from mnist_contracts.model import IMAGE_SHAPE

    serve = load_runtime(model_dir, variant)  # type: ignore[arg-type]
    test = np.load(ROOT / "data/prepared/test.npz")["x"]
    images = np.ascontiguousarray(test[:batch]) if batch <= len(test) else test
    for _ in range(5):
        serve(images.reshape(-1, *IMAGE_SHAPE))
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        serve(images)
        calls += 1
    return batch * calls / (time.perf_counter() - started)


# Where a request's self time is spent, by the file (or, for built-ins, the name) of its code.
AREAS = (
    ("model runtime", ("ai_edge_litert", "tensorflow", "/keras/", "TFE_Py")),
    ("JSON decode and encode", ("/json/", "flask/json", "_json.")),
    ("validation (pydantic, flask-openapi3)", ("pydantic", "flask_openapi3")),
    ("prediction log and event ids", ("event_store/", "sqlite3", "threading.py",
                                      "urandom", "tenacity")),
    ("metrics (prometheus)", ("prometheus", "app/metrics.py", "mmap")),
    ("logging", ("/logging/", "app/logs.py")),
    ("numpy", ("numpy",)),
    ("service code (app/)", ("/app/",)),
    ("Flask, Werkzeug", ("/flask/", "/werkzeug/")),
)  # fmt: skip


def profile_requests(
    model_dir: Path, variant: str, tmp: Path, requests_n: int = 3000
) -> dict[str, Any]:
    """Profile single-image ``/predict`` (and ``/health/live``) through the WSGI app, in process.

    The request is built once (werkzeug's ``EnvironBuilder``) and handed to the Flask app as
    Gunicorn would, so no client code is in the profile; HTTP parsing is not either (it is what
    ``/health/live`` measures over the wire). cProfile's self time is grouped into :data:`AREAS`.

    Returns:
        Microseconds per request in total and per area for both routes, and the costliest
        functions of ``/predict``.
    """
    import cProfile
    import io
    import pstats

    from werkzeug.test import EnvironBuilder

    from app import create_app, lifecycle
    from app.settings import Settings

    settings = Settings.model_validate({
        "model_dir": model_dir, "model_variant": variant,
        "prediction_log": tmp / f"profile-{variant}.db",
        "state_dir": tmp / f"profile-state-{variant}", "metrics_file": tmp / "none.json",
        "log_level": "WARNING",
    })  # fmt: skip
    app = create_app(settings)
    lifecycle.start(app)
    image = np.load(ROOT / "data/prepared/test.npz")["x"][0].tolist()
    body = json.dumps({"image": image}).encode()

    def start_response(status: str, headers: object, exc_info: object = None) -> None:
        assert status.startswith("200"), status  # noqa: S101 - a benchmark's own check

    def measure(path: str, data: bytes | None) -> tuple[float, pstats.Stats]:
        builder = EnvironBuilder(path=path, method="POST" if data else "GET", data=data,
                                 content_type="application/json" if data else None)  # fmt: skip
        environ = builder.get_environ()

        def call() -> None:
            env = dict(environ)
            env["wsgi.input"] = io.BytesIO(data or b"")
            for _ in app(env, start_response):
                pass

        for _ in range(200):
            call()
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        for _ in range(requests_n):
            call()
        profiler.disable()
        return time.perf_counter() - started, pstats.Stats(profiler)

    def grouped(stats: pstats.Stats) -> tuple[dict[str, float], list[tuple[float, str, str]]]:
        areas: dict[str, float] = {name: 0.0 for name, _ in AREAS} | {"other": 0.0}
        functions = []
        for (file, line, name), row in stats.stats.items():  # type: ignore[attr-defined]
            where = f"{file} {name}"
            area = next((a for a, marks in AREAS if any(m in where for m in marks)), "other")
            areas[area] += row[2]
            functions.append((row[2], f"{Path(file).name}:{line} {name}", area))
        return areas, sorted(functions, reverse=True)[:12]

    predict_wall, predict_stats = measure("/predict", body)
    live_wall, live_stats = measure("/health/live", None)
    lifecycle.stop(app)
    predict_areas, top = grouped(predict_stats)
    live_areas, _ = grouped(live_stats)
    per = 1e6 / requests_n
    return {
        "variant": variant,
        "requests": requests_n,
        "predict_us": round(predict_wall * per, 1),
        "health_live_us": round(live_wall * per, 1),
        "areas_us": {a: round(t * per, 1) for a, t in
                     sorted(predict_areas.items(), key=lambda x: -x[1])},
        "health_live_areas_us": {a: round(t * per, 1) for a, t in live_areas.items()},
        "top_functions": [{"us": round(t * per, 1), "function": f, "area": a}
                          for t, f, a in top],
    }  # fmt: skip


def bodies(directory: Path) -> dict[str, dict[str, Path]]:
    """Request bodies for both servers: real test digits."""
    test = np.load(ROOT / "data/prepared/test.npz")["x"]
    made: dict[str, dict[str, Path]] = {"ours": {}, "mlflow": {}}
    for n in (1, 64, 256):
        images = test[:n].tolist()
        ours = {"image": images[0]} if n == 1 else {"images": images}
        mlflow_payload = {"inputs": {"images": images}}  # the signature names its one input
        for name, payload in (("ours", ours), ("mlflow", mlflow_payload)):
            path = directory / f"{name}-{n}.json"
            path.write_text(json.dumps(payload))
            made[name][str(n)] = path
    return made


def start_ours(
    port: int, workers: int, tmp: Path, name: str = "ours", events_url: str | None = None,
    variant: str = "savedmodel",
) -> subprocess.Popen[bytes]:  # fmt: skip
    """Gunicorn with the service, as ``make serve`` runs it (``events_url``: to Redis)."""
    prom = tmp / f"prometheus-{name}"
    prom.mkdir()
    env = {
        **os.environ,
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": str(workers),
        "PROMETHEUS_MULTIPROC_DIR": str(prom),
        "PREDICTION_LOG": str(tmp / f"predictions-{name}.db"),
        "STATE_DIR": str(tmp / f"state-{name}"),
        "LOG_LEVEL": "WARNING",
        "MODEL_VARIANT": variant,
    }
    if events_url is not None:
        # Room for every event of the run, so the stream can be checked against the answers.
        env |= {"EVENTS_URL": events_url, "EVENTS_IMAGE_SHARE": "1.0", "EVENTS_MAXLEN": "1000000"}
    return subprocess.Popen(
        [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=(tmp / f"{name}.log").open("wb"),
    )  # fmt: skip


def start_redis(port: int, tmp: Path) -> subprocess.Popen[bytes]:
    """A local Redis for the events run (no persistence: the stream is bounded in memory)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit(
            "bench-serving: redis-server is not installed; apt-get install redis-server"
        )
    return subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def start_mlflow(port: int, workers: int, model_uri: str, tmp: Path) -> subprocess.Popen[bytes]:
    """``mlflow models serve`` on the registered copy of the same SavedModel."""
    cmd = [str(BIN / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local"]
    cmd += ["-h", "127.0.0.1", "-p", str(port), "-w", str(workers)]
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{ROOT / 'mlflow.db'}",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # it execs uvicorn
    }
    return subprocess.Popen(
        cmd, cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=(tmp / "mlflow.log").open("wb")
    )


def _images(scenario: str) -> int:
    return int(scenario.split()[0])


def markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown table."""
    lines = [
        "# Serving benchmark",
        "",
        f"{report['machine']['cores']} cores, {report['workers']} workers each, "
        f"{report['seconds']} s per run, wrk on the same machine. Model: `{report['model']}`.",
        "",
        table(("scenario", "server", "req/s", "images/s", "p50 ms", "p95 ms", "p99 ms", "errors"), [
            (row["scenario"], row["server"], row["requests_per_s"], row["images_per_s"],
             f"{row['p50_ms']:.2f}", f"{row['p95_ms']:.2f}", f"{row['p99_ms']:.2f}", row["errors"])
            for row in report["runs"]
        ]),
    ]  # fmt: skip
    lines += [
        "",
        f"Events run: {report['events_streamed']} events in the Redis stream for "
        f"{report['events_answered']} images wrk saw answered (the stream may hold more: wrk "
        "does not count the answers in flight at its deadline). Deployments bound the stream "
        f"(EVENTS_MAXLEN, default {DEFAULT_MAXLEN}); the run lifts the bound to count them all.",
    ]
    lines += [
        "",
        "## The model's variants",
        "",
        "The same export served three ways (`MODEL_VARIANT`), each service beside its own "
        "`/health/live` and beside the same variant called in-process (one thread, "
        "`app.serving_model.load_runtime`).",
        "",
        table(("variant", "/health/live req/s", "1 image c=8: req/s", "p50 / p99 ms",
               "of /health/live", "in-process 1 image/s", "batch 256: images/s", "p50 / p99 ms",
               "in-process images/s", "of in-process"), [
            (v["variant"], f"{v['health_live_rps']:.0f}", f"{v['single_rps']:.0f}",
             f"{v['single_p50_ms']:.2f} / {v['single_p99_ms']:.2f}", f"{v['single_of_floor']:.2f}x",
             f"{v['in_process_single']:.0f}", f"{v['batch_images_per_s']:.0f}",
             f"{v['batch_p50_ms']:.1f} / {v['batch_p99_ms']:.1f}", f"{v['in_process_batch']:.0f}",
             f"{v['batch_of_in_process']:.2f}x")
            for v in report["variants"]
        ]),
    ]  # fmt: skip
    lines += [
        "",
        "## Where a request's time goes",
        "",
        "cProfile over the Flask app (the WSGI call Gunicorn makes, no HTTP parsing), "
        "single-image `/predict`, self time per request grouped by where the code lives. The "
        "prediction log's writer thread is not in it (it runs beside the request threads).",
    ]
    profiles = report["profiles"]
    rows = [(area, *(f"{p['areas_us'].get(area, 0):.0f} us" for p in profiles))
            for area in profiles[0]["areas_us"]]  # fmt: skip
    walls = (("predict_us", "`/predict`"), ("health_live_us", "`/health/live`"))
    rows += [(f"wall time per {label} request (with the profiler)",
              *(f"{p[key]:.0f} us" for p in profiles)) for key, label in walls]  # fmt: skip
    lines += ["", table(("area", *(p["variant"] for p in profiles)), rows)]
    lines += ["", f"Costliest functions ({report['profiles'][-1]['variant']}):", ""]
    lines += [f"- {f['us']} us: `{f['function']}` ({f['area']})"
              for f in report["profiles"][-1]["top_functions"]]  # fmt: skip
    targets = [(t["target"], t["measured"], t["met"]) for t in report["targets"]]
    lines += ["", table(("target", "measured", "met"), targets)]
    return "\n".join(lines) + "\n"


def paired_rounds(
    urls: tuple[str, str], body: Path, seconds: int, lua: Path, rounds: int = 5
) -> list[dict[str, float]]:
    """Embedded log vs events to Redis, 1 image at c=8, alternating, one pair per round.

    Two runs of one server on a 2-core machine differ by 5-10% on their own (other processes,
    CPU frequency); alternating short runs and taking the median pair cancels most of that.
    """
    pairs = []
    for _ in range(rounds):
        base = wrk(urls[0] + "/predict", body, 8, seconds, lua)
        events = wrk(urls[1] + "/predict", body, 8, seconds, lua)
        pairs.append({
            "embedded_rps": base["requests_per_s"], "events_rps": events["requests_per_s"],
            "embedded_p99_ms": base["p99_ms"], "events_p99_ms": events["p99_ms"],
            "rps_ratio": round(events["requests_per_s"] / max(base["requests_per_s"], 1e-9), 3),
            "p99_ratio": round(events["p99_ms"] / max(base["p99_ms"], 1e-9), 3),
            "events_requests": events["requests"],
        })  # fmt: skip
    return pairs


def targets(
    runs: list[dict[str, Any]], floor: float, in_process: float, pairs: list[dict[str, float]]
) -> list[dict[str, Any]]:
    """The issue's three targets, checked against the runs."""

    def get(server: str, scenario: str) -> dict[str, Any]:
        return next(r for r in runs if r["server"] == server and r["scenario"] == scenario)

    ours8, mlflow8 = get("ours", "1 image, c=8"), get("mlflow", "1 image, c=8")
    events_rps = statistics.median(p["rps_ratio"] for p in pairs)
    events_p99 = statistics.median(p["p99_ratio"] for p in pairs)

    def span(key: str) -> str:
        return f"{min(p[key] for p in pairs):.2f}-{max(p[key] for p in pairs):.2f}x"

    spread = f"median of {len(pairs)} alternating pairs; {span('rps_ratio')}"
    spread_p99 = span("p99_ratio")
    ratio = ours8["requests_per_s"] / max(mlflow8["requests_per_s"], 1e-9)
    batch = get("ours", "256 images, c=4")["images_per_s"]
    return [
        {"target": "1 image c=8: >= 30x mlflow req/s", "measured": f"{ratio:.1f}x",
         "met": ratio >= 30},
        {"target": "1 image c=8: p99 <= 15 ms", "measured": f"{ours8['p99_ms']:.2f} ms",
         "met": ours8["p99_ms"] <= 15},
        {"target": "/predict req/s >= 60% of /health/live req/s",
         "measured": f"{100 * ours8['requests_per_s'] / floor:.0f}% ({floor:.0f} req/s floor)",
         "met": ours8["requests_per_s"] >= 0.6 * floor},
        {"target": "events to Redis (image share 1.0), 1 image c=8: req/s >= 0.9x embedded log",
         "measured": f"{events_rps:.2f}x ({spread})", "met": events_rps >= 0.9},
        {"target": "events to Redis, 1 image c=8: p99 <= 1.1x embedded log",
         "measured": f"{events_p99:.2f}x (pairs {spread_p99})", "met": events_p99 <= 1.1},
        {"target": "batch 256: >= 25% of in-process images/s",
         "measured": f"{100 * batch / in_process:.0f}% ({in_process:.0f} images/s in-process)",
         "met": batch >= 0.25 * in_process},
    ]  # fmt: skip


def variant_targets(variants: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The LiteRT goals: single images near the HTTP floor, batches near in-process speed."""
    found = []
    base = next(v for v in variants if v["variant"] == "savedmodel")
    for v in variants:
        if v["variant"] == "savedmodel":
            continue
        found += [
            {"target": f"{v['variant']}, 1 image c=8: req/s >= 0.6x its /health/live",
             "measured": f"{v['single_of_floor']:.2f}x ({v['single_rps']:.0f} of "
                         f"{v['health_live_rps']:.0f} req/s)",
             "met": v["single_of_floor"] >= 0.6},
            {"target": f"{v['variant']}: /health/live no slower than the SavedModel service's "
                       "(within 10%, this machine's run-to-run spread)",
             "measured": f"{v['health_live_rps']:.0f} vs {base['health_live_rps']:.0f} req/s",
             "met": v["health_live_rps"] >= 0.9 * base["health_live_rps"]},
            {"target": f"{v['variant']}, batch 256: images/s >= 0.5x in-process",
             "measured": f"{v['batch_of_in_process']:.2f}x ({v['batch_images_per_s']:.0f} of "
                         f"{v['in_process_batch']:.0f} images/s)",
             "met": v["batch_of_in_process"] >= 0.5},
        ]  # fmt: skip
    return found


def main() -> None:
    """Run the benchmark and write the reports."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--model-uri", default="models:/mnist-classifier@candidate")
    parser.add_argument(
        "--profile-only", action="store_true", help="only profile the request path; write nothing"
    )
    args = parser.parse_args()
    if args.profile_only:
        with tempfile.TemporaryDirectory(prefix="bench-profile-") as where:
            for variant in ("savedmodel", *LITE):
                print(json.dumps(profile_requests(ROOT / "models/mnist", variant, Path(where)),
                                 indent=1))  # fmt: skip
        return
    if shutil.which("wrk") is None:
        raise SystemExit("bench-serving: wrk is not installed; apt-get install wrk")
    if not (ROOT / "models/mnist/saved_model.pb").is_file():
        raise SystemExit("bench-serving: no models/mnist; run `make repro` first")
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    tmp = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    lua = tmp / "bench.lua"
    lua.write_text(LUA)
    payloads = bodies(tmp)
    scenarios = [("1 image, c=1", "1", 1), ("1 image, c=8", "1", 8), ("1 image, c=32", "1", 32),
                 ("64 images, c=4", "64", 4), ("256 images, c=4", "256", 4)]  # fmt: skip
    runs: list[dict[str, Any]] = []
    ours_port, mlflow_port, events_port, redis_port = (free_port() for _ in range(4))
    redis = start_redis(redis_port, tmp)
    events_url = f"redis://127.0.0.1:{redis_port}/0"
    servers = {
        "ours": (start_ours(ours_port, args.workers, tmp), f"http://127.0.0.1:{ours_port}"),
        "ours+redis": (
            start_ours(events_port, args.workers, tmp, "events", events_url),
            f"http://127.0.0.1:{events_port}",
        ),
        "mlflow": (
            start_mlflow(mlflow_port, args.workers, args.model_uri, tmp),
            f"http://127.0.0.1:{mlflow_port}",
        ),
    }
    for variant in LITE:
        port = free_port()
        servers[f"ours {variant}"] = (
            start_ours(port, args.workers, tmp, variant, variant=variant),
            f"http://127.0.0.1:{port}",
        )
    variant_server = {"savedmodel": "ours", **{v: f"ours {v}" for v in LITE}}
    floors: dict[str, dict[str, Any]] = {}
    try:
        for name, (process, url) in servers.items():
            wait_ready(url + ("/ping" if name == "mlflow" else "/health/ready"), process)
        for variant, name in variant_server.items():
            floors[variant] = wrk(servers[name][1] + "/health/live", None, 8, args.seconds, lua)
            print(f"{name:18s} /health/live {floors[variant]['requests_per_s']:8.1f} req/s")
        floor = floors["savedmodel"]
        for name, (_, url) in servers.items():
            path = "/invocations" if name == "mlflow" else "/predict"
            body = payloads["mlflow" if name == "mlflow" else "ours"]
            for scenario, n, connections in scenarios:
                if name.startswith("ours tflite") and scenario not in VARIANT_SCENARIOS:
                    continue
                result = wrk(url + path, body[n], connections, args.seconds, lua)
                images = round(result["requests_per_s"] * int(n), 1)
                row = {"server": name, "scenario": scenario, "images_per_s": images, **result}
                runs.append(row)
                summary = f"{row['requests_per_s']:8.1f} req/s  p99 {row['p99_ms']:8.2f} ms"
                print(f"{name:18s} {scenario:16s} {summary}  errors {row['errors']}", flush=True)
        pairs = paired_rounds(
            (servers["ours"][1], servers["ours+redis"][1]), payloads["ours"]["1"],
            max(args.seconds // 2, 3), lua,
        )  # fmt: skip
        # Every answered image of the events run reached the stream once the workers drained.
        servers["ours+redis"][0].terminate()
        servers["ours+redis"][0].wait(timeout=60)
        import redis as redis_client

        streamed = int(redis_client.Redis(port=redis_port).xlen("mnist:predictions"))
    finally:
        for process, _ in servers.values():
            process.terminate()
        for process, _ in servers.values():
            process.wait(timeout=60)
        redis.terminate()
    model_dir = ROOT / "models/mnist"
    in_process = in_process_images_per_s(model_dir)
    variants = []
    for variant, name in variant_server.items():
        single = next(r for r in runs if r["server"] == name and r["scenario"] == "1 image, c=8")
        batch = next(r for r in runs if r["server"] == name and r["scenario"] == "256 images, c=4")
        alone = in_process_images_per_s(model_dir, 1, variant=variant)
        batched = in_process_images_per_s(model_dir, 256, variant=variant)
        variants.append({
            "variant": variant,
            "health_live_rps": floors[variant]["requests_per_s"],
            "single_rps": single["requests_per_s"],
            "single_p50_ms": single["p50_ms"], "single_p99_ms": single["p99_ms"],
            "single_of_floor": round(
                single["requests_per_s"] / floors[variant]["requests_per_s"], 3),
            "in_process_single": round(alone, 1),
            "batch_images_per_s": batch["images_per_s"],
            "batch_p50_ms": batch["p50_ms"], "batch_p99_ms": batch["p99_ms"],
            "in_process_batch": round(batched, 1),
            "batch_of_in_process": round(batch["images_per_s"] / batched, 3),
        })  # fmt: skip
    profiles = [profile_requests(model_dir, v, tmp) for v in variant_server]
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True, check=False).stdout.strip()  # fmt: skip
    report = {
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "commit": commit,
        "started_at": started_at,
        "workers": args.workers,
        "seconds": args.seconds,
        "model": args.model_uri,
        "health_live": floor,
        "in_process_images_per_s_batch256": round(in_process, 1),
        "events_streamed": streamed,
        "events_answered": int(sum(r["requests"] * _images(r["scenario"]) for r in runs
                                   if r["server"] == "ours+redis")
                               + sum(p["events_requests"] for p in pairs)),
        "runs": runs,
    }  # fmt: skip
    report["events_pairs"] = pairs
    report["variants"] = variants
    report["profiles"] = profiles
    report["targets"] = targets(runs, floor["requests_per_s"], in_process, pairs)
    report["targets"] += variant_targets(variants)
    (ROOT / "reports").mkdir(exist_ok=True)
    (ROOT / "reports/bench_serving.json").write_text(json.dumps(report, indent=2) + "\n")
    (ROOT / "reports/bench_serving.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
