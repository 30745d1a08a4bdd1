"""CURVE keys for tcp runs: one key pair per node and one for the supervisor, made fresh per run or loaded
from a key directory. Every inbox accepts exactly the public keys of the run's members (``zmq.auth``); a
peer with any other key can neither send into a run nor receive from it.

``curve_wiring(names)`` returns the supervisor's ``wiring_extra``: node name -> extra ``Wiring`` fields
(``curve_server``, ``curve_clients``), plus ``"supervisor"`` for the control link. Each node gets only its
own secret key and everyone's public keys.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from interfaces import CurveClient, CurveKeyPair, CurveServer

from .node import SUPERVISOR


def load_or_create_keys(names: list[str], keys_dir: str | os.PathLike | None = None) -> dict[str, CurveKeyPair]:
    """A key pair per name. With ``keys_dir``: ``{name}.key_secret`` is loaded when present, else a new pair
    is generated and saved there (secret file mode 0600); without it every pair is fresh (lives one run)."""
    keys: dict[str, CurveKeyPair] = {}
    for name in names:
        if keys_dir is None:
            keys[name] = CurveKeyPair.generate()
        elif (Path(keys_dir) / f"{name}.key_secret").is_file():
            keys[name] = CurveKeyPair.load(keys_dir, name)
        else:
            keys[name] = CurveKeyPair.generate()
            keys[name].save(keys_dir, name)
    return keys


def curve_wiring(names: list[str], keys_dir: str | os.PathLike | None = None) -> dict[str, dict[str, Any]]:
    """``wiring_extra`` for a run whose nodes are ``names``: CURVE on every inbox and outlet.

    Allow-list of every server = the public keys of all nodes and the supervisor. Each member holds a
    ``CurveClient`` for every other member (the server's public key it must see before sending anything).
    """
    if SUPERVISOR in names:
        raise ValueError(f"a node may not be called {SUPERVISOR!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"node names must be unique, got {names}")
    members = [*names, SUPERVISOR]
    keys = load_or_create_keys(members, keys_dir)
    allowed = [keys[m].public for m in members]
    extra: dict[str, dict[str, Any]] = {}
    for me in members:
        extra[me] = {
            "curve_server": CurveServer(keys[me], list(allowed)),
            "curve_clients": {peer: CurveClient(keys[me], keys[peer].public) for peer in members if peer != me},
        }
    return extra
