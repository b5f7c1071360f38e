"""Every route of the server in process: the page and its assets, the job's life, its results and
their formats, the synchronous route, and outputs bit-identical to `tisdiss separate`."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from tests.serve.conftest import Server, recording
from tisdiss_cli.audio import denoise
from tisdiss_cli.cli import _register_commands, app
from tisdiss_cli.serve.info import measure_speed

_register_commands()


def test_page_assets_docs_and_schema(make_server) -> None:
    server: Server = make_server()
    page = server.client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for name in ("app.js", "style.css", "favicon.svg"):
        assert f"/assets/{name}" in page.text
        asset = server.client.get(f"/assets/{name}")
        assert asset.status_code == 200 and len(asset.content) > 100
        text = asset.text.replace('xmlns="http://www.w3.org/2000/svg"', "")  # a name, not an address
        assert "http:" not in text and "https:" not in text  # nothing is fetched from elsewhere
    assert "http:" not in page.text and "https:" not in page.text
    assert server.client.get("/assets/..%2Fapp.py").status_code == 404
    assert server.client.get("/assets/nothing.js").json() == {"error": "no such asset"}
    docs = server.client.get("/docs")
    assert docs.status_code == 200 and "/assets/swagger-ui-bundle.js" in docs.text and "cdn" not in docs.text
    assert server.client.get("/assets/swagger-ui-bundle.js").status_code == 200
    schema = server.client.get("/openapi.json").json()
    assert set(schema["paths"]) == {
        "/v1/health",
        "/v1/info",
        "/v1/jobs",
        "/v1/jobs/{job_id}",
        "/v1/jobs/{job_id}/speakers/{k}",
        "/v1/jobs/{job_id}/speakers/{k}/picture",
        "/v1/jobs/{job_id}/mixture",
        "/v1/jobs/{job_id}/mixture/picture",
        "/v1/jobs/{job_id}/zip",
        "/v1/separate",
    }
    form = schema["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert {"file", "preset", "n_sep", "n_re", "format"} <= set(form["properties"])
    assert {"413", "415", "422", "503"} <= set(schema["paths"]["/v1/jobs"]["post"]["responses"])
    assert server.client.get("/v1/health").json() == {"status": "ok", "jobs": 0}
    missing = server.client.get("/no/such/page")
    assert missing.status_code == 404 and missing.json() == {"error": "no such page"}
    assert server.client.put("/v1/jobs").status_code == 405


def test_info_has_presets_with_measured_speed(make_server) -> None:
    server: Server = make_server()
    info = server.client.get("/v1/info").json()
    assert info["model"]["sample_rate"] == 8000 and info["model"]["speakers"] == 2
    assert [(p["name"], p["n_sep"], p["n_re"]) for p in info["presets"]] == [
        ("fast", 1, 1),
        ("balanced", 2, 1),
        ("best", 2, 3),
    ]
    assert info["speed_measured"] is False and all(p["rtf"] is None for p in info["presets"])
    assert info["limits"]["queue"] == 4 and info["formats"] == ["wav", "flac", "mp3", "opus"]
    assert info["denoise"] is denoise.available()
    server.manager.rtf.update(measure_speed(server.manager.separator))
    measured = server.client.get("/v1/info").json()
    assert measured["speed_measured"] and all(p["rtf"] > 0 for p in measured["presets"])


def test_bundled_model_presets_show_the_cards_quality(make_server, tiny_separator) -> None:
    from tisdiss_cli.serve.info import presets

    bundled = pytest.importorskip("tisdiss_cli.separation.separator").Separator("tisdiss-small-8k", device="cpu")
    shown = {p.name: p.quality for p in presets(bundled, {})}
    card = bundled.loaded.card
    assert card.quality is not None
    expected = {name: card.quality.by_n_re[depth.n_re] for name, depth in card.presets.items()}
    assert shown == expected and len(expected) == 3  # models/registry.toml: presets and by_n_re


def test_a_job_from_upload_to_downloads(make_server, tmp_path: Path) -> None:
    server: Server = make_server()
    src = recording(tmp_path / "interview.wav", 2.6, rate=16000, channels=2)
    posted = server.post(src, preset="best", speakers="2")
    assert posted.status_code == 202
    job = posted.json()
    assert posted.headers["location"] == f"/v1/jobs/{job['id']}"
    assert len(job["id"]) >= 20 and job["state"] in ("queued", "running")
    assert job["depth"] == {"n_sep": 2, "n_re": 3, "reason": "preset best"}
    assert job["input"] == {"name": "interview.wav", "duration_seconds": 2.6, "sample_rate": 16000, "channels": 2}
    done = server.wait(job["id"])
    assert done["state"] == "done", done
    progress = done["progress"]
    assert progress["chunks_done"] == progress["chunks_total"] == 2 and progress["fraction"] == 1.0
    assert progress["elapsed_seconds"] > 0 and progress["remaining_seconds"] is None
    assert 0 < done["expires_in_seconds"] <= 3600

    frames = int(2.6 * 16000)
    for k, speaker in enumerate(done["speakers"], start=1):
        audio = server.client.get(speaker["url"])
        assert audio.status_code == 200 and audio.headers["content-type"] == "audio/wav"
        assert "content-disposition" not in audio.headers  # inline, for the players
        data, rate = sf.read(io.BytesIO(audio.content))
        assert rate == 16000 and data.shape == (frames,)
        picture = server.client.get(speaker["picture"])
        assert picture.headers["content-type"] == "image/png" and picture.content[:8] == b"\x89PNG\r\n\x1a\n"
        download = server.client.get(speaker["url"], params={"download": "1"})
        assert f'filename="interview_spk{k}.wav"' in download.headers["content-disposition"]
        assert download.content == audio.content
    for fmt, rate in (("flac", 16000), ("mp3", 16000), ("opus", 16000)):
        converted = server.client.get(done["speakers"][0]["url"], params={"format": fmt, "download": "1"})
        assert converted.status_code == 200, converted.text
        assert f'filename="interview_spk1.{fmt}"' in converted.headers["content-disposition"]
        info = sf.info(io.BytesIO(converted.content))
        assert info.samplerate == rate and abs(info.duration - 2.6) < 0.1
    mixture = server.client.get(done["mixture"]["url"])
    mono, _ = sf.read(io.BytesIO(mixture.content))
    original, _ = sf.read(src)
    np.testing.assert_allclose(mono, original.mean(axis=1), atol=2e-7)  # the input, channels averaged
    assert server.client.get(done["mixture"]["picture"]).content[:4] == b"\x89PNG"
    archive = zipfile.ZipFile(io.BytesIO(server.client.get(done["zip"]).content))
    assert archive.namelist() == ["interview_spk1.wav", "interview_spk2.wav"]
    assert archive.read("interview_spk2.wav") == server.client.get(done["speakers"][1]["url"]).content

    base = done["speakers"][0]["url"].rsplit("/", 1)[0]
    assert server.client.get(f"{base}/3").status_code == 404
    assert server.client.get(f"{base}/0").json()["error"] == "no speaker 0; this job has speakers 1 to 2"
    assert server.client.get(f"{base}/one").status_code == 422
    assert server.client.get(f"{base}/1", params={"format": "aiff"}).status_code == 422
    assert server.client.get("/v1/jobs/not-a-job").status_code == 404

    folder = server.root / job["id"]
    assert folder.is_dir()
    assert server.client.delete(f"/v1/jobs/{job['id']}").status_code == 204
    assert not folder.exists() and server.manager.disk.used == 0
    assert server.client.get(f"/v1/jobs/{job['id']}").status_code == 404
    assert server.client.delete(f"/v1/jobs/{job['id']}").status_code == 404


def test_results_of_an_unfinished_job_are_409(make_server, short_wav: Path) -> None:
    server: Server = make_server(gated=True)
    job = server.post(short_wav).json()
    assert server.gate is not None and server.gate.entered.acquire(timeout=30)
    running = server.client.get(f"/v1/jobs/{job['id']}").json()
    assert running["state"] == "running" and running["speakers"] == [] and running["zip"] is None
    for route in ("speakers/1", "speakers/1/picture", "mixture", "zip"):
        answer = server.client.get(f"/v1/jobs/{job['id']}/{route}")
        assert answer.status_code == 409 and answer.json() == {"error": "no result: the job is running"}
    server.gate.open.set()
    assert server.wait(job["id"])["state"] == "done"


@pytest.mark.numerics
@pytest.mark.parametrize(
    ("fields", "flags"),
    [
        ({}, []),
        (
            {"preset": "fast", "format": "flac", "speakers": "3"},
            ["--preset", "fast", "--format", "flac", "--speakers", "3"],
        ),
        ({"n_re": "2", "float": "true"}, ["--nre", "2", "--float"]),
        ({"band": "model"}, ["--band", "model"]),
        pytest.param(
            {"denoise": "true"},
            ["--denoise"],
            marks=pytest.mark.skipif(not denoise.available(), reason="RNNoise is in the denoise extra"),
        ),
    ],
)
def test_outputs_are_bit_identical_to_tisdiss_separate(
    make_server, tiny_checkpoint: Path, tmp_path: Path, fields: dict[str, str], flags: list[str]
) -> None:
    server: Server = make_server()
    src = recording(tmp_path / "talk.wav", 3.1, rate=16000, channels=2, seed=4)  # resampled, 3 chunks
    job = server.wait(server.post(src, **fields).json()["id"])
    assert job["state"] == "done" and job["progress"]["chunks_total"] == 3
    assert job["band"] == fields.get("band", "full") and job["denoise"] is ("denoise" in fields)
    served = [server.client.get(s["url"]).content for s in job["speakers"]]

    out = tmp_path / "cli"
    cli = ["separate", str(src), "-o", str(out), "-m", str(tiny_checkpoint), "--precision", "fp32", "-q", *flags]
    result = CliRunner().invoke(app, cli)
    assert result.exit_code == 0, result.output
    written = [p.read_bytes() for p in sorted(out.glob(f"talk_spk*.{fields.get('format', 'wav')}"))]
    assert len(served) == len(written) == int(fields.get("speakers", len(written)))
    for mine, theirs in zip(served, written, strict=True):
        np.testing.assert_array_equal(sf.read(io.BytesIO(mine))[0], sf.read(io.BytesIO(theirs))[0])
    if "float" not in fields:  # float WAV's PEAK chunk holds the time it was written
        assert served == written


def test_the_synchronous_route_returns_a_zip(make_server, short_wav: Path, tmp_path: Path) -> None:
    server: Server = make_server(sync_max_duration=2.0)
    answer = server.post(short_wav, "/v1/separate", preset="fast", speakers="2")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/zip"
    assert 'filename="meeting_separated.zip"' in answer.headers["content-disposition"]
    archive = zipfile.ZipFile(io.BytesIO(answer.content))
    assert archive.namelist() == ["meeting_spk1.wav", "meeting_spk2.wav"]
    assert sf.info(io.BytesIO(archive.read("meeting_spk1.wav"))).frames == int(1.2 * 8000)
    assert server.manager.jobs == {} and list(server.root.iterdir()) == []  # nothing kept after the answer

    long = recording(tmp_path / "long.wav", 2.5)
    refused = server.post(long, "/v1/separate")
    assert refused.status_code == 422
    assert refused.json()["error"] == (
        "long.wav is 0:02.50 long; POST /v1/separate (use POST /v1/jobs) takes recordings of up to 0:02.00"
    )
    assert server.post(long).status_code == 202  # a job takes it
