"""``make(spec)``: one way to build any environment, registered or plugged in by import path.

Recipes name environments as strings; this turns either a gymnasium id ("dnilab/MNIST-v0") or a
"package.module:Class" path into an env, and fails with a ValueError that names the spec.
"""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym

__all__ = ["make"]


def make(spec: str, **kwargs: Any) -> gym.Env:
    """Build the env named by ``spec`` with ``kwargs``.

    - a registered gymnasium id -> ``gymnasium.make(spec, **kwargs)`` (wrapped; use ``.unwrapped`` for
      env-specific attributes such as ``num_batches``);
    - ``"package.module:Class"`` -> import the module and call ``Class(**kwargs)``; the class must be a
      ``gymnasium.Env``. (``"module:Some-v0"`` also works when importing the module registers that id.)
    Errors in the env's own constructor (bad kwargs) propagate unchanged.
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"environment spec must be a non-empty string, got {spec!r}")
    if spec in gym.registry:
        return gym.make(spec, **kwargs)
    if ":" not in spec:
        ours = sorted(i for i in gym.registry if i.startswith("dnilab/"))
        raise ValueError(
            f"unknown environment {spec!r}: not a registered gymnasium id (dnilab ids: {ours}) "
            "and not a 'package.module:Class' path"
        )
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"environment spec {spec!r} must look like 'package.module:Class'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"environment spec {spec!r}: cannot import module {module_name!r} ({e})") from e
    if attr in gym.registry:  # the module registered an id on import
        return gym.make(attr, **kwargs)
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ValueError(f"environment spec {spec!r}: module {module_name!r} has no attribute {attr!r}")
        target = getattr(target, part)
    if not (isinstance(target, type) and issubclass(target, gym.Env)):
        raise ValueError(f"environment spec {spec!r}: {attr!r} is {target!r}, not a gymnasium.Env subclass")
    return target(**kwargs)
