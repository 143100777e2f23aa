"""What one training step minimises: a registry keyed by ``TrainConfig.objective``.

An objective decides which parameters train (:meth:`Objective.prepare`, called
before the optimiser and DDP see the model, so DDP never meets a parameter that
gets no gradient) and turns one micro-batch into losses read from the model's
own output: ``loss`` (the final layer) and ``exit_losses`` (one per exit head).

- ``lm``: the final layer's next-token loss (the reference study);
- ``lm+exits``: that plus the mean of the exit heads' losses, everything trained
  jointly;
- ``exits``: the trunk frozen (``model.freeze_trunk()``), only the exit heads
  train on the mean of their losses, as Gera et al. (2023) train the heads they
  use for auto-contrastive decoding; start it from a trained trunk with
  ``init_from``.

No torch import at module level: the config imports the names to validate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from impossible_lms.errors import ILMError


@dataclass(frozen=True)
class Losses:
    total: Any  # the scalar backward() sees
    lm: Any  # the final layer's loss, detached (what metrics.jsonl calls "loss")
    exits: Any | None  # [n_exits] each exit head's loss, detached, in exit_layers order; None without heads


@dataclass(frozen=True)
class Objective:
    name: str
    trains_trunk: bool
    trains_exits: bool

    def check(self, model_config, preset: str) -> None:
        """ILMError unless a model with ``model_config`` suits this objective (before any weights exist)."""
        has_exits = bool(getattr(model_config, "exit_layers", None))
        if self.trains_exits and not has_exits:
            raise ILMError(f"objective {self.name!r} trains exit heads, but model {preset} has none "
                           "(use a preset with exit_layers, e.g. tiny-gpt2-exits, or set model_overrides.exit_layers)")
        if has_exits and not self.trains_exits:
            raise ILMError(f"objective {self.name!r} would leave the exit heads of {preset} untrained; "
                           "set objective to lm+exits (joint) or exits (trunk frozen)")

    def prepare(self, model, preset: str) -> None:
        """Check ``model`` suits this objective; freeze what it does not train."""
        self.check(model.config, preset)
        if not self.trains_trunk:
            model.freeze_trunk()

    def losses(self, net, x) -> Losses:
        """The losses of micro-batch ``x`` (inputs are their own labels, shifted inside the model)."""
        if not self.trains_exits:
            loss = net(input_ids=x, labels=x, **_without_logits(net)).loss
            return Losses(loss, loss.detach(), None)
        import torch

        out = net(input_ids=x, labels=x, output_exit_logits=True, return_logits=False)
        exits = torch.stack(list(out.exit_losses.values()))
        total = out.loss + exits.mean() if self.trains_trunk else exits.mean()
        return Losses(total, out.loss.detach(), exits.detach())


def _without_logits(net) -> dict:
    """``return_logits=False`` for ilm's models (the loss from the hidden states, no [B, T, V] logits);
    nothing for a transformers model, which makes its logits and loss its own way."""
    from impossible_lms.models.loading import MODEL_CLASSES
    from impossible_lms.training.checkpoint import unwrap

    return {"return_logits": False} if type(unwrap(net)) in MODEL_CLASSES.values() else {}


OBJECTIVES: dict[str, Objective] = {
    o.name: o
    for o in (
        Objective("lm", trains_trunk=True, trains_exits=False),
        Objective("lm+exits", trains_trunk=True, trains_exits=True),
        Objective("exits", trains_trunk=False, trains_exits=True),
    )
}


def get_objective(name: str) -> Objective:
    from impossible_lms.errors import did_you_mean

    if name not in OBJECTIVES:
        raise ILMError(f"objective {name!r}{did_you_mean(name, OBJECTIVES)} is not one of {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name]
