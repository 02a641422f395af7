"""Training curves as a PNG: loss and dev error rates per epoch, read at a glance."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure


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
    figure.tight_layout()
    figure.savefig(path, dpi=100)
