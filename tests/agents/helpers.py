"""Agents that misbehave on purpose, plugged in through a recipe's ``factory`` key."""

from __future__ import annotations

import torch

from agents import FeedForwardAgent


class ExplodingAgent(FeedForwardAgent):
    """Raises at its 5th training step: the run must fail cleanly with this traceback."""

    def _train_step(self, step: int) -> None:
        if self.steps_done == 5:
            raise RuntimeError("boom: this agent exploded on purpose")
        super()._train_step(step)


class CorruptingAgent(FeedForwardAgent):
    """Fills its synthesizers with garbage before the final evaluation: composition must not notice."""

    def _eval_step(self) -> None:
        meta = self.eval_meta.get(self.eval_next, {})
        if meta.get("final") and self.eval_next == 0:
            with torch.no_grad():
                for sg in self.sg.values():
                    for p in sg.module.parameters():
                        p.fill_(float("nan"))
                if self.si is not None:
                    for p in self.si.module.parameters():
                        p.fill_(float("nan"))
        super()._eval_step()
