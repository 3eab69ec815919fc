"""The HTTP API and the draw-a-digit page: FastAPI over a `Recognizer`.

    digitrec serve --port 8000      # the bundled model on LiteRT int8; then open http://127.0.0.1:8000/

Routes: `/` the page, `POST /api/predict` an image (`?profile=NAME` reads it with the model
adapted to NAME, `?explain=1` says why), `POST /api/feedback` a correction to learn from (every
`adapt_every` corrections of a profile adapt a model to it in the background),
`POST /v1/models/digitrec:predict` TF Serving's REST shape, `GET /v1/models/digitrec` its status,
`/healthz`, `/metrics` (Prometheus), `/docs` and `/redoc` (OpenAPI, from the package's own
files). Every rejection is a 4xx (429 when too much work waits) with `{"error": "..."}`.

Hostile clients are bounded at each step (docs/RELIABILITY.md): the Host header must name this
server; every body is counted as it arrives, whatever its encoding, and cut off at
`max_upload_bytes`; a connection has `header_timeout_s` to send its headers and a request
`request_timeout_s` to be answered. An image's size is read from its header and checked before
anything is decoded; a small one (a canvas, a scan of one digit) is decoded on the event loop,
where it takes a fraction of a millisecond, and a larger one, like a large JSON body, on the
bounded `WorkPool`, so that the loop never stalls and memory stays within a budget. A LiteRT model
(tens of microseconds a call) runs inline; a Keras or SavedModel one in micro-batches.
"""

import asyncio
import contextlib
import ctypes
import dataclasses
import ipaddress
import json
import logging
import os
import re
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector
from pydantic import BaseModel, Field, StrictFloat, ValidationError
from starlette.exceptions import HTTPException

from digitrec.artifact import BUNDLED, PRETRAINED_DIR
from digitrec.backends import LiteRTBackend
from digitrec.batching import Busy, MicroBatcher, WorkPool, inline
from digitrec.contract import IMAGE_SHAPE, check_images
from digitrec.corrections import CorrectionStore, checked_profile
from digitrec.errors import ConfigError, DataError, ImageError, InputError, ModelError
from digitrec.explanation import explain
from digitrec.preprocess import limit_pillow_pixels, open_image
from digitrec.profiles import BackgroundAdaptation, ProfileModels
from digitrec.recognizer import Prediction, Prepared, Recognizer, digits_of

STATIC_DIR = Path(__file__).parent / "static"
log = logging.getLogger("digitrec.serve")
BYTES_PER_PIXEL = 28  # peak memory of decoding and cleaning one pixel (RGBA, measured: 36 MP → 1 GB)
BYTES_PER_JSON_BYTE = 40  # peak memory of parsing one byte of `instances` into Python floats
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own, for several processes
MAX_AUTO_WORKERS = 4
WORKER_MIN_LIFE_S = 10.0  # a worker that ends sooner failed to start
PR_SET_PDEATHSIG = 1  # Linux prctl: the signal a process gets when its parent ends
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@dataclass(frozen=True)
class ServeConfig:
    host: str = "127.0.0.1"  # loopback: exposing the server is a deliberate --host 0.0.0.0
    port: int = 8000
    allowed_hosts: tuple[str, ...] = ()  # Host headers served; () = the bound name (any for 0.0.0.0)
    trust_model: bool = False  # load a SavedModel, or a .tflite no sidecar vouches for
    max_upload_bytes: int = 10 * 1024 * 1024  # every body, every route, chunked or not
    max_instances: int = 256  # per TF Serving request
    max_batch: int = 64
    batch_window_s: float = 0.002
    inline_pixels: int = 100_000  # images declaring up to this many pixels are decoded on the loop
    inline_bytes: int = 64 * 1024  # ... and bodies up to this size parsed there
    work_threads: int = 2
    work_memory_bytes: int = 1_200_000_000  # in flight on the work pool: one 40 MP decode at most
    max_waiting: int = 16  # jobs waiting for the pool; more are answered 429 at once
    request_timeout_s: float = 10.0
    header_timeout_s: float = 5.0  # from connection (or last response) to complete headers
    keep_alive_s: float = 5.0
    max_connections: int = 256  # beyond it, requests are answered 503
    workers: int = 0  # processes serving; 0: one per core (at most 4) for a LiteRT model, else 1
    adapt_every: int = 20  # corrections of a profile between adaptations to it; 0: never
    adapt_base: str = "default"  # the Keras model adaptations start from

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be a number from 0 to 65535 (0: any free port), got {self.port}")
        if not 0 <= self.workers <= 64:
            raise ConfigError(f"workers must be a number from 0 to 64 (0: one per core), got {self.workers}")
        for name in ("request_timeout_s", "header_timeout_s", "keep_alive_s", "max_connections"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")


# Numbers only: "0.5" and true are refused, as are NaN and infinity.
Pixel = Annotated[StrictFloat, Field(allow_inf_nan=False)]


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
    model: str | None = None  # the model that answered: the server's, or profile:NAME
    explanation: dict | None = None  # with ?explain=1: saliency, runner-up, training digits like it


class Correction(BaseModel):
    """A correction as JSON: the 28×28 the model saw (white on black) and the digit it shows."""

    image: list[list[Pixel]]
    label: int = Field(ge=0, le=9)
    profile: str = "me"
    predicted: int | None = Field(None, ge=0, le=9)
    source: str = "api"


class FeedbackResponse(BaseModel):
    id: int  # the correction's, once it is on disk
    profile: str
    corrections: int  # the profile's, this one included
    adapting: bool  # an adaptation to the profile is under way


class ServingRequest(BaseModel):
    instances: list[list[list[Pixel]]]


class ServingResponse(BaseModel):
    predictions: list[list[float]]


class _TooLarge(HTTPException):
    def __init__(self, limit: int, size: int | None = None):
        what = f"request body of {size:,} bytes" if size is not None else "request body"
        super().__init__(413, f"{what} is over the {limit:,}-byte limit", {"connection": "close"})


class _Guard:
    """Pure ASGI middleware: Host, body size and time limits, and the metrics of every request.

    The body is counted in `receive`, as it arrives, so the limit holds for every route and for
    chunked bodies, which declare no length. (FastAPI's `@app.middleware("http")` wraps each
    request in extra tasks and streams; on two cores that alone costs a third of the throughput.)
    """

    def __init__(self, app, config: ServeConfig, requests: Counter, latency: Histogram):
        self.app, self.config, self.requests, self.latency = app, config, requests, latency
        self.hosts = _allowed_hosts(config)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [0]

        async def send_and_note(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self._guarded(scope, receive, send_and_note, status)
        finally:
            route = scope["path"] if scope["path"] in _KNOWN_ROUTES else "other"
            self.requests.labels(route, str(status[0] or 500)).inc()
            self.latency.labels(route).observe(time.perf_counter() - started)

    async def _guarded(self, scope, receive, send, status: list[int]) -> None:
        limit, host, declared = self.config.max_upload_bytes, b"", b""
        for name, value in scope["headers"]:
            if name == b"host":
                host = value
            elif name == b"content-length":
                declared = value
        if self.hosts is not None and host and _host_name(host) not in self.hosts:
            name = _host_name(host)
            refusal = f"this server does not answer for host {name!r}; start it with --allowed-host {name}"
            await _error(400, refusal[:300])(scope, receive, send)
            return
        if declared.isdigit() and int(declared) > limit:
            await _error(413, _TooLarge(limit, int(declared)).detail, close=True)(scope, receive, send)
            return
        received = 0

        async def counted_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise _TooLarge(limit)
            return message

        try:
            async with asyncio.timeout(self.config.request_timeout_s):
                await self.app(scope, counted_receive, send)
        except TimeoutError:
            if not status[0]:
                message = f"request took over {self.config.request_timeout_s} s"
                await _error(408, message, close=True)(scope, receive, send)
        except _TooLarge as exc:  # read outside a route (its handler answers inside one)
            if not status[0]:
                await _error(413, exc.detail, close=True)(scope, receive, send)


def _allowed_hosts(config: ServeConfig) -> frozenset[str] | None:
    """Host names this server answers to (against DNS rebinding); None: any."""
    names = {name.lower().strip("[]") for name in config.allowed_hosts}
    if "*" in names:
        return None
    if not names:
        if config.host in ("0.0.0.0", "::", ""):
            return None  # exposed on purpose, under any name; --allowed-host narrows it
        names = {config.host.lower().strip("[]")}
    with contextlib.suppress(ValueError):
        if any(ipaddress.ip_address(name).is_loopback for name in names if name[:1].isdigit() or ":" in name):
            names |= set(LOOPBACK_NAMES)
    if "localhost" in names:
        names |= set(LOOPBACK_NAMES)
    return frozenset(names)


def _host_name(host: bytes) -> str:
    """`example.com` of `example.com:8000`, `::1` of `[::1]:8000`."""
    text = host.decode("latin-1").strip().lower()
    if text.startswith("["):
        return text[1:].partition("]")[0]
    return text.rpartition(":")[0] if text.count(":") == 1 else text


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
    """Set `app.state.infer` (LiteRT inline, Keras through the micro-batcher) and the work pool.

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
        app.state.work = WorkPool(config.work_threads, config.work_memory_bytes, config.max_waiting)
        app.state.adaptation = BackgroundAdaptation(config.adapt_base, config.adapt_every)
        app.state.recognizer = recognizer
        batcher = None
        if keras_model:
            batcher = MicroBatcher(recognizer.predict_proba, config.max_batch, config.batch_window_s)
            app.state.infer = batcher.submit
        else:
            app.state.infer = inline(recognizer.predict_proba)
        yield
        if batcher:
            batcher.close()
        app.state.work.close()
        app.state.adaptation.close()

    return lifespan


def create_app(
    recognizer: Recognizer, config: ServeConfig = ServeConfig(), store: CorrectionStore | None = None
) -> FastAPI:
    """The FastAPI application serving `recognizer`, keeping corrections in `store` (default: the
    user's; opened here, so a damaged one stops the server before it starts); tests pass small real ones."""
    limit_pillow_pixels()
    store = store or CorrectionStore()
    adapted = ProfileModels()
    name = model_name(recognizer)
    registry = CollectorRegistry()
    requests, latency = _request_metrics(registry)
    if shared_metrics := os.environ.get(METRICS_DIR_VARIABLE):  # several workers: /metrics sums them
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=shared_metrics)
    app = FastAPI(
        title="digitrec",
        version="1",
        lifespan=_lifespan(recognizer, config),
        description="Handwritten digit recognition. Images in, digits out.",
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(_Guard, config=config, requests=requests, latency=latency)
    _install_error_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _add_page_routes(app, registry, name)

    @app.post("/api/predict", response_model=PredictResponse, openapi_extra=_IMAGE_BODY)
    async def predict(
        request: Request,
        multi: bool = Query(False, description="read a number"),
        profile: str | None = Query(None, description="read with the model adapted to this profile, if any"),
        explain: bool = Query(False, description="say why: saliency map, runner-up, training digits like it"),
    ) -> Response:
        own = adapted.get(checked_profile(profile)) if profile else None
        data = await _image_bytes(app, config, request)
        prepared = await _prepare(app, recognizer, config, data, multi)
        answer = await _answer(app, own or recognizer, prepared)
        record = _response(answer) | {"model": f"profile:{profile}" if own else name}
        if explain:
            await app.state.work.run(0, _add_explanations, own or recognizer, answer, record)
        return _json(record)

    @app.post("/api/feedback", response_model=FeedbackResponse, openapi_extra=_FEEDBACK_BODY)
    async def feedback(
        request: Request,
        label: int | None = Query(None, ge=0, le=9, description="the right digit, for an image body"),
        profile: str = Query("me", description="whose handwriting this is"),
    ) -> Response:
        """A correction: the right digit of an image, kept to adapt a model to the writer's hand."""
        if request.headers.get("content-type", "").lower().startswith("application/json"):
            body = await request.body()
            correction = await _off_loop_if_large(app, config, len(body), _correction, body)
        else:
            if label is None:
                raise InputError("say the right digit: POST /api/feedback?label=D with the image")
            prepared = await _prepare(
                app, recognizer, config, await _image_bytes(app, config, request), False
            )
            answer = await _answer(app, recognizer, prepared)
            image = prepared.whole.image
            correction = Correction.model_construct(
                image=image, label=label, profile=profile, predicted=answer.digit
            )
        kept = await asyncio.to_thread(_keep, store, correction)  # on disk before the answer
        adapting = app.state.adaptation.corrected(correction.profile, kept["corrections"])
        return _json(kept | {"adapting": adapting})

    @app.post("/v1/models/digitrec:predict", response_model=ServingResponse, openapi_extra=_SERVING_BODY)
    async def serving_predict(request: Request) -> Response:
        """TensorFlow Serving's REST shape, so its clients work unchanged."""
        body = await request.body()
        images = await _off_loop_if_large(app, config, len(body), _instances, body, config.max_instances)
        return _json({"predictions": (await app.state.infer(images)).round(6).tolist()})

    @app.get("/v1/models/digitrec")
    async def serving_status() -> dict:
        state = {"state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        return {"model_version_status": [{"version": "1", **state}]}

    return app


def _add_page_routes(app: FastAPI, registry: CollectorRegistry, name: str) -> None:
    """The page, health, metrics, and the API's documentation from the package's own files."""

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok", "model": name}

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(registry).decode(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="digitrec API",
            swagger_js_url="/static/docs/swagger-ui-bundle.js",
            swagger_css_url="/static/docs/swagger-ui.css",
            swagger_favicon_url="/static/docs/favicon-32x32.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title="digitrec API",
            redoc_js_url="/static/docs/redoc.standalone.js",
            redoc_favicon_url="/static/docs/favicon-32x32.png",
            with_google_fonts=False,
        )


def model_name(recognizer: Recognizer) -> str:
    """How responses name the model: its bundled name, else its file or folder name, never a path."""
    if recognizer.path is None:
        return "a model in memory"
    for name, where in BUNDLED.items():
        if (PRETRAINED_DIR / where).resolve() == recognizer.path.resolve():
            return name
    return recognizer.path.name


_KNOWN_ROUTES = {
    "/",
    "/api/predict",
    "/api/feedback",
    "/v1/models/digitrec:predict",
    "/v1/models/digitrec",
    "/healthz",
    "/metrics",
}
_IMAGE_TYPES = ("image/png", "image/jpeg", "image/bmp", "image/gif", "image/webp", "image/tiff")
_IMAGE_CONTENT: dict[str, Any] = {
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "required": ["image"],
            "properties": {"image": {"type": "string", "format": "binary"}},
        }
    },
    **{kind: {"schema": {"type": "string", "format": "binary"}} for kind in _IMAGE_TYPES},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
}
_IMAGE_BODY = {"requestBody": {"required": True, "content": _IMAGE_CONTENT}}
_FEEDBACK_BODY = {  # the 28×28 as JSON, or an image with ?label=D
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": Correction.model_json_schema()}, **_IMAGE_CONTENT},
    }
}
_SERVING_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": ServingRequest.model_json_schema()}},
    }
}


async def _image_bytes(app: FastAPI, config: ServeConfig, request: Request) -> bytes:
    """The uploaded image: multipart field `image`, or the raw body (the guard caps both)."""
    kind = request.headers.get("content-type", "").lower()
    if kind.startswith("multipart/form-data"):
        body = await request.body()
        content_type = request.headers["content-type"]
        data = await _off_loop_if_large(app, config, len(body), _multipart_image, body, content_type)
    elif kind.startswith(("image/", "application/octet-stream")):
        data = await request.body()
    else:
        raise ImageError(
            f"send an image as multipart field 'image' or as a raw image/* body, not {kind[:80] or 'no type'}"
        )
    if not data:
        raise ImageError("the request body is empty")
    return data


def _multipart_image(body: bytes, content_type: str) -> bytes:
    """The file in a multipart body's field `image`, parsed in memory: a large body on the pool,
    where Starlette's parser would run on the event loop and spool to disk."""
    from python_multipart.multipart import MultipartParser, parse_options_header

    boundary = parse_options_header(content_type)[1].get(b"boundary")
    if not boundary:
        raise ImageError("multipart request without a boundary in its content-type")
    parts: list[tuple[bytes, bytearray]] = []  # (Content-Disposition, data) of each part
    header: list[bytes] = [b"", b""]

    def header_field(data: bytes, start: int, end: int) -> None:
        header[0] += data[start:end]

    def header_value(data: bytes, start: int, end: int) -> None:
        header[1] += data[start:end]

    def header_end() -> None:
        if header[0].lower() == b"content-disposition":
            parts[-1] = (header[1], parts[-1][1])
        header[:] = [b"", b""]

    callbacks = {
        "on_part_begin": lambda: parts.append((b"", bytearray())),
        "on_part_data": lambda data, start, end: parts[-1][1].extend(data[start:end]),
        "on_header_field": header_field,
        "on_header_value": header_value,
        "on_header_end": header_end,
    }
    try:
        parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
        parser.write(body)
        parser.finalize()
    except Exception as exc:  # the parser's own errors name no type worth telling a client apart
        raise ImageError(f"malformed multipart body: {str(exc)[:120]}") from None
    for disposition, data in parts:
        options = parse_options_header(disposition)[1]
        if options.get(b"name") == b"image" and b"filename" in options:
            return bytes(data)
    raise ImageError("multipart request without a file in the field 'image'")


async def _prepare(app: FastAPI, recognizer: Recognizer, config: ServeConfig, data: bytes, multi: bool):
    """Decode and normalise: on the loop when the header declares a small image, else on the pool."""
    image = open_image(data)  # the header only: format and size are checked, nothing decoded
    pixels = image.width * image.height
    if pixels <= config.inline_pixels and len(data) <= config.inline_bytes:
        return recognizer.prepare(image, multi)
    return await app.state.work.run(pixels * BYTES_PER_PIXEL, recognizer.prepare, image, multi)


async def _off_loop_if_large(app: FastAPI, config: ServeConfig, size: int, function: Callable, *args: Any):
    if size <= config.inline_bytes:
        return function(*args)
    return await app.state.work.run(size * BYTES_PER_JSON_BYTE, function, *args)


async def _answer(app: FastAPI, recognizer: Recognizer, prepared: Prepared) -> Prediction:
    """The answer of the served model (through its batcher), or of a profile's adapted one."""
    images = np.stack([d.image for d in digits_of([prepared])])
    is_served = recognizer is app.state.recognizer
    probs = await app.state.infer(images) if is_served else recognizer.predict_proba(images)
    [answer] = recognizer.answer([prepared], probs)
    return answer


def _add_explanations(recognizer: Recognizer, answer: Prediction, record: dict) -> None:
    """Why each digit read as it did, into `record` beside its answer; on the pool (~20 ms each)."""
    image = answer.image
    record["explanation"] = (
        None if image is None or answer.reason == "no ink" else explain(recognizer, image).to_dict()
    )
    for digit, digit_record in zip(answer.digits or [], record["digits"] or [], strict=True):
        _add_explanations(recognizer, digit, digit_record)


def _correction(body: bytes) -> Correction:
    try:
        correction = Correction.model_validate_json(body)
    except ValidationError as exc:
        raise InputError(f"invalid correction: {_first_error(exc.errors(), 'body')}") from None
    return correction


def _first_error(errors: Sequence[Any], *where: str) -> str:
    """`body.label: Input should be ...`: where the first of pydantic's errors is, and what it says."""
    first = errors[0]
    return f"{'.'.join(str(p) for p in (*where, *first.get('loc', ())))}: {first.get('msg', 'malformed')}"


def _keep(store: CorrectionStore, correction: Correction) -> dict:
    source = correction.source
    image = check_images([correction.image])[0]
    id_ = store.add(correction.profile, image, correction.label, correction.predicted, source)
    return {"id": id_, "profile": correction.profile, "corrections": store.count(correction.profile)}


def _response(answer) -> dict:
    record = {"number": None, "digits": None, **answer.to_dict()}
    # In float64: a float32 rounded to 3 places prints as 0.30399999022483826, not 0.304.
    record["image"] = np.round(answer.image.astype(np.float64), 3).tolist()
    if answer.digits is not None:
        record["digits"] = [_response(d) for d in answer.digits]
    return record


def _json(content: dict) -> Response:
    """JSON straight from `json.dumps`: the response model is documented, not re-validated."""
    return Response(json.dumps(content, separators=(",", ":")), media_type="application/json")


def _instances(body: bytes, limit: int) -> np.ndarray:
    """`{"instances": [...]}` as checked images; runs on the pool for a large body."""
    try:
        instances = ServingRequest.model_validate_json(body).instances
    except ValidationError as exc:
        raise InputError(f"invalid request: {_first_error(exc.errors(), 'body')}") from None
    if not instances:
        raise InputError("'instances' is empty; send 28×28 arrays of floats in [0, 1], white ink on black")
    if len(instances) > limit:
        raise InputError(f"{len(instances)} instances is over the limit of {limit} per request")
    return check_images(instances)


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _error(status: int, message: str, close: bool = False) -> JSONResponse:
    # Messages never name a path; object addresses (Python reprs) are cut as well.
    headers = {"connection": "close"} if close else None
    return JSONResponse({"error": _ADDRESS.sub("", message)}, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    # Each error digitrec raises on purpose, and the status that answers it.
    statuses = {ImageError: 400, ConfigError: 422, InputError: 422, Busy: 429, DataError: 503}

    async def refused(request: Request, exc: Exception) -> JSONResponse:
        return _error(next(code for kind, code in statuses.items() if isinstance(exc, kind)), str(exc))

    for kind in statuses:
        app.add_exception_handler(kind, refused)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, f"invalid request: {_first_error(exc.errors())}"[:300])

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), close=bool(exc.headers))

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return _error(500, "internal error; see the server log")


def server_settings(app: FastAPI, config: ServeConfig, **options: Any):
    """uvicorn's configuration for `app`: header timeout, keep-alive, connection and header limits."""
    import uvicorn

    return uvicorn.Config(
        app,
        http=_timed_h11(config.header_timeout_s),
        limit_concurrency=config.max_connections,
        timeout_keep_alive=max(1, round(config.keep_alive_s)),  # uvicorn takes whole seconds
        h11_max_incomplete_event_size=16 * 1024,  # request line and headers: 16 KB at most
        log_level="warning",
        access_log=False,  # ≈ 10% of the throughput; /metrics counts requests instead
        **options,
    )


def _timed_h11(header_timeout_s: float) -> type:
    """uvicorn's h11 protocol, with a deadline for each request's headers.

    h11 has no header-read timeout, and uvicorn's keep-alive timer stops at the first byte of
    the next request: a client that sends a few header bytes and then nothing (Slowloris) held
    its connection forever. Here a timer starts with each connection and after each response; if
    it fires while the request's headers are still incomplete, or while the body of a request
    already answered is still trickling in, the connection is closed.
    """
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class TimedH11Protocol(H11Protocol):
        header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            if self.header_timer:
                self.header_timer.cancel()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self.header_timer:
                self.header_timer.cancel()
            self.header_timer = self.loop.call_later(header_timeout_s, self._expire)

        def _expire(self) -> None:
            waiting_for_headers = self.conn.their_state is h11.IDLE
            answered_but_sending = self.conn.our_state is h11.DONE and self.conn.their_state is h11.SEND_BODY
            if (waiting_for_headers or answered_but_sending) and not self.transport.is_closing():
                self.transport.close()

    return TimedH11Protocol


def serve(
    model: str | Path = "default-int8",
    config: ServeConfig = ServeConfig(),
    announce: Callable[[str], None] = print,
) -> None:
    """Take the port, load the model, say where it is served, and serve until interrupted: in
    this process, or in `workers` processes sharing the port (one per core for a LiteRT model:
    Python runs one request at a time per process, and a request is mostly Python)."""
    with listen(config.host, config.port) as listener:
        recognizer = Recognizer.load(model, trust_model=config.trust_model)
        workers = config.workers or (
            min(os.cpu_count() or 1, MAX_AUTO_WORKERS) if isinstance(recognizer.backend, LiteRTBackend) else 1
        )
        if workers > 1 and not isinstance(recognizer.backend, LiteRTBackend):
            raise ConfigError(
                "several workers serve LiteRT models only: pass a .tflite --model or --workers 1"
            )
        host, port = listener.getsockname()[:2]
        url = f"http://{f'[{host}]' if ':' in host else host}:{port}/"
        if workers == 1:
            app = create_app(recognizer, config)
            announce(f"digitrec: serving {model} on {url} (Ctrl-C stops)")
            _run(app, config, listener)
            return
        with _shared_metrics():
            create_app(recognizer, config)  # each worker makes its own; this one fails before any starts
            announce(f"digitrec: serving {model} on {url} with {workers} workers (Ctrl-C stops)")
            share = dataclasses.replace(config, work_memory_bytes=config.work_memory_bytes // workers)
            _prefork(
                lambda: create_app(Recognizer.load(model, trust_model=config.trust_model), share),
                share,
                listener,
                workers,
            )


@contextlib.contextmanager
def _shared_metrics() -> Iterator[None]:
    """Metrics made inside count into files that every process's /metrics sums: prometheus_client's
    multiprocess mode, which it picks at import from the environment (set here, then undone)."""
    single = values.ValueClass
    with tempfile.TemporaryDirectory(prefix="digitrec-metrics-") as folder:
        os.environ[METRICS_DIR_VARIABLE] = folder
        values.ValueClass = values.MultiProcessValue()
        try:
            yield
        finally:
            del os.environ[METRICS_DIR_VARIABLE]
            values.ValueClass = single


def _run(app: FastAPI, config: ServeConfig, listener: socket.socket) -> None:
    import uvicorn

    server = uvicorn.Server(server_settings(app, config))
    server.run(sockets=[listener])
    if server.should_exit:
        # uvicorn stops only on a signal and re-raises it as it returns; once, under load, Ctrl-C
        # still ended in a plain return (exit 0). A stop by signal is an interruption either way.
        raise KeyboardInterrupt


def _prefork(
    make_app: Callable[[], FastAPI], config: ServeConfig, listener: socket.socket, workers: int
) -> None:
    """Serve in `workers` forked processes sharing `listener`, each with its own model (LiteRT's
    thread pool does not survive a fork); one that dies is replaced, and SIGINT or SIGTERM stops all."""
    children: dict[int, float] = {}
    parent = os.getpid()

    def start() -> None:
        # A stop signal in the middle of a fork would be raised inside its hooks, which swallow
        # it: held back until the fork is done, in the parent and in the child.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            pid = os.fork()
        except OSError:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            raise
        if pid:
            children[pid] = time.monotonic()  # first: a stop let through next must end this one too
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            return
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # until uvicorn takes it over
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        code = 0
        try:
            if sys.platform == "linux":  # the workers end with their parent, however it ends
                ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
            if os.getppid() != parent:  # it ended before that was said
                raise KeyboardInterrupt
            _run(make_app(), config, listener)
        except KeyboardInterrupt:
            pass
        except BaseException:
            log.exception("a worker failed")
            code = 1
        finally:
            os._exit(code)

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    # SIGINT too: Python leaves it ignored where it started ignored (run in the background by a
    # shell, or under nohup), and then Ctrl-C or `kill -INT` would never reach the workers.
    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, stop)
    try:
        for _ in range(workers):
            start()
        while True:
            pid, status = os.wait()
            lived = time.monotonic() - children.pop(pid)
            if lived < WORKER_MIN_LIFE_S:  # it fails as it starts: so would its replacement
                raise ModelError(f"a worker stopped {lived:.1f} s after it started; --workers 1 shows why")
            log.warning("worker %d ended (status %d); starting another", pid, status)
            start()
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid in children:
            os.waitpid(pid, 0)


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
