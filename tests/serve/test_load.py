"""A bounded load test on 127.0.0.1: 20 clients upload a 4-s mixture at once to `tisdiss serve` with
2 workers and a queue of 8. Every accepted job completes (or fails with a reason), none is lost,
the rest get 503 with Retry-After, and the server's peak memory is reported and bounded."""

from __future__ import annotations

import io
import json
import threading
import time

import httpx2 as httpx
import soundfile as sf

from tests.serve.conftest import ARTIFACTS, EXAMPLE, tisdiss_serve

CLIENTS = 20
WORKERS, QUEUE = 2, 8
DEADLINE = 120.0  # seconds for the whole run: it stops by itself
PEAK_RSS_LIMIT_MB = 1500.0


def test_twenty_clients_at_once() -> None:
    with tisdiss_serve(
        "--model", "tisdiss-small-8k", "--workers", str(WORKERS), "--queue", str(QUEUE), "--threads", "1"
    ) as server:
        url = server.url
        start = threading.Barrier(CLIENTS)
        answers: list[httpx.Response | None] = [None] * CLIENTS
        data = EXAMPLE.read_bytes()

        def client(i: int) -> None:
            start.wait(30)
            answers[i] = httpx.post(
                f"{url}v1/jobs", files={"file": (f"mix{i}.wav", data)}, data={"preset": "fast"}, timeout=60
            )

        began = time.perf_counter()
        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert all(a is not None for a in answers), "a client got no answer"
        accepted = [a.json()["id"] for a in answers if a is not None and a.status_code == 202]
        rejected = [a for a in answers if a is not None and a.status_code != 202]
        assert all(a.status_code == 503 and int(a.headers["retry-after"]) >= 1 for a in rejected), [
            (a.status_code, a.text) for a in rejected
        ]
        assert WORKERS + QUEUE <= len(accepted) < CLIENTS and len(set(accepted)) == len(accepted)

        states: dict[str, dict] = {}
        while len(states) < len(accepted) and time.perf_counter() - began < DEADLINE:
            for job_id in accepted:
                if job_id not in states:
                    job = httpx.get(f"{url}v1/jobs/{job_id}", timeout=10).json()
                    if job["state"] not in ("queued", "running"):
                        states[job_id] = job
            time.sleep(0.1)
        duration = time.perf_counter() - began
        assert len(states) == len(accepted), f"{len(accepted) - len(states)} jobs unfinished after {DEADLINE} s"
        done = [j for j in states.values() if j["state"] == "done"]
        failed = [j for j in states.values() if j["state"] == "failed"]
        assert all(j["error"] for j in failed) and len(done) + len(failed) == len(accepted)
        assert not failed, [j["error"] for j in failed]
        for job in done[:3]:
            audio = httpx.get(f"{url.rstrip('/')}{job['speakers'][1]['url']}", timeout=10)
            assert abs(sf.info(io.BytesIO(audio.content)).duration - 4.0) < 1e-3
        assert httpx.get(f"{url}v1/health").json()["jobs"] == len(accepted)  # none lost, none extra
        peak = server.rss_peak_mb()
        assert server.stop() == 143
    figures = {
        "clients": CLIENTS,
        "workers": WORKERS,
        "queue": QUEUE,
        "accepted": len(accepted),
        "completed": len(done),
        "failed": len(failed),
        "rejected_503": len(rejected),
        "peak_rss_mb": round(peak, 1),
        "seconds": round(duration, 2),
        "startup_seconds": round(server.started, 2),
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "serve-load.json").write_text(json.dumps(figures, indent=1))
    print(f"load test: {figures}")
    assert peak < PEAK_RSS_LIMIT_MB
