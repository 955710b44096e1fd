"""Chat renderers for the catalog's models, via `tinker_cookbook.renderers`.

The cookbook (0.5.8) has no renderer named for plain ChatML, which SmolLM2 and
tiny-random-llama use. Its `Qwen3InstructRenderer` emits exactly ChatML
(`<|im_start|>role\\ncontent<|im_end|>\\n`, no thinking block) and knows the assistant/EOS
boundaries the cookbook's supervised and RL code depend on, so we register it under the name
`chatml` rather than writing a renderer of our own.

`RendererChoice` is the one rule for which renderer a sampler of a model uses: a project's
`renderer` (chief.toml) for the base model it trains, so its evals, inline evals, judge and
playground see the chat format training taught (a Qwen3 project trained with
`qwen3_disable_thinking` is evaluated without a thinking block too), and each other model's own.

`conversation_datum` renders a chat into the `tinker.Datum` the SDK trains or scores: the one
place both training (SFT, DPO, validation NLL) and evals (held-out NLL) do it, since evals may
not import training and both may import models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, cast

from tinker_chief.errors import ConfigurationError

if TYPE_CHECKING:
    import tinker
    from tinker_cookbook.image_processing_utils import ImageProcessor
    from tinker_cookbook.renderers import Message, Renderer
    from tinker_cookbook.tokenizer_utils import Tokenizer

CHATML = "chatml"
_registered = False


def _ensure_registered() -> None:
    global _registered
    if _registered:
        return
    from tinker_cookbook import renderers
    from tinker_cookbook.renderers.qwen3 import Qwen3InstructRenderer

    def chatml(
        tokenizer: Tokenizer, image_processor: ImageProcessor | None = None
    ) -> Qwen3InstructRenderer:
        return Qwen3InstructRenderer(tokenizer)

    if not renderers.is_renderer_registered(CHATML):
        renderers.register_renderer(CHATML, chatml)
    _registered = True


def renderer_name_for(model_name: str, *, trust_remote_code: bool = False) -> str:
    """The cookbook renderer name for a model: ChatML for our catalog and for a local model with a
    ChatML template, else the cookbook's guess; a hub model the cookbook does not know gets ChatML
    when its fetched chat template is ChatML (else a ConfigurationError). `trust_remote_code`
    lets a fetch take a model whose tokenizer is its own code (no code runs here)."""
    from tinker_chief.models.catalog import model_files, resolve_model
    from tinker_chief.models.hf_files import chat_template

    try:
        spec = resolve_model(model_name)
    except Exception:
        spec = None
    if spec is not None and spec.source in ("gguf", "tiny"):
        return spec.renderer
    if spec is not None and spec.local_dir is not None:
        template = chat_template(spec.local_dir)
        if template and "<|im_start|>" in template:
            return CHATML
    from tinker_cookbook import model_info

    try:
        return model_info.get_recommended_renderer_name(model_name)
    except (KeyError, ValueError):  # the cookbook's ConfigurationError is a ValueError
        if spec is None or spec.source != "cloud":
            raise
    fetched_or_cached = model_files(spec.name, trust_remote_code=trust_remote_code)
    template = chat_template(fetched_or_cached)
    if template and "<|im_start|>" in template:
        return CHATML
    raise ConfigurationError(
        f"no chat renderer for {spec.name}: the cookbook does not list it and its chat template "
        "is not ChatML (chief's `chatml` renderer); `chief models` lists the models it knows"
    )


@dataclass(frozen=True)
class RendererChoice:
    """`renderer` for samplers of `base_model` (every model when None); other models render with
    their own (`renderer_name_for`)."""

    renderer: str
    base_model: str | None = None

    def name_for(self, base_model: str) -> str:
        if self.base_model is None or self.base_model == base_model:
            return self.renderer
        return renderer_name_for(base_model)

    def is_models_own(self) -> bool:
        """True when this changes nothing: the renderer is its base model's own."""
        return self.base_model is not None and self.renderer == renderer_name_for(self.base_model)


def chosen_renderer_name(base_model: str, choice: RendererChoice | None) -> str:
    """The renderer a sampler of `base_model` uses under `choice` (None: the model's own)."""
    return choice.name_for(base_model) if choice is not None else renderer_name_for(base_model)


def get_renderer(renderer_name: str, tokenizer: Tokenizer) -> Renderer:
    """A cookbook `Renderer` by name (our `chatml` included); a name the cookbook does not know
    (a typo in chief.toml's `renderer`) is a `ConfigurationError`, not the cookbook's
    traceback."""
    _ensure_registered()
    from tinker_cookbook import renderers
    from tinker_cookbook.exceptions import RendererError

    try:
        return renderers.get_renderer(renderer_name, tokenizer)
    except RendererError as exc:
        if not str(exc).startswith("Unknown renderer"):
            raise ConfigurationError(f"renderer {renderer_name!r}: {exc}") from None
        raise ConfigurationError(
            f"renderer {renderer_name!r} is not one of tinker-cookbook's renderers nor chief's "
            f"`{CHATML}` (e.g. qwen3, qwen3_disable_thinking, llama3, role_colon; chief.toml's "
            "`renderer`, `chief models` lists each model's own)"
        ) from None


def cookbook_messages(messages: Sequence[Mapping[str, object]]) -> list[Message]:
    """Chat messages as the cookbook's `Message`s, for its renderers (each a copy)."""
    # Callers pass validated {"role", "content"[, "trainable"]} messages: the `Message` shape.
    return cast("list[Message]", [dict(m) for m in messages])


def conversation_datum(
    messages: Sequence[Mapping[str, object]],
    renderer: Renderer,
    max_length: int | None,
    train_on_what: str,
    reduction: Literal["none", "mean"],
) -> tinker.Datum:
    """A chat as a `tinker.Datum` by the cookbook's `conversation_to_datum`: weights on the
    tokens `train_on_what` names (a `TrainOnWhat` value), cut at `max_length` tokens, summed per
    token (`reduction="none"`) or averaged per example (`"mean"`)."""
    from tinker_cookbook.renderers import TrainOnWhat
    from tinker_cookbook.supervised.data import conversation_to_datum

    trained = TrainOnWhat(train_on_what)
    chat = cookbook_messages(messages)
    return conversation_to_datum(chat, renderer, max_length, trained, reduction=reduction)
