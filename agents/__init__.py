"""dnilab agents: the independent learners and the runtime that runs them.

Public API (import from ``agents`` only):

- topology: ``Graph``, ``AgentSpec``, ``EdgeSpec``, ``resolve`` (validate + infer shapes), ``validate_topology``,
  ``ENV``, ``store_capacity`` (how many steps each agent's stores hold),
  ``BACKWARD_MODES`` (backprop, dni, cdni, none), ``FORWARD_MODES`` (real, synthetic); fan-in merges
  ``MERGES`` (concat, sum) with ``merged_shape`` (checked before start), ``merge_inputs``, ``split_gradient``.
- building blocks: ``build_module``, ``LinearStage``, ``ConvStage``, ``ClassifierHead``, ``build_optimizer``,
  ``StepDecay`` (an optimizer's lr decay on the run's clock).
- nodes: ``FeedForwardAgent`` (a stage or head), ``EnvNode`` (streams an environment), ``RecurrentNode``
  (an LSTM with truncated BPTT + synthetic gradients: ``run_recurrent``, ``RecurrentConfig``; ``restore``
  rebuilds one from its checkpoint, ``lm_bits`` scores it character by character; ``agents.boundary_probe``
  measures how much of the gradient at its window boundary any M could predict), ``Node`` (base),
  ``TrainingAgent`` (base of the training agents: metrics rows, counters, checkpoint, stop; ``RunningMeans``),
  ``TickingAgent`` (one level of a multi-timescale chain: ``TickSchedule``, ``TickingCore``, ``level_macs``,
  ``solve_hidden``; ``pool_images``/``pooled_dim`` for an M that reads its inputs pooled).
- config (the one typed config layer, pydantic): ``Strict`` (the base of every recipe table),
  ``check_config`` / ``describe_error`` / ``ConfigError`` / ``InvalidKey`` (errors naming the dotted key), the
  tables ``AgentOptions``/``AgentConfig``, ``EdgeOptions``/``EdgeConfig``, ``SynthesizerConfig``,
  ``InputSynthesizerConfig``, ``LevelConfig``, ``TickingEdgeOptions``, ``TickingSynthesizerConfig``, and the
  recurrent agent's ``RecurrentRecipe`` (``RecurrentRun``, ``RecurrentConfig``, ``CurriculumConfig``;
  ``parse_recipe`` / ``validate_recurrent``; ``agent_recipe`` picks its part of a whole recipe).
- runtime: ``NodeSpec``, ``Supervisor``, ``Outcome``, ``Recorder``, ``LocalLauncher``, ``InprocLauncher``,
  ``pick_device``, ``placement`` (where an agent's parameters really are, for its records),
  ``threads_per_agent`` / ``cores_per_agent`` (an agent's torch threads and the cores it may be pinned to),
  ``curve_wiring`` (CURVE keys for tcp runs), ``checkpoint_path`` /
  ``write_checkpoint`` (where every agent's checkpoint lives in a run folder), ``atomic_writer`` (every record file
  is written whole or not at all).
- diagnosis: ``run_reference`` / ``ReferenceConfig`` (a one-process DNI chain with the true gradient at hand:
  what M learns from, and how the applied gradient agrees with the true one), ``summarize_probes``.
- reinforcement learning (``run.kind = "rl"``): ``RlEnvNode`` (a gymnasium vector env stepped on the head's
  actions: ``make_vector_env``, ``space_facts``, ``check_action``), ``PolicyStage`` (an encoder) and ``PolicyHead``
  (PPO's actor-critic), ``RecurrentStage`` (a slow GRU agent giving the head its context; ``SlowCore``), their
  tables ``RlEnvConfig``, ``RlAgentConfig``, ``RlEdgeConfig``, ``RlSynthesizerConfig``, ``PpoConfig``; the plain
  networks and loss ``PolicyEncoder``, ``ActorCritic``, ``gae``, ``ppo_loss``, ``minibatch_order`` (the update's
  shuffles, from a seed both sides know).
- multi-agent RL (``run.kind = "marl"``): ``MarlEnvNode`` (N copies of a PettingZoo Parallel env,
  ``ParallelCopies``, routed by agent name; ``MarlEnvConfig``, ``parallel_facts``) and ``CommStage`` (a policy
  encoder that sends its output to other policies as a message, or merges messages into its observation).
  ``RayLauncher`` lives in ``agents.ray_launcher`` (optional extra ``dnilab[ray]``; imported only when used).
"""

from .blocks import ClassifierHead, ConvStage, LinearStage, build_module
from .checkpoints import atomic_writer, checkpoint_path, write_checkpoint
from .config import (
    AgentConfig,
    AgentOptions,
    ConfigError,
    EdgeConfig,
    EdgeOptions,
    InputSynthesizerConfig,
    InvalidKey,
    LevelConfig,
    Strict,
    SynthesizerConfig,
    TickingEdgeOptions,
    TickingSynthesizerConfig,
    check_config,
    describe_error,
)
from .curriculum import CurriculumConfig
from .devices import cores_per_agent, pick_device, placement, threads_per_agent
from .dni_reference import ReferenceConfig, run_reference, summarize_probes
from .env_node import EnvNode
from .feedforward import FeedForwardAgent
from .graph import (
    BACKWARD_MODES,
    ENV,
    FORWARD_MODES,
    AgentSpec,
    EdgeSpec,
    Graph,
    resolve,
    store_capacity,
    validate_topology,
)
from .launchers import InprocLauncher, Launcher, LocalLauncher
from .marl_env import MarlEnvConfig, MarlEnvNode, ParallelCopies, parallel_facts
from .marl_policy import CommStage
from .merge import MERGES, merge_inputs, merged_shape, split_gradient
from .multiscale import TickingAgent, TickingCore, TickSchedule, level_macs, pool_images, pooled_dim, solve_hidden
from .node import Node, NodeRuntime, Wiring
from .optim import StepDecay, build_optimizer
from .ppo import ActorCritic, PolicyEncoder, PpoConfig, explained_variance, gae, minibatch_order, ppo_loss
from .process import NodeSpec
from .recurrent import run_recurrent
from .recurrent_agent import restore
from .recurrent_config import (
    RecurrentConfig,
    RecurrentRecipe,
    RecurrentRun,
    agent_recipe,
    parse_recipe,
    validate_recurrent,
)
from .recurrent_lm import lm_bits
from .recurrent_node import RecurrentNode
from .rl_config import RlAgentConfig, RlEdgeConfig, RlSynthesizerConfig
from .rl_env import RlEnvConfig, RlEnvNode, check_action, make_vector_env, space_facts
from .rl_policy import PolicyHead, PolicyStage
from .rl_recurrent import RecurrentStage, SlowCore
from .security import curve_wiring
from .supervisor import Outcome, Recorder, Supervisor
from .training import RunningMeans, TrainingAgent

__all__ = [
    "CommStage",
    "MarlEnvConfig",
    "MarlEnvNode",
    "ParallelCopies",
    "parallel_facts",
    "BACKWARD_MODES",
    "ENV",
    "FORWARD_MODES",
    "MERGES",
    "ActorCritic",
    "AgentConfig",
    "AgentOptions",
    "AgentSpec",
    "ClassifierHead",
    "ConfigError",
    "ConvStage",
    "CurriculumConfig",
    "EdgeConfig",
    "EdgeOptions",
    "EdgeSpec",
    "EnvNode",
    "FeedForwardAgent",
    "Graph",
    "InprocLauncher",
    "InputSynthesizerConfig",
    "InvalidKey",
    "Launcher",
    "LevelConfig",
    "LinearStage",
    "LocalLauncher",
    "Node",
    "NodeRuntime",
    "NodeSpec",
    "Outcome",
    "PolicyEncoder",
    "PolicyHead",
    "PolicyStage",
    "RecurrentStage",
    "SlowCore",
    "PpoConfig",
    "Recorder",
    "RecurrentConfig",
    "ReferenceConfig",
    "RecurrentNode",
    "RecurrentRecipe",
    "RecurrentRun",
    "RlAgentConfig",
    "RlEdgeConfig",
    "RlEnvConfig",
    "RlEnvNode",
    "RlSynthesizerConfig",
    "RunningMeans",
    "StepDecay",
    "Strict",
    "Supervisor",
    "SynthesizerConfig",
    "TickSchedule",
    "TickingAgent",
    "TrainingAgent",
    "TickingCore",
    "TickingEdgeOptions",
    "TickingSynthesizerConfig",
    "Wiring",
    "atomic_writer",
    "build_module",
    "build_optimizer",
    "check_action",
    "check_config",
    "checkpoint_path",
    "cores_per_agent",
    "curve_wiring",
    "describe_error",
    "agent_recipe",
    "explained_variance",
    "gae",
    "level_macs",
    "lm_bits",
    "make_vector_env",
    "merge_inputs",
    "merged_shape",
    "minibatch_order",
    "parse_recipe",
    "pick_device",
    "placement",
    "pool_images",
    "pooled_dim",
    "ppo_loss",
    "resolve",
    "restore",
    "run_recurrent",
    "run_reference",
    "solve_hidden",
    "split_gradient",
    "space_facts",
    "store_capacity",
    "summarize_probes",
    "threads_per_agent",
    "validate_recurrent",
    "validate_topology",
    "write_checkpoint",
]
