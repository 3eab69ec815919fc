import io

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


def test_the_serve_command_says_where_it_serves_and_stops_on_ctrl_c(tiny_model_dir):
    import select
    import signal
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
        server.send_signal(signal.SIGINT)
        _, err = server.communicate(timeout=30)
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

    def load_broken(model):
        recognizer = real_load(model)
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
