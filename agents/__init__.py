"""dnilab agents: the independent learners and the runtime that runs them.

Public API (import from ``agents`` only):

- topology: ``Graph``, ``AgentSpec``, ``EdgeSpec``, ``resolve`` (validate + infer shapes), ``ENV``,
  ``store_capacity`` (how many steps each agent's stores hold),
  ``BACKWARD_MODES`` (backprop, dni, cdni, none), ``FORWARD_MODES`` (real, synthetic).
- building blocks: ``build_module``, ``LinearStage``, ``ConvStage``, ``ClassifierHead``, ``build_optimizer``,
  ``StepDecay`` (an optimizer's lr decay on the run's clock).
- nodes: ``FeedForwardAgent`` (a stage or head), ``EnvNode`` (streams an environment), ``RecurrentNode``
  (an LSTM with truncated BPTT + synthetic gradients: ``run_recurrent``, ``RecurrentConfig``; ``restore``
  rebuilds one from its checkpoint, ``lm_bits`` scores it character by character; ``agents.boundary_probe``
  measures how much of the gradient at its window boundary any M could predict), ``Node`` (base),
  ``TickingAgent`` (one level of a multi-timescale chain: ``TickSchedule``, ``TickingCore``, ``level_macs``,
  ``solve_hidden``; ``pool_images``/``pooled_dim`` for an M that reads its inputs pooled).
- runtime: ``NodeSpec``, ``Supervisor``, ``Outcome``, ``Recorder``, ``LocalLauncher``, ``InprocLauncher``,
  ``pick_device``, ``placement`` (where an agent's parameters really are, for its records),
  ``threads_per_agent``, ``curve_wiring`` (CURVE keys for tcp runs), ``checkpoint_path`` /
  ``write_checkpoint`` (where every agent's checkpoint lives in a run folder, written atomically).
- reinforcement learning (``run.kind = "rl"``): ``RlEnvNode`` (a gymnasium vector env stepped on the head's
  actions: ``make_vector_env``, ``space_facts``, ``check_action``), ``PolicyStage`` (an encoder) and ``PolicyHead``
  (PPO's actor-critic), their tables ``RlEnvConfig``, ``RlAgentConfig``, ``RlEdgeConfig``, ``RlSynthesizerConfig``,
  ``PpoConfig``; the plain networks and loss ``PolicyEncoder``, ``ActorCritic``, ``gae``, ``ppo_loss``,
  ``minibatch_order`` (the update's shuffles, from a seed both sides know).
- typed config: ``Strict`` (the base of every recipe table), ``describe_error``.
  ``RayLauncher`` lives in ``agents.ray_launcher`` (optional extra ``dnilab[ray]``; imported only when used).
"""

from .blocks import ClassifierHead, ConvStage, LinearStage, build_module
from .checkpoints import checkpoint_path, write_checkpoint
from .config import Strict, describe_error
from .devices import pick_device, placement, threads_per_agent
from .env_node import EnvNode
from .feedforward import FeedForwardAgent
from .graph import BACKWARD_MODES, ENV, FORWARD_MODES, AgentSpec, EdgeSpec, Graph, resolve, store_capacity
from .launchers import InprocLauncher, Launcher, LocalLauncher
from .multiscale import TickingAgent, TickingCore, TickSchedule, level_macs, pool_images, pooled_dim, solve_hidden
from .node import Node, NodeRuntime, Wiring
from .optim import StepDecay, build_optimizer
from .ppo import ActorCritic, PolicyEncoder, PpoConfig, explained_variance, gae, minibatch_order, ppo_loss
from .process import NodeSpec
from .recurrent import RecurrentConfig, lm_bits, restore, run_recurrent, validate_recurrent
from .recurrent_node import RecurrentNode
from .rl_config import RlAgentConfig, RlEdgeConfig, RlSynthesizerConfig
from .rl_env import RlEnvConfig, RlEnvNode, check_action, make_vector_env, space_facts
from .rl_policy import PolicyHead, PolicyStage
from .security import curve_wiring
from .supervisor import Outcome, Recorder, Supervisor

__all__ = [
    "BACKWARD_MODES",
    "ENV",
    "FORWARD_MODES",
    "ActorCritic",
    "AgentSpec",
    "ClassifierHead",
    "ConvStage",
    "EdgeSpec",
    "EnvNode",
    "FeedForwardAgent",
    "Graph",
    "InprocLauncher",
    "Launcher",
    "LinearStage",
    "LocalLauncher",
    "Node",
    "NodeRuntime",
    "NodeSpec",
    "Outcome",
    "PolicyEncoder",
    "PolicyHead",
    "PolicyStage",
    "PpoConfig",
    "Recorder",
    "RecurrentConfig",
    "RecurrentNode",
    "RlAgentConfig",
    "RlEdgeConfig",
    "RlEnvConfig",
    "RlEnvNode",
    "RlSynthesizerConfig",
    "StepDecay",
    "Strict",
    "Supervisor",
    "TickSchedule",
    "TickingAgent",
    "TickingCore",
    "Wiring",
    "build_module",
    "build_optimizer",
    "check_action",
    "checkpoint_path",
    "curve_wiring",
    "describe_error",
    "explained_variance",
    "gae",
    "level_macs",
    "lm_bits",
    "make_vector_env",
    "minibatch_order",
    "pick_device",
    "placement",
    "pool_images",
    "pooled_dim",
    "ppo_loss",
    "resolve",
    "restore",
    "run_recurrent",
    "solve_hidden",
    "space_facts",
    "store_capacity",
    "threads_per_agent",
    "validate_recurrent",
    "write_checkpoint",
]
