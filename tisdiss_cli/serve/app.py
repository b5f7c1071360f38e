"""The HTTP application: the page, its assets, and the versioned API (``/v1``), documented at ``/docs``.

Every answer that is not a file is JSON, and every error is ``{"error": "one sentence"}`` with its
status: no traceback ever reaches a client (the server's log has them). Job ids are looked up in
the job table; the files a response sends are the ones the job recorded, so no request path ever
names a file.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from ..audio import files as audio
from ..audio.files import OUTPUT_FORMATS, AudioError
from ..audio.info import clock
from ..separation.separator import Separator
from ..util.version import __version__
from . import artifacts
from .auth import BearerAuth
from .config import ServeConfig
from .errors import RequestError
from .info import describe
from .jobs import Job, JobManager, JobState, download_name
from .options import FIELDS, JobOptions
from .uploads import MULTIPART_SLACK, Upload, check_length, receive

log = logging.getLogger(__name__)

MEDIA_TYPES = {
    "wav": "audio/wav",
    "flac": "audio/flac",
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
PAGE_POLICY = "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; object-src 'none'"
# Swagger UI for /docs, from the swagger-ui-bundle-v2 wheel (the serve extra): nothing from a CDN.
SWAGGER_FILES = ("swagger-ui-bundle.js", "swagger-ui.css")
FORM_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "the recording"},
                        **{name: {"type": "string", "description": text} for name, text in FIELDS.items()},
                    },
                }
            }
        },
    }
}
ERROR = {"content": {"application/json": {"example": {"error": "one sentence saying what went wrong"}}}}
UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {**ERROR, "description": "malformed form, no file, or an empty file"},
    401: {**ERROR, "description": "missing or wrong bearer token (servers started with --token)"},
    413: {**ERROR, "description": "upload larger than --max-upload-mb"},
    415: {**ERROR, "description": "not a recording this server can read"},
    422: {**ERROR, "description": "bad option, or a recording it cannot separate (too long, no samples)"},
    503: {**ERROR, "description": "queue or storage full, or shutting down; see Retry-After"},
}
JOB_ERRORS: dict[int | str, dict[str, Any]] = {
    401: UPLOAD_ERRORS[401],
    404: {**ERROR, "description": "no such job (expired or deleted), or no such speaker"},
    409: {**ERROR, "description": "the job has not finished, or failed"},
}


@dataclass
class Service:
    """What the routes use: the one Separator, the jobs, the settings."""

    separator: Separator
    manager: JobManager
    config: ServeConfig


def load_assets() -> dict[str, tuple[bytes, str]]:
    """The page's files (package data) and Swagger UI's, read once: name -> (bytes, media type)."""
    assets = {}
    for item in resources.files("tisdiss_cli.serve").joinpath("static").iterdir():
        suffix = Path(item.name).suffix
        if item.is_file() and suffix in MEDIA_TYPES:
            assets[item.name] = (item.read_bytes(), MEDIA_TYPES[suffix])
    if importlib.util.find_spec("swagger_ui_bundle") is not None:
        import swagger_ui_bundle  # type: ignore[import-untyped]

        folder = Path(swagger_ui_bundle.swagger_ui_path)
        for name in SWAGGER_FILES:
            assets[name] = ((folder / name).read_bytes(), MEDIA_TYPES[Path(name).suffix])
    return assets


def create_app(service: Service) -> FastAPI:
    separator, manager, config = service.separator, service.manager, service.config
    limits = config.limits
    assets = load_assets()
    av = importlib.util.find_spec("av") is not None
    app = FastAPI(
        title="tisdiss",
        version=__version__,
        summary="Separate overlapping talkers: upload a recording, get one track per speaker.",
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(BearerAuth, token=config.token)

    @app.exception_handler(RequestError)
    async def request_error(request: Request, exc: RequestError) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
        return JSONResponse({"error": exc.message}, exc.status, headers=headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        message = "no such page" if exc.status_code == 404 else str(exc.detail)
        return JSONResponse({"error": message}, exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ())[1:]) or "request"
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid')}"}, 422)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"error": "internal error (the server's log has the details)"}, 500)

    # -- the page
    @app.get("/", include_in_schema=False)
    async def page() -> Response:
        body, media = assets["index.html"]
        return Response(body, media_type=media, headers={"Content-Security-Policy": PAGE_POLICY})

    @app.get("/assets/{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        found = assets.get(name)
        if found is None:
            raise RequestError(404, "no such asset")
        return Response(found[0], media_type=found[1], headers={"Cache-Control": "no-cache"})

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        if "swagger-ui-bundle.js" not in assets:
            raise RequestError(404, "the API reference page needs swagger-ui-bundle-v2; /openapi.json has the schema")
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="tisdiss API",
            swagger_js_url="/assets/swagger-ui-bundle.js",
            swagger_css_url="/assets/swagger-ui.css",
            swagger_favicon_url="/assets/favicon.svg",
        )

    # -- the API
    @app.get("/v1/health", tags=["server"], summary="Liveness: 200 while the server runs")
    async def health() -> dict[str, object]:
        return {"status": "stopping" if manager.closing else "ok", "jobs": len(manager.jobs)}

    @app.get("/v1/info", tags=["server"], summary="The model, its presets (quality, measured RTF), formats, limits")
    async def info() -> dict[str, object]:
        return describe(separator, limits, manager.rtf, av=av)

    @app.post(
        "/v1/jobs",
        status_code=202,
        tags=["jobs"],
        summary="Upload a recording; returns the job (poll GET /v1/jobs/{id})",
        openapi_extra=FORM_BODY,
        responses=UPLOAD_ERRORS,
    )
    async def create_job(request: Request) -> JSONResponse:
        job = await _admit(request, limits.max_duration, "POST /v1/jobs")
        return JSONResponse(_view(job), 202, headers={"Location": f"/v1/jobs/{job.id}"})

    @app.get("/v1/jobs/{job_id}", tags=["jobs"], summary="State, progress, depth used, links", responses=JOB_ERRORS)
    async def get_job(job_id: str) -> dict[str, object]:
        return _view(manager.get(job_id))

    @app.delete("/v1/jobs/{job_id}", status_code=204, tags=["jobs"], summary="Cancel and delete", responses=JOB_ERRORS)
    async def delete_job(job_id: str) -> Response:
        manager.delete(job_id)
        return Response(status_code=204)

    @app.get(
        "/v1/jobs/{job_id}/speakers/{k}",
        tags=["results"],
        summary="Speaker k's audio (1-based), in the job's format or ?format=",
        responses={
            **JOB_ERRORS,
            200: {"content": {m: {} for m in ("audio/wav", "audio/flac", "audio/mpeg", "audio/ogg")}},
        },
    )
    async def speaker(job_id: str, k: int, format: str | None = None, download: bool = False) -> FileResponse:
        job = _finished(job_id)
        path = _output(job, k)
        fmt = format or job.options.output.fmt
        if fmt not in OUTPUT_FORMATS:
            raise RequestError(422, f"unknown format {fmt[:20]!r}; choose {', '.join(OUTPUT_FORMATS)}")
        if fmt != job.options.output.fmt:
            path = await run_in_threadpool(_converted, job, k, fmt)
        return _file(path, MEDIA_TYPES[fmt], download_name(job, k, fmt) if download else None)

    @app.get("/v1/jobs/{job_id}/speakers/{k}/picture", tags=["results"], summary="Waveform and spectrogram (PNG)")
    async def speaker_picture(job_id: str, k: int) -> FileResponse:
        job = _finished(job_id)
        _output(job, k)
        return _file(job.pictures[k - 1], "image/png")

    @app.get("/v1/jobs/{job_id}/mixture", tags=["results"], summary="The input as one WAV channel, for A/B")
    async def mixture(job_id: str, download: bool = False) -> FileResponse:
        job = _finished(job_id)
        assert job.mixture is not None
        return _file(job.mixture, "audio/wav", f"{job.upload.stem}_mixture.wav" if download else None)

    @app.get("/v1/jobs/{job_id}/mixture/picture", tags=["results"], summary="The mixture's picture (PNG)")
    async def mixture_picture(job_id: str) -> FileResponse:
        return _file(_finished(job_id).pictures[-1], "image/png")

    @app.get("/v1/jobs/{job_id}/zip", tags=["results"], summary="Every speaker's file in one zip")
    async def archive(job_id: str) -> FileResponse:
        job = _finished(job_id)
        assert job.archive is not None
        return _file(job.archive, "application/zip", f"{job.upload.stem}_separated.zip")

    @app.post(
        "/v1/separate",
        tags=["jobs"],
        summary=f"Short clips (up to {limits.sync_max_duration:g} s here) in one request: a zip of the speakers",
        openapi_extra=FORM_BODY,
        responses={**UPLOAD_ERRORS, 200: {"content": {"application/zip": {}}}},
    )
    async def separate_now(request: Request) -> FileResponse:
        job = await _admit(request, limits.sync_max_duration, "POST /v1/separate (use POST /v1/jobs)")
        try:
            while not job.ended.is_set():
                await asyncio.sleep(0.05)
        except asyncio.CancelledError:  # the client went away, or the server stops
            _forget(job.id)
            raise
        if job.state is not JobState.DONE:
            _forget(job.id)
            if job.state is JobState.CANCELLED:
                raise RequestError(503, "the job was cancelled (deleted, or the server is stopping)", retry_after=30)
            raise RequestError(422 if job.client_error else 500, job.error or "separation failed")
        assert job.archive is not None
        return _file(
            job.archive, "application/zip", f"{job.upload.stem}_separated.zip", after=BackgroundTask(_forget, job.id)
        )

    # -- helpers (closures over the service)
    async def _admit(request: Request, max_duration: float, route: str) -> Job:
        declared = check_length(request.headers.get("content-length"), limits.max_upload_bytes)
        manager.check_open()
        hold = min(declared or limits.max_upload_bytes, limits.max_upload_bytes + MULTIPART_SLACK)
        manager.reserve_upload(hold)
        job_id, folder = manager.new_folder()
        try:
            upload = await receive(
                request.stream(), request.headers.get("content-type"), folder, limits.max_upload_bytes
            )
            options = JobOptions.from_fields(upload.fields)
            info = await run_in_threadpool(_probe, upload)
            if info.duration > max_duration:
                raise RequestError(
                    422,
                    f"{upload.name} is {clock(info.duration)} long; {route} takes recordings of up to "
                    f"{clock(max_duration)}",
                )
            channel = options.output.channel
            if channel is not None and channel >= info.channels:
                raise RequestError(422, f"{upload.name} has {info.channels} channel(s), no channel {channel + 1}")
            try:
                choice = separator.choose_depth(options.preset, options.n_sep, options.n_re)
            except ValueError as exc:
                raise RequestError(422, str(exc)) from None
            length = audio.resampled_length(info.frames, info.sample_rate, separator.sample_rate)
            job = Job(job_id, folder, upload, info, options, choice, separator.plan.num_chunks(length))
            manager.release_upload(hold)
            hold = 0
            manager.admit(job)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        finally:
            manager.release_upload(hold)
        return job

    def _forget(job_id: str) -> None:
        if job_id in manager.jobs:
            manager.delete(job_id)

    def _finished(job_id: str) -> Job:
        job = manager.get(job_id)
        if job.state is not JobState.DONE:
            why = job.error if job.state is JobState.FAILED else f"the job is {job.state.value}"
            raise RequestError(409, f"no result: {why}")
        return job

    def _converted(job: Job, k: int, fmt: str) -> Path:
        target = job.folder / "converted" / f"spk{k}.{fmt}"
        with job.lock:
            if target.is_file():
                return target
            source = job.outputs[k - 1]
            manager.reserve_extra(job, audio.probe(source).frames * 4 + 4096)
            try:
                return artifacts.transcode(source, target, fmt)  # type: ignore[arg-type]
            except (AudioError, OSError) as exc:
                if job.id not in manager.jobs:
                    raise RequestError(404, "no such job (it was deleted)") from None
                raise RequestError(500, f"converting to {fmt} failed: {job.reason(exc)}") from None

    def _view(job: Job) -> dict[str, object]:
        base = f"/v1/jobs/{job.id}"
        done = job.state is JobState.DONE
        remaining, now = manager.remaining(job), manager.clock()
        return {
            "id": job.id,
            "state": job.state.value,
            "input": {
                "name": job.upload.name,
                "duration_seconds": round(job.info.duration, 3),
                "sample_rate": job.info.sample_rate,
                "channels": job.info.channels,
            },
            "depth": {"n_sep": job.choice.depth.n_sep, "n_re": job.choice.depth.n_re, "reason": job.choice.reason},
            "format": job.options.output.fmt,
            "band": job.options.band,
            "denoise": job.options.denoise,
            "progress": {
                "chunks_done": job.chunks_done,
                "chunks_total": job.chunks_total,
                "fraction": 1.0 if done else round(job.chunks_done / max(1, job.chunks_total), 4),
                "queue_position": manager.position(job) if job.state is JobState.QUEUED else None,
                "elapsed_seconds": None if job.started is None else round((job.finished or now) - job.started, 3),
                "remaining_seconds": None if remaining is None or job.state.finished else round(remaining, 1),
            },
            "speakers": [
                {"url": f"{base}/speakers/{k}", "picture": f"{base}/speakers/{k}/picture"}
                for k in range(1, len(job.outputs) + 1)
            ]
            if done
            else [],
            "mixture": {"url": f"{base}/mixture", "picture": f"{base}/mixture/picture"} if done else None,
            "zip": f"{base}/zip" if done else None,
            "warnings": [*job.choice.warnings, *job.warnings],
            "clipped_samples": job.clipped,
            "error": job.error,
            "expires_in_seconds": None if (left := manager.expires_in(job)) is None else round(left),
        }

    return app


def _probe(upload: Upload) -> audio.AudioInfo:
    """The upload's header, or 415 (not audio this server reads) / 422 (audio it cannot use)."""
    try:
        return audio.probe(upload.path)
    except AudioError as exc:
        reason = " ".join(str(exc).split()).removeprefix(f"{upload.path}: ").replace(str(upload.path), upload.name)
        unusable = reason in ("no audio samples",) or reason.startswith("bad header")
        raise RequestError(422 if unusable else 415, f"{upload.name}: {reason}") from None


def _output(job: Job, k: int) -> Path:
    if not 1 <= k <= len(job.outputs):
        raise RequestError(404, f"no speaker {k}; this job has speakers 1 to {len(job.outputs)}")
    return job.outputs[k - 1]


def _file(path: Path, media: str, download: str | None = None, *, after: BackgroundTask | None = None) -> FileResponse:
    if not path.is_file():
        raise RequestError(404, "no such job (it may have expired or been deleted)")
    disposition = "attachment" if download else "inline"
    return FileResponse(
        path, media_type=media, filename=download, content_disposition_type=disposition, background=after
    )
