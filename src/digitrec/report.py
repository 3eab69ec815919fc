"""Evaluation you can look at: confusion matrix, mistakes, calibration, training curves, a report.

Plots are drawn on matplotlib `Figure`s, which render with Agg and need no display (and,
unlike pyplot, change no global backend in the caller's notebook), into PNG files;
`write_report` gathers them, base64-embedded, into one `report.html` that opens offline, beside
the PNGs and a `metrics.json` holding the same numbers as `digitrec evaluate --json`.
"""

import base64
import html
import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from digitrec.errors import ConfigError
from digitrec.files import atomic_write_text

MAX_GRID = 1024  # 32 × 32 digits: more would be a picture too large to read, and slow to draw


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
    """The misclassified images, most confidently wrong first, with truth, guess and confidence."""
    predicted = probs.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    wrong = wrong[np.argsort(-probs[wrong, predicted[wrong]])][:limit]
    columns = 12
    rows = max(1, -(-len(wrong) // columns))
    figure = Figure(figsize=(columns * 1.1, rows * 1.35))
    axes = figure.subplots(rows, columns, squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    for axis, index in zip(axes.ravel(), wrong, strict=False):
        axis.imshow(images[index], cmap="gray", vmin=0, vmax=1)
        axis.set_title(f"{labels[index]}→{predicted[index]} {probs[index, predicted[index]]:.2f}", fontsize=7)
    figure.suptitle(
        f"{len(np.flatnonzero(predicted != labels))} errors; true→predicted confidence, worst first"
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
) -> Path:
    """`report.html` (self-contained), its PNGs and `metrics.json` in `out_dir`; given the
    model's `history.json`, its training curves too."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pictures = {
        "confusion": plot_confusion(figures["confusion"], out_dir / "confusion.png"),
        "errors": plot_errors(images, labels, probs, out_dir / "errors.png"),
        "reliability": plot_reliability(figures["calibration"], out_dir / "reliability.png"),
    }
    if history is not None:
        pictures["training"] = plot_history(json.loads(history.read_text()), out_dir / "training_curves.png")
    atomic_write_text(out_dir / "metrics.json", json.dumps(figures, indent=2) + "\n")
    atomic_write_text(out_dir / "report.html", _html(figures, pictures))
    return out_dir / "report.html"


def _html(figures: dict, pictures: dict[str, Path]) -> str:
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
    images = {name: base64.b64encode(path.read_bytes()).decode() for name, path in pictures.items()}
    title = html.escape(f"{figures['model']} on {figures['dataset']} {figures['split']}")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>digitrec report: {title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:.25em .6em;text-align:right}}
img{{max-width:100%}}.big{{font-size:2em;font-weight:bold}}</style></head><body>
<h1>digitrec report</h1><p>{title}</p>
<p class="big" id="accuracy">accuracy {figures["accuracy"]:.4f}</p>
<p>{figures["errors"]} errors in {figures["n"]} images; 95% confidence interval (Wilson)
<span id="ci">{low:.4f}–{high:.4f}</span>; expected calibration error <span id="ece">{figures["calibration"]["ece"]:.4f}</span>.</p>
<h2>Per digit</h2><table id="per-class"><tr><th>digit</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>{rows}</table>
<h2>Confusion matrix</h2><table id="confusion"><tr><th>true \\ predicted</th>{"".join(f"<th>{d}</th>" for d in range(10))}</tr>{confusion}</table>
<img alt="confusion matrix" src="data:image/png;base64,{images["confusion"]}">
<h2>Mistakes</h2><img alt="misclassified images" src="data:image/png;base64,{images["errors"]}">
<h2>Calibration</h2><img alt="reliability diagram" src="data:image/png;base64,{images["reliability"]}">
{_training_section(images)}
</body></html>
"""


def _training_section(images: dict[str, str]) -> str:
    if "training" not in images:
        return ""
    return f'<h2>Training</h2><img alt="training curves" src="data:image/png;base64,{images["training"]}">'


def _save(figure, path: Path) -> Path:
    figure.savefig(path, dpi=110)
    return path
