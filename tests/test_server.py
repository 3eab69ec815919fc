import io
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from digitrec.data import load_dataset, scale
from digitrec.synth import PhotoStyle, render_photo

from .conftest import MNIST_DIR, png_header


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    data = load_dataset("mnist", MNIST_DIR)
    return scale(data.test_images[:200]), data.test_labels[:200]


def _dark_on_white_png(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray((255 - image * 255).astype(np.uint8), "L").save(out, "PNG")
    return out.getvalue()


def test_the_bundled_model_reads_195_of_the_first_200_test_digits_sent_as_pngs(live_server, digits):
    images, labels = digits
    with httpx.Client(base_url=live_server) as client:
        answers = [
            client.post("/api/predict", files={"image": ("d.png", _dark_on_white_png(img), "image/png")})
            for img in images
        ]
    assert all(a.status_code == 200 for a in answers)
    right = sum(a.json()["digit"] == label for a, label in zip(answers, labels, strict=True))
    assert right >= 195, right


def test_a_prediction_carries_everything_the_page_shows(live_server, digits):
    images, labels = digits
    response = httpx.post(
        f"{live_server}/api/predict",
        content=_dark_on_white_png(images[0]),
        headers={"content-type": "image/png"},
    )
    body = response.json()
    assert response.status_code == 200 and body["digit"] == labels[0]
    assert set(body) == {
        "digit",
        "confidence",
        "probabilities",
        "uncertain",
        "reason",
        "box",
        "image",
        "number",
        "digits",
        "model",
    }
    assert len(body["probabilities"]) == 10 and abs(sum(body["probabilities"]) - 1) < 1e-3
    assert (
        np.asarray(body["image"]).shape == (28, 28) and body["uncertain"] is False and body["number"] is None
    )


def test_multi_reads_a_number_with_a_box_per_digit(live_server, digits):
    images, labels = digits
    photo = render_photo([images[i] for i in (1, 2, 3)], PhotoStyle(digit_px=90, jpeg_quality=None))
    body = httpx.post(
        f"{live_server}/api/predict?multi=1", files={"image": ("n.png", photo, "image/png")}
    ).json()
    assert body["number"] == "".join(str(labels[i]) for i in (1, 2, 3))
    assert [len(d["box"]) for d in body["digits"]] == [4, 4, 4]


def test_a_blank_canvas_is_uncertain(live_server):
    blank = _dark_on_white_png(np.zeros((280, 280), np.float32))
    body = httpx.post(f"{live_server}/api/predict", files={"image": ("b.png", blank, "image/png")}).json()
    assert body["uncertain"] is True and body["reason"] == "no ink"


def test_the_tf_serving_endpoint_answers_32_instances_in_one_call(live_server, digits):
    images, labels = digits
    response = httpx.post(
        f"{live_server}/v1/models/digitrec:predict", json={"instances": images[:32].tolist()}
    )
    predictions = np.asarray(response.json()["predictions"])
    assert response.status_code == 200 and predictions.shape == (32, 10)
    assert (predictions.argmax(1) == labels[:32]).mean() >= 0.95
    status = httpx.get(f"{live_server}/v1/models/digitrec").json()
    assert status["model_version_status"][0]["state"] == "AVAILABLE"


@pytest.mark.parametrize(
    ("request_kwargs", "status", "fragment"),
    [
        ({"files": {"image": ("x.png", b"not an image", "image/png")}}, 400, "not a readable image"),
        ({"content": b"GIF89a\x01", "headers": {"content-type": "image/gif"}}, 400, "not a readable image"),
        ({"content": b"hello", "headers": {"content-type": "text/plain"}}, 400, "send an image"),
        ({"files": {"other": ("x.png", b"x", "image/png")}}, 400, "field 'image'"),
        (
            {"data": {"image": "not a file"}, "files": {"other": ("x.png", b"x", "image/png")}},
            400,
            "field 'image'",
        ),
        (
            {"content": b"--b\r\nnonsense", "headers": {"content-type": "multipart/form-data; boundary=b"}},
            400,
            "field 'image'",
        ),
        ({"content": b"x", "headers": {"content-type": "multipart/form-data"}}, 400, "boundary"),
        ({"content": b"", "headers": {"content-type": "image/png"}}, 400, "empty"),
        (
            {"content": b"\0" * (11 * 1024 * 1024), "headers": {"content-type": "image/png"}},
            413,
            "byte limit",
        ),
    ],
)
def test_bad_uploads_get_a_4xx_with_a_json_error(live_server, request_kwargs, status, fragment):
    response = httpx.post(f"{live_server}/api/predict", **request_kwargs)
    assert response.status_code == status and fragment in response.json()["error"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"instances": []}, "'instances' is empty"),
        ({"instances": [[[0.0] * 28] * 27]}, "expected images shaped (n, 28, 28), got (1, 27, 28)"),
        ({"instances": [[[0.0] * 28] * 27 + [[0.0] * 5]]}, "ragged"),
        ({"instances": [[[2.0] * 28] * 28]}, "in [0, 1]"),
        ({"instances": [[["x"] * 28] * 28]}, "invalid request"),
        ({"instances": [[[0.0] * 28] * 28] * 257}, "over the limit of 256"),
        ({"wrong": 1}, "invalid request: body.instances"),
    ],
)
def test_bad_tf_serving_requests_get_a_422_with_a_json_error(live_server, body, fragment):
    response = httpx.post(f"{live_server}/v1/models/digitrec:predict", json=body)
    assert response.status_code == 422 and fragment in response.json()["error"]


def test_an_unknown_route_is_a_json_404(live_server):
    response = httpx.get(f"{live_server}/nowhere")
    assert response.status_code == 404 and response.json() == {"error": "Not Found"}


def test_health_metrics_docs_and_page(live_server):
    assert httpx.get(f"{live_server}/healthz").json()["status"] == "ok"
    httpx.get(f"{live_server}/healthz")
    metrics = httpx.get(f"{live_server}/metrics").text
    assert 'digitrec_requests_total{route="/healthz",status="200"}' in metrics
    assert "digitrec_request_seconds_bucket" in metrics
    assert "/api/predict" in httpx.get(f"{live_server}/openapi.json").json()["paths"]
    assert httpx.get(f"{live_server}/").headers["content-type"].startswith("text/html")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (png_header(50_000, 50_000), "pixel limit"),
        (
            render_photo(np.eye(28, dtype=np.float32), PhotoStyle(jpeg_quality=None))[:3000],
            "not a readable image",
        ),
        (b"GIF89a" + b"<script>alert(1)</script>" * 40, "not a readable image"),  # a GIF/HTML polyglot
        (b"%PDF-1.4\n" + b"\x00" * 200, "not a readable image"),
    ],
)
def test_hostile_images_get_a_400_and_the_server_answers_on(live_server, body, fragment):
    response = httpx.post(f"{live_server}/api/predict", files={"image": ("x.png", body, "image/png")})
    assert response.status_code == 400 and fragment in response.json()["error"]
    assert httpx.get(f"{live_server}/healthz").status_code == 200


def test_a_30_mb_upload_is_refused_without_reading_it(live_server):
    response = httpx.post(
        f"{live_server}/api/predict",
        content=b"\0" * (30 * 1024 * 1024),
        headers={"content-type": "image/png"},
    )
    assert response.status_code == 413 and "byte limit" in response.json()["error"]


def test_a_chunked_upload_over_the_limit_is_cut_off(live_server):
    def chunks():
        for _ in range(12):
            yield b"\0" * (1024 * 1024)

    response = httpx.post(
        f"{live_server}/api/predict", content=chunks(), headers={"content-type": "image/png"}
    )
    assert response.status_code == 413


@pytest.mark.parametrize(
    "payload",
    [
        '{"instances": ' + "[" * 5000 + "]" * 5000 + "}",
        '{"instances": [[[NaN]]]}',
        '{"instances": "everything"}',
        "not json at all",
        '{"instances": [' + ",".join(["[[0.5]]"] * 300) + "]}",
    ],
)
def test_hostile_json_gets_a_4xx_not_a_crash(live_server, payload):
    response = httpx.post(
        f"{live_server}/v1/models/digitrec:predict",
        content=payload,
        headers={"content-type": "application/json"},
    )
    assert response.status_code in (400, 422) and response.json()["error"]
    assert httpx.get(f"{live_server}/healthz").status_code == 200


def test_a_slow_client_does_not_stop_the_server_answering_others(live_server):
    import socket
    import threading

    host, port = live_server.removeprefix("http://").split(":")
    trickle = socket.create_connection((host, int(port)))
    trickle.sendall(
        b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n"
    )
    stop = threading.Event()

    def drip():
        while not stop.is_set():
            try:
                trickle.sendall(b"\0")
            except OSError:
                return
            stop.wait(0.2)

    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    try:
        for _ in range(5):
            assert httpx.get(f"{live_server}/healthz", timeout=2).status_code == 200
    finally:
        stop.set()
        trickle.close()
        dripper.join(timeout=2)


def _interrupt(server, workers: list[int] | tuple = ()) -> str:
    """Ctrl-C to a `digitrec serve` process; its stderr. One still running 30 s later is killed,
    with its workers, so that nothing outlives the test, and the test fails."""
    import contextlib
    import os
    import signal
    import subprocess

    server.send_signal(signal.SIGINT)
    try:
        return server.communicate(timeout=30)[1]
    except subprocess.TimeoutExpired:
        for pid in [*workers, server.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        server.communicate()
        raise


def test_the_serve_command_says_where_it_serves_and_stops_on_ctrl_c(tiny_model_dir):
    import select
    import subprocess
    import sys

    command = [sys.executable, "-m", "digitrec", "serve", "--model", str(tiny_model_dir), "--port", "0"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([server.stdout], [], [], 60)
        assert ready, "digitrec serve printed nothing in 60 s"
        announced = server.stdout.readline()
        url = announced.split(" on ")[1].split()[0]
        assert announced == f"digitrec: serving {tiny_model_dir} on {url} (Ctrl-C stops)\n"
        assert httpx.get(f"{url}healthz", timeout=10).json()["status"] == "ok"
    finally:
        err = _interrupt(server)
    assert server.returncode == 130 and err.strip().splitlines()[-1] == "digitrec: interrupted"


def test_a_model_that_cannot_answer_fails_serve_before_it_announces_and_frees_the_port(
    tiny_model_dir, monkeypatch
):
    import socket

    from digitrec.errors import ModelError
    from digitrec.recognizer import Recognizer
    from digitrec.server import ServeConfig, serve

    def cannot_answer(images):
        raise ModelError("the model cannot answer")

    real_load = Recognizer.load

    def load_broken(model, **options):
        recognizer = real_load(model, **options)
        monkeypatch.setattr(recognizer, "predict_proba", cannot_answer)
        return recognizer

    monkeypatch.setattr(Recognizer, "load", staticmethod(load_broken))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    announced = []
    with pytest.raises(ModelError, match="cannot answer"):
        serve(tiny_model_dir, ServeConfig(port=port), announce=announced.append)
    assert announced == []
    socket.create_server(("127.0.0.1", port)).close()


def test_a_port_already_taken_is_one_line_and_exit_2(capsys):
    import socket

    from digitrec.cli import main

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    assert capsys.readouterr().err == (
        f"digitrec: error: cannot listen on 127.0.0.1:{port}: Address already in use;"
        " choose another --port or --host\n"
    )


def _image_file(kind: str) -> bytes:
    out = io.BytesIO()
    Image.new("L", (32, 32), 255).save(out, kind)
    return out.getvalue()


@pytest.mark.parametrize(
    "body",
    [
        _image_file("ICO"),
        _image_file("PPM"),
        _image_file("TGA"),
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n",
    ],
)
def test_formats_beyond_the_documented_ones_are_refused(litert_server, body):
    response = httpx.post(f"{litert_server}/api/predict", files={"image": ("x.png", body, "image/png")})
    assert response.status_code == 400
    assert response.json() == {
        "error": "the image bytes: not a readable image (not PNG, JPEG, BMP, GIF, WEBP, TIFF)"
    }


@pytest.mark.parametrize(("value", "where"), [('"0.5"', "0.0.0"), ("true", "0.0.0"), ("null", "0.0.0")])
def test_tf_serving_instances_are_strictly_numbers(litert_server, value, where):
    response = httpx.post(
        f"{litert_server}/v1/models/digitrec:predict",
        content='{"instances": [[[' + value + "]]]}",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json() == {
        "error": f"invalid request: body.instances.{where}: Input should be a valid number"
    }


def test_health_names_the_model_and_no_response_names_a_path_or_an_address(litert_server):
    from .conftest import REPO

    assert httpx.get(f"{litert_server}/healthz").json() == {"status": "ok", "model": "default-int8"}
    hostile = [b"not an image", b"\x00\x00\x01\x00garbage", b"GIF89a\x01", png_header(50_000, 50_000)]
    for body in hostile:
        text = httpx.post(f"{litert_server}/api/predict", files={"image": ("x", body, "image/png")}).text
        assert " at 0x" not in text and str(REPO) not in text and "/tmp" not in text, text


@pytest.mark.parametrize("kind", ["IMAGE/PNG", "Image/Png", "application/OCTET-STREAM"])
def test_content_types_are_matched_whatever_their_case(litert_server, digits, kind):
    images, labels = digits
    response = httpx.post(
        f"{litert_server}/api/predict", content=_dark_on_white_png(images[0]), headers={"content-type": kind}
    )
    assert response.status_code == 200 and response.json()["digit"] == labels[0]


def test_a_host_header_naming_another_server_is_refused(litert_server):
    port = litert_server.rsplit(":", 1)[1]
    response = httpx.get(f"{litert_server}/healthz", headers={"host": f"rebound.example:{port}"})
    assert response.status_code == 400 and response.json() == {
        "error": "this server does not answer for host 'rebound.example'; "
        "start it with --allowed-host rebound.example"
    }
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
        assert httpx.get(f"{litert_server}/healthz", headers={"host": host}).status_code == 200


def test_allowed_hosts_follow_the_bind_address_and_the_flag():
    from digitrec.server import ServeConfig, _allowed_hosts

    assert _allowed_hosts(ServeConfig()) == {"127.0.0.1", "localhost", "::1"}
    assert _allowed_hosts(ServeConfig(host="0.0.0.0")) is None
    assert _allowed_hosts(ServeConfig(host="0.0.0.0", allowed_hosts=("digits.example",))) == {
        "digits.example"
    }
    assert _allowed_hosts(ServeConfig(allowed_hosts=("*",))) is None


def test_docs_and_redoc_are_served_from_the_package_and_work_offline(litert_server):
    import re

    for page in ("/docs", "/redoc"):
        html = httpx.get(f"{litert_server}{page}").text
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert assets and all(a.startswith("/static/docs/") for a in assets), assets
        assert "https://" not in html and "http://" not in html
        for asset in assets:
            assert httpx.get(f"{litert_server}{asset}").status_code == 200


def test_serve_runs_uvicorn_with_a_header_timeout_and_a_connection_limit(litert_server):
    from digitrec.server import ServeConfig, server_settings

    settings = server_settings(None, ServeConfig())
    assert settings.limit_concurrency == 256 and settings.timeout_keep_alive == 5
    assert (
        settings.h11_max_incomplete_event_size == 16 * 1024 and settings.http.__name__ == "TimedH11Protocol"
    )


def test_predict_escapes_control_characters_in_file_names(tmp_path, digits, capsys):
    from digitrec.cli import main

    images, labels = digits
    (tmp_path / "a\nforged: 9 (1.000)\r.png").write_bytes(_dark_on_white_png(images[0]))
    assert main(["predict", str(tmp_path), "--model", "default-int8"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith(f"{tmp_path}/a\\nforged: 9 (1.000)\\r.png: {labels[0]} (")


def test_the_api_the_command_line_and_the_library_give_the_same_answers(
    live_server, digits, tmp_path, capsys
):
    import json

    from digitrec.cli import main
    from digitrec.recognizer import Recognizer

    images, _ = digits
    pictures = {
        "photo.png": render_photo(images[5], PhotoStyle(jpeg_quality=None, light_gradient=0.4)),
        "number.png": render_photo(
            [images[i] for i in (1, 2, 3, 4)], PhotoStyle(digit_px=80, jpeg_quality=None)
        ),
        "blank.png": _dark_on_white_png(np.zeros((120, 90), np.float32)),
    }
    for name, body in pictures.items():
        (tmp_path / name).write_bytes(body)
    library = dict(
        zip(pictures, Recognizer.load("default").predict(list(pictures.values()), multi=True), strict=True)
    )
    assert main(["predict", str(tmp_path), "--multi", "--json", "--model", "default"]) == 0
    command_line = {Path(r["path"]).name: r for r in map(json.loads, capsys.readouterr().out.splitlines())}

    def reading(answer: dict) -> tuple:
        return (
            answer["number"],
            answer["uncertain"],
            [(d["digit"], round(d["confidence"], 4)) for d in answer["digits"]],
        )

    for name, body in pictures.items():
        api = httpx.post(
            f"{live_server}/api/predict?multi=1", files={"image": (name, body, "image/png")}
        ).json()
        mine = library[name]
        expected = (
            mine.number,
            mine.uncertain,
            [(d.digit, round(d.confidence, 4)) for d in mine.digits or []],
        )
        assert reading(api) == reading(command_line[name]) == expected, name
    assert library["number.png"].number == "".join(str(d) for d in digits[1][1:5])


def test_a_large_multipart_upload_is_parsed_off_the_loop_and_read(live_server, digits):
    images, labels = digits
    photo = render_photo(images[7], PhotoStyle(digit_px=600, jpeg_quality=None, noise=8))
    assert len(photo) > 512 * 1024  # far over what is parsed on the event loop
    body = httpx.post(f"{live_server}/api/predict", files={"image": ("big.png", photo, "image/png")}).json()
    assert body["digit"] == labels[7]


def test_a_correction_as_json_is_kept_for_its_profile(live_server, digits):
    from digitrec.corrections import CorrectionStore

    images, _ = digits
    correction = {"image": images[0].tolist(), "label": 1, "profile": "json-writer", "predicted": 7}
    response = httpx.post(f"{live_server}/api/feedback", json=correction | {"source": "page"})
    body = response.json()
    assert response.status_code == 200
    assert body == {"id": body["id"], "profile": "json-writer", "corrections": 1, "adapting": False}
    kept, labels = CorrectionStore().examples("json-writer")
    assert labels.tolist() == [1] and np.abs(kept[0] / 255 - images[0]).max() <= 1 / 255


def test_a_correction_as_an_image_keeps_what_the_model_saw_and_what_it_answered(live_server, digits):
    from digitrec.corrections import CorrectionStore

    images, _ = digits
    png = _dark_on_white_png(images[3])
    seen = httpx.post(f"{live_server}/api/predict", content=png, headers={"content-type": "image/png"}).json()
    response = httpx.post(
        f"{live_server}/api/feedback?label=3&profile=image-writer",
        files={"image": ("d.png", png, "image/png")},
    )
    assert response.status_code == 200 and response.json()["corrections"] == 1
    kept, kept_labels = CorrectionStore().examples("image-writer")
    assert kept_labels.tolist() == [3]
    assert np.abs(kept[0] / 255 - np.asarray(seen["image"])).max() <= 1 / 255 + 1e-3


@pytest.mark.parametrize(
    ("url", "kwargs", "fragment"),
    [
        ("/api/feedback", {"json": {"image": [[0.0] * 28] * 28, "label": 10}}, "label"),
        ("/api/feedback", {"json": {"image": [[0.0] * 28] * 27, "label": 1}}, "28"),
        ("/api/feedback", {"json": {"image": [[0.0] * 28] * 28, "label": 1, "profile": "../x"}}, "profile"),
        ("/api/feedback", {"json": {"image": [[0.0] * 28] * 28, "label": 1, "source": "x"}}, "source"),
        ("/api/feedback", {"content": b"\x89PNG", "headers": {"content-type": "image/png"}}, "?label=D"),
        (
            "/api/feedback?label=12",
            {"content": b"\x89PNG", "headers": {"content-type": "image/png"}},
            "label",
        ),
        ("/api/predict?profile=..", {"content": b"\x89PNG", "headers": {"content-type": "image/png"}}, ""),
    ],
)
def test_bad_corrections_get_a_4xx_with_a_json_error(live_server, url, kwargs, fragment):
    response = httpx.post(f"{live_server}{url}", **kwargs)
    assert 400 <= response.status_code < 500 and fragment in response.json()["error"], response.text


def test_explain_says_where_the_answer_rests_and_shows_training_digits_like_it(live_server, digits):
    images, labels = digits
    png = _dark_on_white_png(images[0])
    body = httpx.post(
        f"{live_server}/api/predict?explain=1", files={"image": ("d.png", png, "image/png")}
    ).json()
    why = body["explanation"]
    saliency, seen = np.asarray(why["saliency"]), np.asarray(body["image"])
    assert why["digit"] == body["digit"] == labels[0] and why["runner_up"] != why["digit"]
    assert saliency.shape == (28, 28) and saliency.max() == 1.0
    assert saliency[seen > 0.5].mean() > 3 * saliency[seen == 0].mean()  # it rests on ink
    assert [len(why["nearest"]), len(why["nearest_runner_up"])] == [2, 2]
    assert (
        "explanation"
        not in httpx.post(
            f"{live_server}/api/predict", content=png, headers={"content-type": "image/png"}
        ).json()
    )


def test_a_profile_s_adapted_model_answers_for_it_and_the_served_one_for_others(live_server, digits):
    from .test_profiles import _install_served_model

    images, _ = digits
    png = {"content": _dark_on_white_png(images[0]), "headers": {"content-type": "image/png"}}
    served = httpx.get(f"{live_server}/healthz").json()["model"]
    assert httpx.post(f"{live_server}/api/predict?profile=fresh", **png).json()["model"] == served
    _install_served_model("fresh")
    assert httpx.post(f"{live_server}/api/predict?profile=fresh", **png).json()["model"] == "profile:fresh"


def test_corrections_survive_kill_9_of_the_server(tmp_path, digits):
    import os
    import select
    import signal
    import subprocess
    import sys
    import threading

    from digitrec.corrections import CorrectionStore

    images, _ = digits
    env = {**os.environ, "DIGITREC_HOME": str(tmp_path)}
    command = [sys.executable, "-m", "digitrec", "serve", "--port", "0"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    acknowledged: list[int] = []
    try:
        ready, _, _ = select.select([server.stdout], [], [], 60)
        assert ready, "digitrec serve printed nothing in 60 s"
        url = server.stdout.readline().split(" on ")[1].split()[0]

        def correct() -> None:
            with httpx.Client(base_url=url, timeout=10) as client:
                for i in range(10_000):
                    correction = {"image": images[i % 200].tolist(), "label": i % 10, "profile": "k"}
                    try:
                        acknowledged.append(client.post("/api/feedback", json=correction).json()["id"])
                    except httpx.HTTPError:
                        return  # the server is gone

        writer = threading.Thread(target=correct)
        writer.start()
        while len(acknowledged) < 15:
            time.sleep(0.01)
        server.send_signal(signal.SIGKILL)
        writer.join(timeout=30)
    finally:
        server.kill()
        server.communicate()
    store = CorrectionStore(tmp_path / "corrections.sqlite3")  # checks the file whole as it opens
    assert store.count("k") >= len(acknowledged) >= 15


def test_two_workers_share_the_port_and_the_metrics_and_stop_together(digits):
    import select
    import signal
    import subprocess
    import sys

    command = [sys.executable, "-m", "digitrec", "serve", "--port", "0", "--workers", "2"]
    server = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Started as a shell starts a background job: SIGINT ignored, which Python then leaves be.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    workers: list[int] = []
    try:
        ready, _, _ = select.select([server.stdout], [], [], 60)
        assert ready, "digitrec serve printed nothing in 60 s"
        announced = server.stdout.readline()
        assert announced.startswith("digitrec: serving default-int8 on http://127.0.0.1:")
        assert announced.endswith(" with 2 workers (Ctrl-C stops)\n")
        url = announced.split(" on ")[1].split()[0]
        png = {"content": _dark_on_white_png(digits[0][0]), "headers": {"content-type": "image/png"}}
        for _ in range(12):  # a new connection each: either worker may answer
            assert httpx.post(f"{url}api/predict", **png, timeout=30).json()["digit"] == digits[1][0]
        metrics = httpx.get(f"{url}metrics").text
        assert 'digitrec_requests_total{route="/api/predict",status="200"} 12.0' in metrics
        workers = [
            int(pid) for pid in Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
        ]
        assert len(workers) == 2
    finally:
        err = _interrupt(server, workers)
    assert server.returncode == 130 and err.strip().splitlines()[-1] == "digitrec: interrupted"
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()], "a worker outlived the server"


def test_several_workers_refuse_a_keras_model_in_one_line(tiny_model_dir, capsys):
    from digitrec.cli import main

    assert main(["serve", "--model", str(tiny_model_dir), "--workers", "2", "--port", "0"]) == 2
    assert capsys.readouterr().err == (
        "digitrec: error: several workers serve LiteRT models only: pass a .tflite --model or --workers 1\n"
    )
