"""The typed config layer: errors name the dotted key, list what is allowed, and defaults are filled."""

from __future__ import annotations

import pytest

from agents import (
    AgentConfig,
    ConfigError,
    EdgeConfig,
    EdgeOptions,
    LevelConfig,
    Strict,
    SynthesizerConfig,
    check_config,
)


def error(model: type[Strict], data: dict, where: str = "x") -> str:
    with pytest.raises(ConfigError) as err:
        check_config(model, data, where)
    return str(err.value)


def test_unknown_key_is_named_with_the_known_ones() -> None:
    assert error(EdgeOptions, {"synthesizer": {"lrr": 1}}, "defaults.edge") == (
        "defaults.edge.synthesizer.lrr: unknown key (known: capacity, hidden, lr, scale, target, updates)")
    known = error(LevelConfig, {"hiden": 3}, "levels.slow")
    assert known.startswith("levels.slow.hiden: unknown key (known: backward,")


def test_wrong_type_is_named() -> None:
    assert error(AgentConfig, {"name": "a", "module": {}, "slowdown": "fast"}, "agents[0]") == (
        "agents[0].slowdown: must be a number, got 'fast'")
    assert error(EdgeOptions, {"prefer_real": 1}) == "x.prefer_real: must be true or false, got 1"  # no int for a bool
    assert error(SynthesizerConfig, {"hidden": [8, "x"]}) == "x.hidden[1]: must be an int, got 'x'"
    assert error(LevelConfig, {"hidden": "big"}) == "x.hidden: must be an int or \"auto\", got 'big'"


def test_allowed_values_and_bounds_are_listed() -> None:
    assert error(EdgeOptions, {"backward": "sideways"}) == (
        "x.backward: must be 'backprop', 'dni', 'cdni' or 'none', got 'sideways'")
    assert error(AgentConfig, {"name": "a", "module": {}, "update_prob": 0}) == "x.update_prob: must be > 0, got 0"
    assert error(AgentConfig, {"name": "a"}) == "x.module: missing"


def test_a_check_of_two_keys_names_the_key() -> None:
    msg = error(LevelConfig, {"synthesizer": {"encoder": 8, "context": "state"}}, "levels.slow")
    assert msg.startswith("levels.slow.synthesizer.encoder: only with context = \"inputs\"")


def test_defaults_are_filled_and_aliases_kept() -> None:
    edge = check_config(EdgeConfig, {"from": "a", "to": "b", "backward": "dni"})
    assert (edge.sender, edge.receiver, edge.synthesizer.lr, edge.synthesizer.capacity) == ("a", "b", 1e-4, None)
    dumped = edge.model_dump(by_alias=True, exclude_none=True)
    assert dumped["from"] == "a" and "capacity" not in dumped["synthesizer"] and dumped["forward"] == "real"
    assert check_config(AgentConfig, {"name": "a", "module": {}, "slowdown": 2}).slowdown == 2.0
