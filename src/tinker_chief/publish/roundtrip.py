"""The round-trip check every export passes before it is kept: plain transformers + PEFT, in a
process of its own, must give the serving backend's next-token log-probs, and not the base's.

Canary prompts are the project's first validation conversations (or, without any, `FIXED_PROMPTS`),
rendered with the project's renderer and cut to `MAX_CANARY_TOKENS`. The serving backend scores
them through the SDK (`compute_logprobs` on the version's sampler weights: what its evals sampled
from); `_load_check.py` scores them from the export directory. Two rules:

- match: the largest difference per token, and the mean one, are at most the tolerances for the
  precision the backend computed in: `FP32_TOLERANCE` (both) for a float32 engine,
  `BF16_TOLERANCE` and `BF16_MEAN_TOLERANCE` for bfloat16 (Tinker's cloud is taken to be
  bfloat16). Both sides of a float32 check compute the same float32 math with different kernels
  (SmolLM2-135M: up to 1.6e-5 apart). bfloat16 keeps 8 bits of mantissa: the demo's SmolLM2
  adapter served by a bfloat16 engine was up to 0.36 (mean 0.04) from float32 on its 26-token
  canaries, while the adapter itself moved them by up to 11.5 (mean 2.75); the bfloat16 bounds
  are about three times the noise, far below such an effect.
- effect: the export differs from the base model by more than `MIN_ADAPTER_EFFECT` somewhere
  (both scored in the same float32 process), so an adapter that is not applied (missing, zeroed,
  or ignored by the loader) fails even where bfloat16's tolerance would hide it.

Loading must also raise no PEFT tied-embedding warning and give a tokenizer with a chat template.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict, cast

from tinker_chief.errors import ExportError

if TYPE_CHECKING:
    from tinker_cookbook.renderers import Message, Renderer

    from tinker_chief.connection import Connection
    from tinker_chief.planning import Project

FP32_TOLERANCE = 1e-3
BF16_TOLERANCE = 1.0
BF16_MEAN_TOLERANCE = 0.1
MIN_ADAPTER_EFFECT = 1e-4
MAX_CANARIES = 4
MAX_CANARY_TOKENS = 128
CHECK_TIMEOUT_S = 1800.0
FIXED_PROMPTS = (
    "What is the capital of France?",
    "Write one sentence about the sea.",
    "List three prime numbers.",
    "Explain what a LoRA adapter is in one line.",
)
_CHECKER = Path(__file__).with_name("_load_check.py")


@dataclass(frozen=True)
class Canaries:
    """Token sequences to score, and where they came from."""

    prompts: list[list[int]]
    source: str  # "validation data <file>" or "fixed prompts"


class LoadCheck(TypedDict):
    """What `_load_check.py` prints: log-probs from the export and from the base alone."""

    logprobs: list[list[float]]
    base_logprobs: list[list[float]]
    warnings: list[str]
    chat_template: bool
    chief_imported: bool


@dataclass(frozen=True)
class RoundTrip:
    """A passed check: what it compared and by how much they differed."""

    max_abs_diff: float
    tolerance: float
    mean_abs_diff: float
    mean_tolerance: float
    precision: str
    adapter_effect: float
    canaries: int
    tokens: int
    canary_source: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def tolerance_for(precision: str | None) -> tuple[float, float, str]:
    """(max tolerance, mean tolerance, precision as stated): float32 engines are held to
    `FP32_TOLERANCE`, anything else (bfloat16, Tinker's cloud, an engine that does not say) to
    the bfloat16 bounds."""
    if precision == "float32":
        return FP32_TOLERANCE, FP32_TOLERANCE, "float32"
    stated = precision or "bfloat16 (Tinker's cloud or an engine that did not say)"
    return BF16_TOLERANCE, BF16_MEAN_TOLERANCE, stated


def canary_prompts(project: Project, renderer: Renderer) -> Canaries:
    """The project's first validation conversations rendered as training renders them, else the
    fixed prompts as user turns."""
    from tinker_chief.planning.data_formats import as_conversations, read_records

    val = project.val_path
    conversations = (
        as_conversations(read_records(val))[:MAX_CANARIES] if val and val.is_file() else []
    )
    if conversations:
        # Read and validated as string-content chats: the cookbook's Message shape.
        chats = [cast("list[Message]", list(c.messages)) for c in conversations]
        source = f"the first {len(chats)} validation conversation(s) of {project.config.data.val}"
    else:
        chats = [[{"role": "user", "content": text}] for text in FIXED_PROMPTS]
        source = "fixed prompts (the project has no validation data)"
    prompts = []
    for messages in chats:
        if messages[-1].get("role") == "assistant":
            model_input, _weights = renderer.build_supervised_example(messages)
        else:
            model_input = renderer.build_generation_prompt(messages)
        prompts.append([int(t) for t in model_input.to_ints()][:MAX_CANARY_TOKENS])
    return Canaries([p for p in prompts if len(p) >= 2], source)


def served_logprobs(
    connection: Connection, tinker_path: str, canaries: Canaries
) -> list[list[float]]:
    """The serving backend's log-prob of each canary token after the first."""
    from tinker import types

    try:
        client = connection.sampling_client(model_path=tinker_path)
        futures = [client.compute_logprobs(types.ModelInput.from_ints(p)) for p in canaries.prompts]
        scored = [f.result() for f in futures]
    except Exception as exc:  # the SDK's hierarchy; its message names what the server said
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(
            f"cannot score the canary prompts on {tinker_path} ({connection.where}): {text}"
        ) from None
    # The first position has no log-prob (None); every later one is a float.
    return [[float(v) for v in row[1:] if v is not None] for row in scored]


def check_export(
    directory: Path,
    export_format: str,
    base: str,
    canaries: Canaries,
    served: list[list[float]],
    precision: str | None,
    what: str,
) -> RoundTrip:
    """Load `directory` in a separate process and hold it to the rules above; `base` is what the
    merged check loads as the base model (an adapter names its own). Raises `ExportError`."""
    loaded = _load_in_subprocess(directory, export_format, base, canaries, what)
    tolerance, mean_tolerance, stated = tolerance_for(precision)
    diff = _max_abs_diff(loaded["logprobs"], served)
    mean = _mean_abs_diff(loaded["logprobs"], served)
    effect = _max_abs_diff(loaded["logprobs"], loaded["base_logprobs"])
    tied = [w for w in loaded["warnings"] if "tie_word_embeddings" in w or "tied layer" in w]
    failed = f"round-trip check failed for {what}"
    if tied:
        raise ExportError(f"{failed}: loading it warned about tied embeddings ({tied[0][:160]})")
    if not loaded["chat_template"]:
        raise ExportError(f"{failed}: its tokenizer loads without a chat template")
    if not (diff <= tolerance and mean <= mean_tolerance):
        raise ExportError(
            f"{failed}: plain transformers+PEFT give next-token log-probs up to {diff:.3g} (mean "
            f"{mean:.3g}) away from the serving backend's (tolerance {tolerance:g}, mean "
            f"{mean_tolerance:g} for {stated}) on {len(served)} canary prompt(s)"
        )
    if not effect > MIN_ADAPTER_EFFECT:
        raise ExportError(
            f"{failed}: its log-probs equal the base model's (largest difference {effect:.3g}, "
            f"needs > {MIN_ADAPTER_EFFECT:g}): the adapter is not applied"
        )
    tokens = sum(len(row) for row in served)
    return RoundTrip(
        diff, tolerance, mean, mean_tolerance, stated, effect, len(served), tokens, canaries.source
    )


def _max_abs_diff(left: list[list[float]], right: list[list[float]]) -> float:
    if len(left) != len(right) or any(len(a) != len(b) for a, b in zip(left, right)):
        return float("inf")
    return max(
        (abs(a - b) for row_a, row_b in zip(left, right) for a, b in zip(row_a, row_b)), default=0.0
    )


def _mean_abs_diff(left: list[list[float]], right: list[list[float]]) -> float:
    pairs = [(a, b) for row_a, row_b in zip(left, right) for a, b in zip(row_a, row_b)]
    return sum(abs(a - b) for a, b in pairs) / len(pairs) if pairs else 0.0


def _load_in_subprocess(
    directory: Path, export_format: str, base: str, canaries: Canaries, what: str
) -> LoadCheck:
    request = {
        "dir": str(directory),
        "format": export_format,
        "base": base,
        "prompts": canaries.prompts,
    }
    # Offline: the check loads what is on this machine (a base from the HF cache), never downloads.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as handle:
        json.dump(request, handle)
    try:
        done = subprocess.run(
            [sys.executable, "-I", str(_CHECKER), handle.name],
            capture_output=True,
            text=True,
            env=env,
            timeout=CHECK_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise ExportError(
            f"round-trip check of {what}: loading it took over {CHECK_TIMEOUT_S:.0f} s"
        ) from None
    finally:
        os.unlink(handle.name)
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        last = lines[-1] if lines else f"exit code {done.returncode}"
        raise ExportError(
            f"round-trip check failed for {what}: plain transformers+PEFT cannot load it: {last}"
        )
    try:
        result: LoadCheck = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise ExportError(f"round-trip check of {what}: the loader printed no result") from None
    return result
