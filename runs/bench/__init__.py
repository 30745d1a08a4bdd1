"""``dnilab bench``: throughput and memory benchmarks that report side-by-side ratios.

Each benchmark module measures one thing and returns rows (dicts) that carry the parameters they were
measured at, the measured values and a ``ratio`` taken against a baseline in the same run, because the
machines these run on are shared and noisy: absolute numbers drift, ratios measured together do not.

- ``transport``: dnilab's channel (header, validation, tensor decode) vs raw pyzmq, ipc / tcp / CURVE.
- ``pipeline``: N sleeping agents in a chain, backprop vs dni vs complete unlock (ideal speed-up N).
- ``compute``: real MNIST FCN compute, cdni vs backprop, and processes vs one process.
- ``fused``: the FCN as one dnilab agent vs a plain PyTorch loop.
- ``speedup``: speed at equal accuracy: the time a model split into N agents (backprop, dni, cdni, complete unlock)
  takes to reach the final accuracy of the same model trained in one process with all their cores.
- ``floor``: the host time of one agent step with a tiny module (the per-step overhead), with a profile.
- ``faults``: what a real run survives: kill -9 and restart, killed twice, SIGTERM and resume, stray frames into
  every inbox (composed error against an uninterrupted run of the same seed, RSS growth, socket files left).
- ``memory``: peak RSS per agent and of the supervisor; bounded buffers under a slowed agent.
- ``multiscale``: multi-timescale controllers (backprop / DNI / cDNI recipes): ms per step, each process's CPU and
  work ms per step, and the floors they set for a system whose agents never wait.
- ``rl``: an RL recipe as dnilab agents vs the same PPO as one plain PyTorch loop (env steps/s, steps to the
  threshold, final deterministic return).
"""
