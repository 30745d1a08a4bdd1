"""A recurrent agent as a supervised node: runs ``run_recurrent`` in its own process and reports through
the control plane (metrics, the final evaluation), stopping when the supervisor says so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from interfaces import Kind, Message

from .checkpoints import write_checkpoint
from .devices import placement
from .node import SUPERVISOR, Node, Stop
from .recurrent import run_recurrent

NAME = "recurrent"


class RecurrentNode(Node):
    """One LSTM agent with truncated BPTT and (optionally) synthetic gradients at window boundaries."""

    name = NAME

    def __init__(self, recipe: dict[str, Any], device: str = "cpu", make_env: str = "environments:make",
                 run_dir: str | None = None) -> None:
        self.recipe = recipe
        self.device = device
        self.make_env = make_env
        self.run_dir = Path(run_dir) if run_dir else None
        self.finished_run = False
        self.stop_requested = False
        self.core: nn.Module | None = None  # the LSTM core, once built: where it ran goes into the records

    def on_message(self, msg: Message) -> None:
        pass  # a lone recurrent agent has no data peers

    def _should_stop(self) -> bool:
        for msg in self.rt.inbox.recv_all():
            if msg.kind is Kind.CONTROL and msg.sender == SUPERVISOR and msg.meta.get("verb") == "stop":
                self.stop_requested = True
        return self.stop_requested

    def _report(self, step: int, values: dict[str, Any]) -> None:
        self.rt.tell("metrics", step=step, steps=step, **values)

    def work(self) -> bool:
        if self.finished_run:
            return False
        from .env_node import load_factory

        result = run_recurrent(self.recipe, self._report, self._should_stop, device=self.device,
                               make_env=load_factory(self.make_env), on_built=self._keep_core,
                               save=self._save_checkpoint)
        self.finished_run = True
        if self.stop_requested:
            raise Stop()
        at = self.recipe["run"]["steps"]
        self.rt.tell("eval", step=at, final=True, round=0, at=at, **result)
        self.rt.tell("complete", step=at)
        return True

    def _keep_core(self, core: nn.Module) -> None:
        self.core = core

    def _save_checkpoint(self, state: dict[str, Any]) -> None:
        if self.run_dir is not None:
            write_checkpoint(self.run_dir, self.name, {"agent": self.name, "recipe": self.recipe, **state})

    def on_stop(self) -> dict[str, Any]:
        return placement(self.core) if self.core is not None else {}
