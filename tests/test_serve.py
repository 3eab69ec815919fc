import io

import httpx
import numpy as np
import pytest
from PIL import Image

from digitrec.data import load_dataset, scale
from digitrec.synth import PhotoStyle, render_photo

from .conftest import MNIST_DIR


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
        ({"instances": [[[0.0] * 28] * 27]}, "expected instances shaped 28×28"),
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
