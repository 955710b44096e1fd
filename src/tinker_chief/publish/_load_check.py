"""Load an exported model the way its users will, and score canary prompts: no chief code here.

Run by `publish.roundtrip` as `python -I _load_check.py REQUEST.json` in a process of its own:
`-I` leaves the worktree, PYTHONPATH and user site-packages off `sys.path`, and this file imports
only the standard library, torch, transformers and peft. It loads the export with plain
transformers (+ PEFT for an adapter directory: `PeftModel.from_pretrained(AutoModelForCausalLM.
from_pretrained(<the adapter config's base_model_name_or_path>), DIR)`), in float32, and prints
one JSON object: per canary prompt the log-prob of each token given the ones before it, the same
for the base model alone, the warnings loading raised, and whether the tokenizer with its chat
template loaded from the export. Nothing of it is checked here: the caller judges.
"""

from __future__ import annotations

import gc
import json
import sys
import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def _logprobs(model: torch.nn.Module, prompts: list[list[int]]) -> list[list[float]]:
    import torch

    out = []
    with torch.no_grad():
        for tokens in prompts:
            ids = torch.tensor([tokens])
            logits = model(input_ids=ids).logits[0].float()
            picked = torch.log_softmax(logits[:-1], dim=-1).gather(1, ids[0, 1:, None])[:, 0]
            out.append([float(v) for v in picked])
    return out


def main(request_path: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with open(request_path, encoding="utf-8") as handle:
        request = json.load(handle)
    directory, prompts = request["dir"], request["prompts"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if request["format"] == "adapter":
            from peft import PeftModel

            with open(f"{directory}/adapter_config.json", encoding="utf-8") as handle:
                base_id = json.load(handle)["base_model_name_or_path"]
            base = AutoModelForCausalLM.from_pretrained(base_id, dtype=torch.float32)
            model = PeftModel.from_pretrained(base, directory).eval()
            scores = _logprobs(model, prompts)
            with model.disable_adapter():
                base_scores = _logprobs(model, prompts)
        else:
            model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
            scores = _logprobs(model, prompts)
            del model
            base = AutoModelForCausalLM.from_pretrained(request["base"], dtype=torch.float32).eval()
            base_scores = _logprobs(base, prompts)
        tokenizer = AutoTokenizer.from_pretrained(directory)
    messages = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
    result = {
        "logprobs": scores,
        "base_logprobs": base_scores,
        "warnings": messages,
        "chat_template": bool(getattr(tokenizer, "chat_template", None)),
        "chief_imported": any(name.split(".")[0] == "tinker_chief" for name in sys.modules),
    }
    sys.stdout.write(json.dumps(result) + "\n")
    # The interpreter's last full collection walks every object torch and transformers made
    # (about a second); this process ends here, so nothing needs collecting.
    gc.freeze()


if __name__ == "__main__":
    main(sys.argv[1])
