"""Turn a checked feed-forward recipe into a resolved graph and the node specs the supervisor starts.

``[model]`` tables expand into one agent per layer, so ``--set model.depth=6`` changes the depth:

- ``fcn``: ``depth`` layers counted as the paper counts them: ``depth - 1`` hidden layers
  (Linear -> BatchNorm -> ReLU, ``hidden`` units), then the linear classifier; one agent per layer.
- ``cnn``: one conv agent per entry of ``channels`` (5x5 conv -> BN -> ReLU -> 2x2 max-pool), then the
  linear classifier; ``depth`` = ``len(channels) + 1``.
- ``quadrants``: for an input cut into parts ``[P, D]`` (MNIST with ``env.kwargs.quadrants = true``: four
  14x14 quarters, ``[4, 196]``), one sensor agent per part (``q1`` .. ``qP``: Linear-BN-ReLU, ``sensor``
  units; the edge ``env->q{i}`` carries part ``i - 1``), a fusion agent reading all P sensors (fan-in,
  concatenated: Linear-BN-ReLU, ``hidden`` units), then the linear classifier ``head``. ``[defaults.edge]``
  sets every sensor-to-fusion edge and the fusion-to-head edge.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from agents import (
    ENV,
    AgentConfig,
    AgentSpec,
    EdgeConfig,
    EdgeSpec,
    Graph,
    NodeSpec,
    resolve,
    store_capacity,
    threads_per_agent,
)
from environments import make

from .config import check
from .devices import resolve_device
from .recipe import RecipeError

FACTORY_ENV = "agents:EnvNode"


def expand_model(model: dict[str, Any], input_shape: tuple[int, ...]) -> tuple[list[dict], list[dict]]:
    """Agents and edges (as recipe tables) for a checked ``[model]`` table (``runs.config.ModelConfig``)."""
    classes = model["classes"]
    if model["kind"] == "quadrants":
        return expand_quadrants(model, input_shape)
    if model["kind"] == "fcn":
        depth, hidden = model["depth"], model["hidden"]
        width = math.prod(input_shape)
        agents = [{"name": f"l{i}", "module": {"type": "linear", "in": width if i == 1 else hidden, "out": hidden}}
                  for i in range(1, depth)]
        agents.append({"name": "head", "module": {"type": "head", "in": hidden, "classes": classes}})
    else:
        if len(input_shape) != 3:
            raise RecipeError(f"model.kind: 'cnn' needs image inputs [C,H,W], the env gives {list(input_shape)}"
                              " (set env.kwargs.flatten = false)")
        c, h, w = input_shape
        agents = []
        for i, out in enumerate(model["channels"], start=1):
            agents.append({"name": f"c{i}", "module": {"type": "conv", "in_channels": c, "out_channels": out}})
            c, h, w = out, h // 2, w // 2
        agents.append({"name": "head", "module": {"type": "head", "in": c * h * w, "classes": classes}})
    names = [ENV] + [a["name"] for a in agents]
    edges = [{"from": a, "to": b} for a, b in zip(names[:-1], names[1:])]
    return agents, edges


def expand_quadrants(model: dict[str, Any], input_shape: tuple[int, ...]) -> tuple[list[dict], list[dict]]:
    """One sensor per part of a ``[P, D]`` input, a fusion agent over all of them, a head (module docstring)."""
    if len(input_shape) != 2:
        raise RecipeError(f"model.kind: 'quadrants' needs an input cut into parts [P, D], the env gives "
                          f"{list(input_shape)} (MNIST: set env.kwargs.quadrants = true)")
    parts, width = input_shape
    sensor, hidden = model["sensor"], model["hidden"]
    sensors = [f"q{i}" for i in range(1, parts + 1)]
    agents = [{"name": q, "module": {"type": "linear", "in": width, "out": sensor}} for q in sensors]
    agents.append({"name": "fusion", "module": {"type": "linear", "in": parts * sensor, "out": hidden}})
    agents.append({"name": "head", "module": {"type": "head", "in": hidden, "classes": model["classes"]}})
    edges = [{"from": ENV, "to": q, "part": i} for i, q in enumerate(sensors)]
    edges += [{"from": q, "to": "fusion"} for q in sensors]
    edges.append({"from": "fusion", "to": "head"})
    return agents, edges


def env_input_shape(recipe: dict[str, Any]) -> tuple[int, ...]:
    """Make the environment once (it checks its own kwargs) to learn the per-sample input shape."""
    env_cfg = recipe["env"]
    try:
        env = make(env_cfg["id"], **env_cfg.get("kwargs", {}))
    except RecipeError:
        raise
    except Exception as err:  # noqa: BLE001 - any failure here is a recipe problem
        raise RecipeError(f"env: cannot make {env_cfg['id']!r} with kwargs {env_cfg.get('kwargs', {})}: "
                          f"{type(err).__name__}: {err}") from None
    shape = tuple(env.observation_space.shape[1:])
    env.close()
    return shape


def largest_batch(recipe: dict[str, Any]) -> int:
    """The biggest batch the environment sends (training or evaluation): it caps the frames agents accept."""
    env_cfg = recipe["env"]
    kwargs = env_cfg.get("kwargs", {})
    sizes = []
    for extra in ({}, env_cfg.get("eval", {"split": "test"})):
        try:
            env = make(env_cfg["id"], **{**kwargs, **extra})
        except Exception:  # noqa: BLE001 - build_graph already named a bad env; no cap is the safe fallback
            return 0
        shape = env.observation_space.shape
        env.close()
        if not shape:
            return 0
        sizes.append(int(shape[0]))
    return max(sizes)


def build_graph(recipe: dict[str, Any]) -> Graph:
    """The resolved graph of a checked feed-forward recipe (``runs.config.FeedForwardRecipe``): every agent and
    edge table checked with its defaults and overrides merged in (``RecipeError`` naming the key)."""
    input_shape = env_input_shape(recipe)
    if "model" in recipe:
        agents, edges = expand_model(recipe["model"], input_shape)
    else:
        agents, edges = copy.deepcopy(recipe["agents"]), copy.deepcopy(recipe.get("edges", []))
    agent_defaults, edge_defaults = recipe["defaults"]["agent"], recipe["defaults"]["edge"]
    overrides = recipe["overrides"]
    names = {a.get("name") for a in agents}
    for name in overrides:
        if name not in names:
            raise RecipeError(f"overrides.{name}: no such agent (agents: {sorted(map(str, names))})")
    run = recipe["run"]
    specs = []
    for i, table in enumerate(agents):
        where = f"agents[{i}]" if "model" not in recipe else f"agents.{table['name']}"
        agent = check(AgentConfig, {**agent_defaults, **table, **overrides.get(table.get("name"), {})}, where)
        key = f"{where}.device" if agent.device is not None else "run.device"
        device = resolve_device(i, agent.device or run["device"], key, run["launcher"])
        specs.append(AgentSpec(**{**agent.model_dump(), "device": device}))
    edge_specs = []
    for i, table in enumerate(edges):
        merged = {**(edge_defaults if table.get("from") != ENV else {}), **table}
        edge_specs.append(EdgeSpec(**check(EdgeConfig, merged, f"edges[{i}]").model_dump(exclude_none=True)))
    graph = Graph(specs, edge_specs, input_shape, recipe.get("model", {}).get("classes", 10))
    try:
        graph = resolve(graph)
        run["capacity"] = store_capacity(run["capacity"], graph, run["window"])  # the resolved recipe says it
        return graph
    except ValueError as err:
        raise RecipeError(str(err)) from None


def node_specs(recipe: dict[str, Any], graph: Graph, run_dir: str) -> list[NodeSpec]:
    """One NodeSpec per agent plus the environment node."""
    run, env_cfg = recipe["run"], recipe["env"]
    # the env node only slices and sends batches: it is not counted, so a lone agent gets every core
    threads = threads_per_agent(len(graph.agents))
    # forward-unlocked agents paced by the fastest never wait: each one's budget is its own `steps` updates
    free_running = run["pace"] == "fastest" and any(e.forward == "synthetic" for e in graph.edges)
    batch = largest_batch(recipe)
    every = run["checkpoint_every"]
    specs = [NodeSpec(ENV, FACTORY_ENV, dict(
        graph=graph, env_id=env_cfg["id"], env_kwargs=env_cfg.get("kwargs", {}),
        eval_kwargs=env_cfg["eval"], steps=run["steps"], seconds=float(run["seconds"]),
        seed=run["seed"], eval_every=run["eval_every"], window=run["window"],
        metrics_every=run["metrics_every"], pace_all=run["pace"] == "all", free_running=free_running,
        run_dir=run_dir, checkpoint_every=every), required=True, max_batch=batch, restart_kwargs={"resume": True})]
    for i, agent in enumerate(graph.agents):
        specs.append(NodeSpec(agent.name, agent.factory, dict(
            spec=agent, graph=graph, seed=run["seed"] * 1000 + i, run_dir=run_dir, window=run["window"],
            capacity=run["capacity"], metrics_every=run["metrics_every"], ack_inputs=run["pace"] == "all",
            steps=run["steps"], free_running=free_running, checkpoint_every=every),
            device=agent.device, threads=threads, required=agent.head,
            num_gpus=1.0 if agent.device.startswith("cuda") else 0.0, max_batch=batch,
            restart_kwargs={"resume": True}))
    return specs
