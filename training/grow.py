"""Widening a trained model's GRUs, so that a larger shape starts from what a smaller one learned.

Training a wider model from scratch on two CPU cores takes many sittings to catch up with the bundled one.
:func:`widen` instead gives each GRU direction new hidden units that copy randomly chosen old ones (Net2Net,
Chen et al. 2016): a copy takes its original's incoming weights and biases, and the original and its copies
share its outgoing weights (the next layer's input columns, the recurrent columns, the classifier's), so
together they say what it said alone. Noise on the copies' incoming weights (and dropout) is all that tells
them apart, and sitting 21 found that a fine-tune does not widen that gap (:data:`COPY_NOISE`).

Copies, rather than fresh units, also suit the LayerNorm that opens each GRU layer but the first: it
normalises over all its inputs, and duplicated inputs keep its per-frame mean and variance close to the old
ones, where units that say nothing (or random ones) shift them. So the widened model is not exact, only
close: on the bundled model, widening 320 units to 384 changed the label of 0.5% of the tuning set's
frames (KL 0.001 nats a frame), where new units that output zero changed 2.4%.

A first try gave the copies zero outgoing weights instead: after two epochs at a peak learning rate of
3e-4 their columns had grown to 4% of the old ones' size, the new units all but unused (MODEL_CARD,
sitting 21).
"""

from __future__ import annotations

import dataclasses

import torch

from asr.model import AcousticModel, ModelConfig

COPY_NOISE = 0.01
"""Relative noise on a copy's incoming weights: without it, an original and its copy get the same gradient
and stay one unit, but for dropout. In a fine-tune at a peak learning rate of 3e-4, training did not pull copies
further apart than the noise set them: 1% left a cosine similarity of 0.9999 to the original after two epochs, 20%
one of 0.98 after one (MODEL_CARD, sitting 21), so the copies added cost and little capacity."""


def widens(old: ModelConfig, new: ModelConfig) -> bool:
    """Whether ``new`` is ``old`` with wider GRUs (dropout and input centring may differ too)."""
    return new.rnn_hidden > old.rnn_hidden and dataclasses.replace(new, rnn_hidden=old.rnn_hidden).same_shape(old)


def starts(old: ModelConfig, new: ModelConfig) -> bool:
    """Whether a checkpoint of shape ``old`` can start a run of shape ``new`` (``train --init``): the same weights,
    or wider GRUs."""
    return old.same_shape(new) or widens(old, new)


def widen(model: AcousticModel, config: ModelConfig, generator: torch.Generator) -> AcousticModel:
    """A model of shape ``config`` (``model``'s with wider GRUs) that reads speech almost as ``model`` does."""
    if not widens(model.config, config):
        raise ValueError(
            f"can only widen the GRUs (rnn_hidden {model.config.rnn_hidden} to more units), keeping every other size"
        )
    old, new = model.config.rnn_hidden, config.rnn_hidden
    source = model.state_dict()
    target = {k: v.clone() for k, v in source.items() if not k.startswith(("rnns.", "classifier.0."))}
    inputs = None  # which old input each wide input of the layer repeats; the first layer's are unchanged
    for i in range(config.n_rnn_layers):
        prefix = f"rnns.{i}."
        for name in ("norm.weight", "norm.bias"):
            target[prefix + name] = source[prefix + name][inputs] if inputs is not None else source[prefix + name]
        outputs = []
        for d, direction in enumerate(("_l0", "_l0_reverse")):
            units = torch.cat((torch.arange(old), torch.randint(old, (new - old,), generator=generator)))
            rows = torch.cat([gate * old + units for gate in range(3)])  # the reset, update and new gates' rows
            copies = torch.cat([gate * new + torch.arange(old, new) for gate in range(3)])
            for kind, columns in (("ih", inputs), ("hh", units)):
                weight = _shared(source[f"{prefix}gru.weight_{kind}{direction}"][rows], columns)
                weight[copies] *= 1 + COPY_NOISE * torch.randn(weight[copies].shape, generator=generator)
                target[f"{prefix}gru.weight_{kind}{direction}"] = weight
                target[f"{prefix}gru.bias_{kind}{direction}"] = source[f"{prefix}gru.bias_{kind}{direction}"][rows]
            outputs.append(d * old + units)
        inputs = torch.cat(outputs)
    target["classifier.0.weight"] = _shared(source["classifier.0.weight"], inputs)
    target["classifier.0.bias"] = source["classifier.0.bias"]
    wide = AcousticModel(config)
    wide.load_state_dict(target)
    return wide


def _shared(weight: torch.Tensor, columns: torch.Tensor | None) -> torch.Tensor:
    """``weight`` reading wide inputs, the ``j``-th a repeat of old input ``columns[j]``: each old column is
    shared out equally among its repeats, so the product is unchanged. ``None``: the inputs did not change."""
    if columns is None:
        return weight.clone()
    repeats = torch.bincount(columns, minlength=weight.shape[1])
    return weight[:, columns] / repeats[columns].to(weight.dtype)
