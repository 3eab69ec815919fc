"""The HTTP API and the draw-a-digit page: FastAPI over a `Recognizer`.

    digitrec serve --model default --port 8000      # then open http://127.0.0.1:8000/

Routes: `/` the page, `POST /api/predict` an image, `POST /v1/models/digitrec:predict` TF
Serving's REST shape, `GET /v1/models/digitrec` its status, `/healthz`, `/metrics`
(Prometheus), `/docs` (OpenAPI). Every rejection is a 4xx with `{"error": "..."}`.

Small uploads (a canvas, a scan of one digit) are decoded and normalised on the event loop:
that takes a fraction of a millisecond, less than handing them to a thread would cost. Large
ones go to a worker thread so that the loop stays free. A LiteRT model (tens of microseconds a
call) also runs inline; a Keras or SavedModel one runs in micro-batches
(`batching.MicroBatcher`, `batch_window_s`, `max_batch`).
"""

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from digitrec.backends import LiteRTBackend
from digitrec.batching import MicroBatcher, inline
from digitrec.contract import IMAGE_SHAPE, check_images
from digitrec.errors import ConfigError, DigitrecError, ImageError, InputError
from digitrec.preprocess import limit_pillow_pixels
from digitrec.recognizer import Prepared, Recognizer, digits_of

STATIC_DIR = Path(__file__).parent / "static"
log = logging.getLogger("digitrec.serve")


@dataclass(frozen=True)
class ServeConfig:
    host: str = "127.0.0.1"  # loopback: exposing the server is a deliberate --host 0.0.0.0
    port: int = 8000
    max_upload_bytes: int = 10 * 1024 * 1024
    max_instances: int = 256  # per TF Serving request
    max_batch: int = 64
    batch_window_s: float = 0.002
    inline_bytes: int = 64 * 1024  # uploads up to this size are preprocessed on the event loop
    request_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be a number from 0 to 65535 (0: any free port), got {self.port}")


class PredictResponse(BaseModel):
    digit: int
    confidence: float
    probabilities: list[float]
    uncertain: bool
    reason: str | None = None
    box: list[int] | None = None
    image: list[list[float]]  # the 28×28 the model saw, white ink on black
    number: str | None = None
    digits: list["PredictResponse"] | None = None


class ServingRequest(BaseModel):
    instances: list[list[list[float]]]


class ServingResponse(BaseModel):
    predictions: list[list[float]]


class _Guard:
    """Pure ASGI middleware: the size cap, the time limit, and the metrics of every request.

    (FastAPI's `@app.middleware("http")` wraps each request in extra tasks and streams; at
    hundreds of requests a second on two cores that alone costs a third of the throughput.)
    """

    def __init__(self, app, config: ServeConfig, requests: Counter, latency: Histogram):
        self.app, self.config, self.requests, self.latency = app, config, requests, latency

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def send_and_note(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        declared = dict(scope["headers"]).get(b"content-length", b"")
        try:
            if declared.isdigit() and int(declared) > self.config.max_upload_bytes:
                limit = self.config.max_upload_bytes
                await _error(
                    413, f"request body of {int(declared):,} bytes is over the {limit:,}-byte limit"
                )(scope, receive, send_and_note)
                return
            async with asyncio.timeout(self.config.request_timeout_s):
                await self.app(scope, receive, send_and_note)
        except TimeoutError:
            await _error(408, f"request took over {self.config.request_timeout_s} s")(
                scope, receive, send_and_note
            )
        finally:
            route = scope["path"] if scope["path"] in _KNOWN_ROUTES else "other"
            self.requests.labels(route, str(status[0])).inc()
            self.latency.labels(route).observe(time.perf_counter() - started)


def _request_metrics(registry: CollectorRegistry) -> tuple[Counter, Histogram]:
    """Prometheus counters of requests by route and status, and of latency by route."""
    requests = Counter("digitrec_requests", "HTTP requests", ["route", "status"], registry=registry)
    latency = Histogram(
        "digitrec_request_seconds",
        "Request latency",
        ["route"],
        registry=registry,
        buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5),
    )
    return requests, latency


def _lifespan(recognizer: Recognizer, config: ServeConfig):
    """Set `app.state.infer`: LiteRT answers inline, a Keras model through the micro-batcher.

    A Keras model answers once per batch size here, as the app is built: its compiled function
    is traced before the first request, and a model that cannot answer fails `create_app` with
    its own error, rather than uvicorn's startup, which prints a traceback and exits 3.
    """
    keras_model = not isinstance(recognizer.backend, LiteRTBackend)
    if keras_model:
        for size in (1, 2, 3, 5, config.max_batch):
            recognizer.predict_proba(np.zeros((size, *IMAGE_SHAPE), np.float32))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        if not keras_model:
            app.state.infer = inline(recognizer.predict_proba)
            yield
            return
        batcher = MicroBatcher(recognizer.predict_proba, config.max_batch, config.batch_window_s)
        app.state.infer = batcher.submit
        yield
        batcher.close()

    return lifespan


def _add_serving_routes(app: FastAPI, max_instances: int) -> None:
    """TensorFlow Serving's REST shape, so its clients work unchanged."""

    @app.post("/v1/models/digitrec:predict", response_model=ServingResponse)
    async def serving_predict(body: ServingRequest) -> dict:
        images = _instances(body.instances, max_instances)
        return {"predictions": (await app.state.infer(images)).round(6).tolist()}

    @app.get("/v1/models/digitrec")
    async def serving_status() -> dict:
        state = {"state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        return {"model_version_status": [{"version": "1", **state}]}


def create_app(recognizer: Recognizer, config: ServeConfig = ServeConfig()) -> FastAPI:
    """The FastAPI application serving `recognizer`; tests pass a small real one."""
    limit_pillow_pixels()
    registry = CollectorRegistry()
    requests, latency = _request_metrics(registry)

    app = FastAPI(
        title="digitrec",
        version="1",
        lifespan=_lifespan(recognizer, config),
        description="Handwritten digit recognition. Images in, digits out.",
    )

    app.add_middleware(_Guard, config=config, requests=requests, latency=latency)
    _install_error_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    @app.post("/api/predict", response_model=PredictResponse, openapi_extra=_IMAGE_BODY)
    async def predict(request: Request, multi: bool = Query(False, description="read a number")) -> dict:
        data = await _image_bytes(request, config.max_upload_bytes)
        if len(data) <= config.inline_bytes:
            prepared = recognizer.prepare(data, multi)
        else:
            prepared = await asyncio.to_thread(recognizer.prepare, data, multi)
        return await _answer(app, recognizer, prepared)

    _add_serving_routes(app, config.max_instances)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok", "model": str(recognizer.path)}

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(registry).decode(), media_type=CONTENT_TYPE_LATEST)

    return app


_KNOWN_ROUTES = {
    "/",
    "/api/predict",
    "/v1/models/digitrec:predict",
    "/v1/models/digitrec",
    "/healthz",
    "/metrics",
}
_IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {"image": {"type": "string", "format": "binary"}},
                }
            },
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


async def _image_bytes(request: Request, limit: int) -> bytes:
    """The uploaded image: multipart field `image`, or the raw body; read up to `limit` bytes."""
    kind = request.headers.get("content-type", "")
    if kind.startswith("multipart/form-data"):
        async with request.form(max_files=1, max_fields=4, max_part_size=limit) as form:
            upload = form.get("image")
            if upload is None or isinstance(upload, str):
                raise ImageError("multipart request without a file in the field 'image'")
            return await upload.read()
    if not (kind.startswith("image/") or kind.startswith("application/octet-stream")):
        raise ImageError(
            f"send an image as multipart field 'image' or as a raw image/* body, not {kind or 'no type'}"
        )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _TooLarge(f"request body is over the {limit:,}-byte limit")
    if not body:
        raise ImageError("the request body is empty")
    return bytes(body)


class _TooLarge(DigitrecError):
    pass


async def _answer(app: FastAPI, recognizer: Recognizer, prepared: Prepared) -> dict:
    probs = await app.state.infer(np.stack([d.image for d in digits_of([prepared])]))
    [answer] = recognizer.answer([prepared], probs)
    return _response(answer)


def _response(answer) -> dict:
    record = answer.to_dict()
    record["image"] = np.round(answer.image, 3).tolist()
    if answer.digits is not None:
        record["digits"] = [_response(d) for d in answer.digits]
    return record


def _instances(instances: list[list[list[float]]], limit: int) -> np.ndarray:
    if not instances:
        raise InputError("'instances' is empty; send 28×28 arrays of floats in [0, 1], white ink on black")
    if len(instances) > limit:
        raise InputError(f"{len(instances)} instances is over the limit of {limit} per request")
    return check_images(instances)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _install_error_handlers(app: FastAPI) -> None:
    # Each error digitrec raises on purpose, and the status that answers it.
    statuses = {_TooLarge: 413, ImageError: 400, ConfigError: 422, InputError: 422}

    async def refused(request: Request, exc: Exception) -> JSONResponse:
        return _error(next(code for kind, code in statuses.items() if isinstance(exc, kind)), str(exc))

    for kind in statuses:
        app.add_exception_handler(kind, refused)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error(422, f"invalid request: {where}: {first.get('msg', 'malformed')}")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return _error(500, "internal error; see the server log")


def serve(
    model: str | Path = "default",
    config: ServeConfig = ServeConfig(),
    announce: Callable[[str], None] = print,
) -> None:
    """Take the port, load the model once, say where it is served, and serve until interrupted."""
    import uvicorn

    with listen(config.host, config.port) as listener:
        app = create_app(Recognizer.load(model), config)
        host, port = listener.getsockname()[:2]
        url = f"http://{f'[{host}]' if ':' in host else host}:{port}/"
        announce(f"digitrec: serving {model} on {url} (Ctrl-C stops)")
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        server.run(sockets=[listener])
    if server.should_exit:
        # uvicorn stops only on a signal and re-raises it as it returns; once, under load, Ctrl-C
        # still ended in a plain return (exit 0). A stop by signal is an interruption either way.
        raise KeyboardInterrupt


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to `host`:`port` (0: any free port), ready for uvicorn to serve on.

    Bound here rather than by uvicorn, which reports a taken port in its own words and exits:
    this way it is one clear error, before the model is loaded.
    """
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        # The errno's own words: create_server's message adds the address a second time.
        reason = os.strerror(exc.errno) if exc.errno and exc.errno > 0 else exc.strerror or str(exc)
        raise ConfigError(
            f"cannot listen on {host}:{port}: {reason}; choose another --port or --host"
        ) from exc
