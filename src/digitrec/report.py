"""Evaluation you can look at: confusion matrix, mistakes, calibration, training curves, a report.

Plots are drawn on matplotlib `Figure`s, which render with Agg and need no display (and,
unlike pyplot, change no global backend in the caller's notebook), into PNG files;
`write_report` gathers them, base64-embedded, into one `report.html` that opens offline, beside
the PNGs and a `metrics.json` holding the same numbers as `digitrec evaluate --json`.
"""

import base64
import datetime
import html
import io
import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from digitrec.errors import ConfigError
from digitrec.files import atomic_write_text

MAX_GRID = 1024  # 32 × 32 digits: more would be a picture too large to read, and slow to draw
MAX_THUMBNAILS = 500  # a report's mistakes shown as images: ~300 bytes each
EXPLAINED_MISTAKES = 50  # the most confident mistakes shown with their saliency (~20 ms each)
BRIEF_RECIPE = ("model", "epochs", "batch_size", "optimizer", "lr", "schedule", "augment")  # the rest folded


def plot_confusion(confusion: list[list[int]], path: Path) -> Path:
    """Counts and row-normalised rates side by side, each cell labelled."""
    counts = np.asarray(confusion)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    figure = Figure(figsize=(13, 6))
    axes = figure.subplots(1, 2)
    for axis, values, title, fmt in (
        (axes[0], counts, "counts", "d"),
        (axes[1], rates, "row-normalised", ".2f"),
    ):
        axis.imshow(np.log1p(counts) if fmt == "d" else values, cmap="Blues")
        for (row, col), value in np.ndenumerate(values):
            text = format(value, fmt) if value else ""
            axis.text(
                col, row, text, ha="center", va="center", fontsize=7, color="white" if row == col else "black"
            )
        axis.set(
            title=f"confusion ({title})",
            xlabel="predicted",
            ylabel="true",
            xticks=range(10),
            yticks=range(10),
        )
    figure.tight_layout()
    return _save(figure, path)


def plot_errors(
    images: np.ndarray, labels: np.ndarray, probs: np.ndarray, path: Path, limit: int = 48
) -> Path:
    """The misclassified images, most confidently wrong first, with truth and the top two guesses."""
    predicted = probs.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    wrong = wrong[np.argsort(-probs[wrong, predicted[wrong]])][:limit]
    columns = 12
    rows = max(1, -(-len(wrong) // columns))
    figure = Figure(figsize=(columns * 1.1, rows * 1.55))
    axes = figure.subplots(rows, columns, squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    for axis, index in zip(axes.ravel(), wrong, strict=False):
        first, second = np.argsort(-probs[index])[:2]
        axis.imshow(images[index], cmap="gray", vmin=0, vmax=1)
        axis.set_title(
            f"{labels[index]}→{first} {probs[index, first]:.2f}\n2nd {second} {probs[index, second]:.2f}",
            fontsize=7,
        )
    figure.suptitle(
        f"{len(np.flatnonzero(predicted != labels))} errors, worst first; true→read as and its probability,"
        " then the second guess"
    )
    figure.tight_layout()
    return _save(figure, path)


def plot_reliability(calibration: dict, path: Path) -> Path:
    """Accuracy against confidence per bin; the diagonal is perfect calibration."""
    figure = Figure(figsize=(5.5, 5))
    axis = figure.subplots()
    bins = calibration["bins"]
    axis.bar(
        [b["low"] for b in bins],
        [b["accuracy"] for b in bins],
        width=[b["high"] - b["low"] for b in bins],
        align="edge",
        edgecolor="black",
        alpha=0.7,
        label="accuracy",
    )
    axis.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    axis.set(
        xlabel="confidence",
        ylabel="accuracy",
        xlim=(0, 1),
        ylim=(0, 1),
        title=f"reliability (ECE {calibration['ece']:.4f})",
    )
    axis.legend(loc="upper left")
    return _save(figure, path)


def plot_history(history: list[dict], path: Path) -> Path:
    """Loss, accuracy and learning rate per epoch, training and validation."""
    epochs = [h["epoch"] for h in history]
    figure = Figure(figsize=(14, 4))
    axes = figure.subplots(1, 3)
    for axis, key in zip(axes[:2], ("loss", "accuracy"), strict=True):
        axis.plot(epochs, [h[key] for h in history], "o-", label="training")
        axis.plot(epochs, [h.get(f"val_{key}", np.nan) for h in history], "o-", label="validation")
        axis.set(xlabel="epoch", title=key)
        axis.legend()
    axes[2].plot(epochs, [h["lr"] for h in history], "o-")
    axes[2].set(xlabel="epoch", title="learning rate (end of epoch)")
    figure.tight_layout()
    return _save(figure, path)


def plot_grid(images: np.ndarray, labels: np.ndarray, path: Path, columns: int = 16) -> Path:
    """A grid of images, each titled with its label."""
    rows = max(1, -(-len(images) // columns))
    figure = Figure(figsize=(columns * 0.8, rows * 0.95))
    axes = figure.subplots(rows, columns, squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    for axis, image, label in zip(axes.ravel(), images, labels, strict=False):
        axis.imshow(image, cmap="gray")
        axis.set_title(str(label), fontsize=8)
    figure.tight_layout()
    return _save(figure, path)


def sample_grid(
    out: Path,
    dataset: str = "mnist",
    digit: int | None = None,
    n: int = 64,
    data_dir: Path | str | None = None,
) -> Path:
    """A grid of the first `n` training images (of one `digit`, if given) of a dataset."""
    from digitrec.data import load_dataset

    if not 1 <= n <= MAX_GRID:
        raise ConfigError(f"a grid shows 1 to {MAX_GRID} images, not {n}")

    data = load_dataset(dataset, data_dir)
    chosen = (
        np.flatnonzero(data.train_labels == digit) if digit is not None else np.arange(len(data.train_labels))
    )
    chosen = chosen[:n]
    return plot_grid(data.train_images[chosen], data.train_labels[chosen], out)


def write_report(
    figures: dict,
    images: np.ndarray,
    labels: np.ndarray,
    probs: np.ndarray,
    out_dir: Path,
    history: Path | None = None,
    metadata: dict | None = None,
    why: dict[int, bytes] | None = None,
) -> Path:
    """`report.html` (self-contained), its PNGs and `metrics.json` in `out_dir`; given the
    model's `history.json`, its training curves too, given its metadata, a header naming its
    recipe, training date and library versions, and given `why`, PNGs of mistakes' saliency
    by index (`digitrec.explanation.overlay_png`), a column showing the ink each answer rests on."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pictures = {
        "confusion": plot_confusion(figures["confusion"], out_dir / "confusion.png"),
        "errors": plot_errors(images, labels, probs, out_dir / "errors.png"),
        "reliability": plot_reliability(figures["calibration"], out_dir / "reliability.png"),
    }
    if history is not None:
        pictures["training"] = plot_history(json.loads(history.read_text()), out_dir / "training_curves.png")
    encoded = {name: base64.b64encode(path.read_bytes()).decode() for name, path in pictures.items()}
    wrong = mistakes(labels, probs)
    pairs = [
        (true, read, count, [m for m in wrong if (m["label"], m["top2"][0][0]) == (true, read)][:8])
        for true, read, count in confused_pairs(figures["confusion"])
    ]
    shown = wrong[:MAX_THUMBNAILS] + [m for *_, examples in pairs for m in examples]
    thumbs = _thumbnails(images, shown)
    saliency = {i: base64.b64encode(png).decode() for i, png in (why or {}).items()}
    body = _evaluation_body(figures, encoded, wrong, pairs, thumbs, metadata or {}, saliency)
    atomic_write_text(out_dir / "metrics.json", json.dumps(figures, indent=2) + "\n")
    atomic_write_text(out_dir / "report.html", _page(f"{figures['model']} on {figures['dataset']}", body))
    return out_dir / "report.html"


def write_comparison(result: dict, out_dir: Path) -> Path:
    """`report.html` and `metrics.json` in `out_dir` for `evaluation.compare`'s result: the models
    side by side (a column each, so two or three fit a phone), McNemar's test of the first two,
    and accuracy per digit per model."""
    out_dir.mkdir(parents=True, exist_ok=True)
    models = result["models"]
    letters = "".join(f"<th>{chr(ord('A') + i)}</th>" for i in range(len(models)))
    facts = {
        "model": [f'<td class="text">{html.escape(m["model"])}</td>' for m in models],
        "accuracy": [f"<td>{m['accuracy']:.4f}</td>" for m in models],
        "size": [f"<td>{m['bytes'] / 1024:,.0f} KiB</td>" for m in models],
        "parameters": [f"<td>{m['parameters']:,}</td>" if m["parameters"] else "<td>–</td>" for m in models],
        "latency (1 image)": [f"<td>{m['latency_ms']:.2f} ms</td>" for m in models],
    }
    for digit in map(str, range(10)):
        values = [m["per_digit"][digit] for m in models]
        best = max(values) if len(set(values)) > 1 else None
        facts[digit] = [f"<td><b>{v:.4f}</b></td>" if v == best else f"<td>{v:.4f}</td>" for v in values]
    rows = [f"<tr><th>{name}</th>{''.join(cells)}</tr>" for name, cells in facts.items()]
    body = f"""<header><h1>digitrec comparison</h1><dl class="facts" id="header">
<dt>data</dt><dd>{html.escape(result["dataset"])} test split, {result["n"]:,} images</dd>
<dt>date</dt><dd>compared {_now()}</dd></dl></header>
<h2>Models</h2><div class="scroll"><table id="models"><tr><th></th>{letters}</tr>{"".join(rows[:5])}</table></div>
{_mcnemar_section(result)}
<h2>Accuracy per digit</h2><p>The share of each digit's test images each model reads right; the best in bold.</p>
<div class="scroll"><table id="per-digit"><tr><th>digit</th>{letters}</tr>{"".join(rows[5:])}</table></div>"""
    atomic_write_text(out_dir / "metrics.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(out_dir / "report.html", _page(f"comparison on {result['dataset']}", body))
    return out_dir / "report.html"


def mistakes(labels: np.ndarray, probs: np.ndarray) -> list[dict]:
    """Every misclassified image, most confidently wrong first: its index, its label and the
    model's two most probable digits with their probabilities."""
    predicted = probs.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    wrong = wrong[np.argsort(-probs[wrong, predicted[wrong]], kind="stable")]
    return [
        {
            "index": int(i),
            "label": int(labels[i]),
            "top2": [(int(d), float(probs[i, d])) for d in np.argsort(-probs[i], kind="stable")[:2]],
        }
        for i in wrong
    ]


def confused_pairs(confusion: list[list[int]], limit: int = 6) -> list[tuple[int, int, int]]:
    """The `limit` most frequent (true digit, digit read, count) mistakes, most frequent first."""
    counts = np.array(confusion)
    np.fill_diagonal(counts, 0)
    order = np.argsort(-counts, axis=None, kind="stable")[:limit]
    pairs = zip(*np.unravel_index(order, counts.shape), strict=True)
    return [(int(true), int(read), int(counts[true, read])) for true, read in pairs if counts[true, read]]


def _evaluation_body(
    figures: dict,
    images: dict,
    wrong: list[dict],
    pairs: list,
    thumbs: dict[int, str],
    metadata: dict,
    saliency: dict[int, str],
) -> str:
    low, high = figures["ci95"]
    rows = "".join(
        f"<tr><td>{d}</td><td>{r['precision']:.4f}</td><td>{r['recall']:.4f}</td><td>{r['f1']:.4f}</td>"
        f"<td>{r['support']}</td></tr>"
        for d, r in figures["per_class"].items()
    )
    confusion = "".join(
        f"<tr><th>{true}</th>" + "".join(f"<td>{count}</td>" for count in row) + "</tr>"
        for true, row in enumerate(figures["confusion"])
    )
    return f"""{_header(figures, metadata)}
<p class="big" id="accuracy">accuracy {figures["accuracy"]:.4f}</p>
<p>{figures["errors"]} errors in {figures["n"]} images; 95% confidence interval (Wilson)
<span id="ci">{low:.4f}–{high:.4f}</span>; expected calibration error <span id="ece">{figures["calibration"]["ece"]:.4f}</span>.</p>
<h2>Per digit</h2><div class="scroll"><table id="per-class"><tr><th>digit</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>{rows}</table></div>
<h2>Confusion matrix</h2><div class="scroll"><table id="confusion"><tr><th class="corner">true&nbsp;\\ read</th>{"".join(f"<th>{d}</th>" for d in range(10))}</tr>{confusion}</table></div>
<img alt="confusion matrix" src="data:image/png;base64,{images["confusion"]}">
{_pairs_section(pairs, thumbs)}
<h2>Mistakes</h2><img alt="misclassified images" src="data:image/png;base64,{images["errors"]}">
{_mistakes_table(wrong, thumbs, saliency)}
<h2>Calibration</h2><img alt="reliability diagram" src="data:image/png;base64,{images["reliability"]}">
{_training_section(images)}"""


def _header(figures: dict, metadata: dict) -> str:
    """Which model, trained how and when, on which data, with which libraries."""
    model = html.escape(figures["model"])
    if "model" in metadata:
        parameters = f", {metadata['parameters']:,} parameters" if "parameters" in metadata else ""
        model += f" ({html.escape(str(metadata['model']))}{parameters})"
    if "temperature" in metadata:
        model += f"; probabilities at temperature {metadata['temperature']:.4g}"
    created = html.escape(str(metadata.get("created", "not recorded")))
    versions = metadata.get("versions", {})
    facts = {
        "model": model,
        "recipe": _recipe(metadata),
        "data": f"{html.escape(figures['dataset'])} {figures['split']} split, {figures['n']:,} images",
        "date": f"evaluated {_now()}; model saved {created}",
        "versions": html.escape(" · ".join(f"{k} {v}" for k, v in versions.items()) or "not recorded"),
    }
    items = "".join(f'<dt>{name}</dt><dd id="{name}">{value}</dd>' for name, value in facts.items())
    return f'<header><h1>digitrec report</h1><dl class="facts" id="header">{items}</dl></header>'


def _recipe(metadata: dict) -> str:
    """The training recipe in brief, every setting on request; for an export, what it came from."""
    config = metadata.get("config")
    if not config:
        source = metadata.get("source")
        return html.escape(f"{metadata.get('format', 'an export')} of {source}" if source else "not recorded")
    brief = " · ".join(f"{k} {config[k]}" for k in BRIEF_RECIPE if k in config)
    settings = " · ".join(f"{k} {v}" for k, v in config.items())
    return f"<details><summary>{html.escape(brief)}</summary>{html.escape(settings)}</details>"


def _pairs_section(pairs: list[tuple[int, int, int, list[dict]]], thumbs: dict[int, str]) -> str:
    items = ""
    for true, read, count, examples in pairs:
        shown = "".join(_img(m, thumbs) for m in examples)
        times = "time" if count == 1 else "times"
        items += f'<li><b>{true} read as {read}: {count} {times}</b><div class="examples">{shown}</div></li>'
    if not items:
        return ""
    return f'<h2>Most confused pairs</h2><p>Examples, most confidently wrong first.</p><ol id="pairs">{items}</ol>'


def _mistakes_table(wrong: list[dict], thumbs: dict[int, str], saliency: dict[int, str]) -> str:
    if not wrong:
        return "<p>No mistakes.</p>"
    rows = "".join(
        f"<tr><td>{rank}</td><td>{_img(m, thumbs)}</td><td>{_why(m, saliency)}</td><td>{m['label']}</td>"
        + "".join(f"<td>{digit} ({p:.3f})</td>" for digit, p in m["top2"])
        + f"<td>{m['index']}</td></tr>"
        for rank, m in enumerate(wrong, start=1)
    )
    note = f"; images for the first {MAX_THUMBNAILS}" if len(wrong) > MAX_THUMBNAILS else ""
    why = (
        f" Why, for the first {len(saliency)}: in orange, the ink whose hiding lowers the answer's"
        " log-odds most (occlusion)."
        if saliency
        else ""
    )
    return (
        f"<p>All {len(wrong)} mistakes, most confidently wrong first: the model's two most probable digits"
        f" and the image's index in the split{note}.{why}</p>"
        '<div class="scroll tall"><table id="mistakes"><thead><tr><th>#</th><th>image</th><th>why</th><th>true</th>'
        f"<th>read as</th><th>second</th><th>index</th></tr></thead><tbody>{rows}</tbody></table></div>"
    )


def _thumbnails(images: np.ndarray, shown: list[dict]) -> dict[int, str]:
    """Base64 PNGs of the `shown` mistakes' images by index, at 28 × 28 (the page scales them up)."""
    encoded = {}
    for index in {m["index"] for m in shown}:
        buffer = io.BytesIO()
        Image.fromarray(np.uint8(np.clip(images[index], 0, 1) * 255)).save(buffer, "PNG")
        encoded[index] = base64.b64encode(buffer.getvalue()).decode()
    return encoded


def _img(mistake: dict, thumbs: dict[int, str]) -> str:
    """The mistake's image, described in its alt text; a dash where the report holds none."""
    if mistake["index"] not in thumbs:
        return "–"
    (first, p), _ = mistake["top2"]
    alt = f"image {mistake['index']}: a {mistake['label']} read as {first} ({p:.2f})"
    return f'<img class="digit" alt="{alt}" title="{alt}" src="data:image/png;base64,{thumbs[mistake["index"]]}">'


def _why(mistake: dict, saliency: dict[int, str]) -> str:
    if mistake["index"] not in saliency:
        return "–"
    alt = f"image {mistake['index']}: the ink its reading as {mistake['top2'][0][0]} rests on, in orange"
    return f'<img class="digit" alt="{alt}" title="{alt}" src="data:image/png;base64,{saliency[mistake["index"]]}">'


def _mcnemar_section(result: dict) -> str:
    if "mcnemar" not in result:
        return ""
    m = result["mcnemar"]
    verdict = (
        "a difference this large would be rare by chance: at the 5% level, one model is more accurate"
        if m["p_value"] < 0.05
        else "no evidence at the 5% level that either model is more accurate on this data"
    )
    return (
        f'<h2>McNemar\'s test (A against B)</h2><p id="mcnemar">Of the images A and B disagree on,'
        f" {m['a_only']} only A reads right and {m['b_only']} only B; exact two-sided p = {m['p_value']:.4g}:"
        f" {verdict}.</p>"
    )


def _training_section(images: dict[str, str]) -> str:
    if "training" not in images:
        return ""
    return f'<h2>Training</h2><img alt="training curves" src="data:image/png;base64,{images["training"]}">'


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _page(title: str, body: str) -> str:
    """A whole self-contained HTML page, no wider than a phone: wide tables scroll in their box."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>digitrec report: {html.escape(title)}</title>
<style>{STYLE}</style></head><body>
{body}
</body></html>
"""


STYLE = """*{box-sizing:border-box}
body{font-family:system-ui,sans-serif;max-width:1100px;margin:0 auto;padding:1em;color:#222;line-height:1.4}
h1{margin:.2em 0 .4em}.big{font-size:2em;font-weight:bold;margin:.5em 0 .2em}
.facts{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:.2em 1em;margin:0}
.facts dt{font-weight:600}.facts dd{margin:0;overflow-wrap:anywhere}
.scroll{max-width:100%;overflow-x:auto;margin:.5em 0}.scroll.tall{max-height:32em;overflow-y:auto}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right;white-space:nowrap}
td.text{text-align:left;white-space:normal;overflow-wrap:anywhere;min-width:7em}#models th{white-space:normal}
thead th{position:sticky;top:0;background:#fff}
img{max-width:100%;height:auto}
img.digit{width:42px;height:42px;image-rendering:pixelated;vertical-align:middle;margin:1px}
#pairs li{margin:.4em 0}.examples{display:flex;flex-wrap:wrap;gap:2px}
@media (max-width:600px){.facts{grid-template-columns:minmax(0,1fr)}.facts dd{margin-bottom:.3em}
table{font-size:.85em}td,th{padding:.2em .3em}body{padding:.6em}#confusion{font-size:.7em}#confusion td,#confusion th{padding:.15em .2em}#confusion .corner{white-space:normal}img.digit{width:32px;height:32px}}"""


def _save(figure, path: Path) -> Path:
    figure.savefig(path, dpi=110)
    return path
