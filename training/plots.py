"""Training curves as a PNG: loss and dev error rates per epoch, read at a glance."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from training.tuning import best_point, expected_calibration_error, reliability


def _save(figure: Figure, path: Path) -> None:
    """Write the PNG, making its folder: a ``--plots`` folder named on the command line need not exist yet."""
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)


def training_curves(history: list[dict], path: Path) -> None:
    epochs = [entry["epoch"] for entry in history]
    figure = Figure(figsize=(10, 4))
    loss_axis, error_axis = figure.subplots(1, 2)
    loss_axis.plot(epochs, [entry["loss"] for entry in history], marker="o")
    loss_axis.set(title="training CTC loss", xlabel="epoch", yscale="log")
    for key, label in (("dev_cer", "dev CER"), ("dev_wer", "dev WER")):
        if all(key in entry for entry in history):
            error_axis.plot(epochs, [100 * entry[key] for entry in history], marker="o", label=label)
    error_axis.set(title="dev error rates (greedy)", xlabel="epoch", ylabel="%", ylim=(0, None))
    error_axis.legend()
    for axis in (loss_axis, error_axis):
        axis.grid(alpha=0.3)
    _save(figure, path)


def tuning_plot(grid: list, path: Path) -> None:
    """Dev WER over the LM weight and word score, the chosen point marked."""
    alphas, betas = sorted({p.alpha for p in grid}), sorted({p.beta for p in grid})
    wer = {(p.alpha, p.beta): 100 * p.wer for p in grid}
    figure = Figure(figsize=(6, 4.5))
    axis = figure.subplots()
    image = axis.imshow([[wer[a, b] for b in betas] for a in alphas], origin="lower", cmap="viridis_r", aspect="auto")
    for i, a in enumerate(alphas):
        for j, b in enumerate(betas):
            axis.text(j, i, f"{wer[a, b]:.1f}", ha="center", va="center", fontsize=8, color="white")
    best = best_point(grid)
    axis.scatter([betas.index(best.beta)], [alphas.index(best.alpha)], s=400, facecolors="none", edgecolors="red")
    axis.set(xticks=range(len(betas)), xticklabels=betas, yticks=range(len(alphas)), yticklabels=alphas)
    axis.set(xlabel="beta (word score)", ylabel="alpha (LM weight)", title="dev WER % by LM weights")
    figure.colorbar(image, ax=axis)
    _save(figure, path)


def reliability_plot(confidences: dict[str, object], outcomes, path: Path, bins: int = 10) -> None:
    """Accuracy against stated confidence per bin, one line per kind of confidence; the diagonal is perfect."""
    figure = Figure(figsize=(5, 5))
    axis = figure.subplots()
    axis.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfect")
    for label, values in confidences.items():
        rows = reliability(values, outcomes, bins)
        ece = expected_calibration_error(values, outcomes, bins)
        axis.plot([r[0] for r in rows], [r[1] for r in rows], marker="o", label=f"{label} (ECE {100 * ece:.1f}%)")
    axis.set(xlabel="word confidence", ylabel="share of words right", xlim=(0, 1), ylim=(0, 1))
    axis.set_title(f"reliability of word confidences ({len(outcomes)} words)")
    axis.grid(alpha=0.3)
    axis.legend(loc="upper left")
    _save(figure, path)
