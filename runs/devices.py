"""Recipe device keys -> each agent's device, checked before any process starts."""

from __future__ import annotations

from agents import pick_device

from .recipe import RecipeError


def resolve_device(index: int, requested: str, key: str, launcher: str) -> str:
    """``pick_device`` for a recipe: a device this machine cannot give is a ``RecipeError`` naming ``key``. Ray
    may start agents on other machines, so there only the spelling is checked here."""
    try:
        return pick_device(index, requested, here=launcher != "ray")
    except ValueError as err:
        raise RecipeError(f"{key}: {err}") from None
