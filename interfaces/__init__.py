"""dnilab interfaces: everything that crosses between two agents.

Public API (import from `interfaces`, never from its modules):

- wire: `Kind`, `Message`, `TensorSpec`, `Expectations`, `WireError`, `encode`, `decode` -- JSON header
  + raw tensor frames, zero-copy for big frames, strict validation, never pickle.
- transport: `Inbox` (bound PULL), `Outlet` (connected PUSH), `make_endpoint`, and CURVE security with
  `CurveKeyPair`, `CurveServer`, `CurveClient`.
- `Synthesizer`: the small networks M(h, c) and I(x), last layer zero-initialised.
- `StepBuffer`: bounded step-keyed store that counts drops.
- `SyntheticGradient`: sender side of a `dni` / `cdni` edge (update unlock); `LEARNERS` names where its
  learning step runs ("inline", or "thread": `BackgroundLearner`, a thread beside the agent's work).
- `TargetWave`: receiver side of a `dni` / `cdni` edge with `target = "delayed"`: M's target is the true
  gradient, sent back late by a backward wave (J^T of the target the receiver itself gets), not bootstrapped.
  `SG_TARGETS` names the two targets.
- `BackwardInterface`: a `SyntheticGradient` as an `nn.Module` for a plain single-process training loop
  (`h = bi(block(x))`: the block gets M(h) as its gradient at once; M learns from what later reaches h).
- `SyntheticInput`: receiver side of a `forward = "synthetic"` edge (forward unlock).
- quality metrics: `agreement` (cosine and norm ratio at once), `cosine`, `norm_ratio`, `relative_l2`.
- `adam`: torch's Adam/AdamW, fused where this torch and device have the kernel.

This package imports no other dnilab package.
"""

from .backward_interface import BackwardInterface
from .buffer import StepBuffer
from .gradient import LEARNERS, SyntheticGradient
from .learner import BackgroundLearner
from .optim import adam
from .quality import agreement, cosine, norm_ratio, relative_l2
from .synthesizers import Synthesizer
from .synthetic_input import SyntheticInput
from .target_wave import SG_TARGETS, TargetWave
from .transport import CurveClient, CurveKeyPair, CurveServer, Inbox, Outlet, make_endpoint
from .wire import Expectations, Kind, Message, TensorSpec, WireError, decode, encode

__all__ = [
    "LEARNERS",
    "BackgroundLearner",
    "BackwardInterface",
    "CurveClient",
    "CurveKeyPair",
    "CurveServer",
    "Expectations",
    "Inbox",
    "Kind",
    "Message",
    "Outlet",
    "StepBuffer",
    "Synthesizer",
    "SyntheticGradient",
    "SyntheticInput",
    "SG_TARGETS",
    "TargetWave",
    "TensorSpec",
    "WireError",
    "adam",
    "agreement",
    "cosine",
    "decode",
    "encode",
    "make_endpoint",
    "norm_ratio",
    "relative_l2",
]
