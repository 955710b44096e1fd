"""The local Tinker-compatible engine: `chief engine serve`.

An HTTP server that the unmodified `tinker` SDK (0.38.x) talks to through `base_url`, backed by
PyTorch + PEFT. It owns two layers joined by the contract in `engine/backend.py`:

- `engine/server/`: the wire protocol (sessions, futures with long-poll, per-model `seq_id`
  ordering, protobuf/JSON codecs, auth, REST listings, the checkpoint store under
  `--state-dir`) and `launcher.py`, the one piece other capabilities may import to start and
  stop an engine process. Its public API is `engine.server`'s `__all__`.
- `engine/compute/`: the model work (base models loaded once, one LoRA adapter and AdamW state
  per training client, the SDK's losses, batched sampling with logprobs, PEFT checkpoint I/O).
  Its public API is `engine.compute`'s `__all__` (tests and benchmarks drive it in-process).

Training and evals never import engine internals: they reach it through the `tinker` SDK over
HTTP exactly as they reach Tinker's cloud. This package itself re-exports nothing, so importing
one engine module (`engine.backend`, the launcher) loads neither the other layer nor torch.
"""

__all__: list[str] = []
