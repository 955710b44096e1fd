"""Benchmark: completion-token counting for `chief plan` vs a raw batched tokenizer call.

Writes a synthetic JSONL of N conversations (default 100,000), reads it with
`tinker_chief.planning.data_formats`, then in the same run times
  - baseline: one batched `tokenizer(texts)` over each conversation's full ChatML text
    (what counting with the bare fast tokenizer costs; it cannot tell trained tokens apart),
  - chief: `planning.tokens.count_tokens` (batched ChatML counter: total + trained tokens),
  - reference: the cookbook renderer (`build_supervised_example`) on a subsample, extrapolated,
and prints tokens/s and the ratio chief / baseline (target >= 0.8).

    python bench/plan_tokens.py [--n 100000] [--model SmolLM2-135M-Instruct-Q4_1]
                                [--renderer-sample 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TINKER_TELEMETRY", "0")

WORDS = (
    "the model answers questions about rivers mountains code tests python loops arrays numbers "
    "seven secret copy stone cloud tiger paper please explain why how what when list sort"
).split()


def synthetic_rows(n: int, seed: int = 0):
    rng = random.Random(seed)
    for _ in range(n):
        messages = (
            [{"role": "system", "content": "You are a helpful assistant."}]
            if rng.random() < 0.3
            else []
        )
        for _turn in range(rng.choice((1, 1, 2))):
            messages.append(
                {"role": "user", "content": " ".join(rng.choices(WORDS, k=rng.randint(5, 30)))}
            )
            messages.append(
                {"role": "assistant", "content": " ".join(rng.choices(WORDS, k=rng.randint(5, 60)))}
            )
        yield {"messages": messages}


def chatml_text(messages) -> str:
    return "\n".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>" for m in messages)


def best_of(repeats: int, fn):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--model", default="SmolLM2-135M-Instruct-Q4_1")
    parser.add_argument("--train-on-what", default="all_assistant_messages")
    parser.add_argument("--renderer-sample", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    from tinker_chief.models import get_renderer, load_tokenizer, renderer_name_for
    from tinker_chief.planning.data_formats import read_sft_conversations
    from tinker_chief.planning.tokens import count_tokens

    tokenizer = load_tokenizer(args.model)
    renderer = get_renderer(renderer_name_for(args.model), tokenizer)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "synthetic.jsonl"
        with path.open("w") as handle:
            for row in synthetic_rows(args.n):
                handle.write(json.dumps(row) + "\n")
        read_s, conversations = best_of(1, lambda: read_sft_conversations(path))

    texts = [chatml_text(c.messages) for c in conversations]
    raw_s, raw = best_of(
        args.repeats,
        lambda: tokenizer(texts, add_special_tokens=False, return_attention_mask=False)[
            "input_ids"
        ],
    )
    raw_tokens = sum(len(ids) for ids in raw)
    chief_s, counts = best_of(
        args.repeats, lambda: count_tokens(conversations, renderer, args.train_on_what, 4096)
    )
    chief_tokens = sum(counts.total)
    sample = conversations[: args.renderer_sample]
    ref_s, ref = best_of(
        1, lambda: count_tokens(sample, renderer, args.train_on_what, 4096, method="renderer")
    )
    ref_tokens = sum(ref.total)
    assert (
        ref.total == counts.total[: len(sample)]
        and ref.completion == counts.completion[: len(sample)]
    ), "batched counter disagrees with the renderer"

    raw_tps, chief_tps, ref_tps = raw_tokens / raw_s, chief_tokens / chief_s, ref_tokens / ref_s
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus; "
        f"model {args.model}; "
        f"{args.n:,} conversations ({chief_tokens:,} tokens, {sum(counts.completion):,} trained); "
        f"read+validate {read_s:.2f} s"
    )
    print(f"baseline raw tokenizer(texts): {raw_s:7.2f} s  {raw_tps:12,.0f} tok/s")
    print(
        f"chief count_tokens (batched):  {chief_s:7.2f} s  {chief_tps:12,.0f} tok/s  "
        f"ratio {chief_tps / raw_tps:.2f}"
    )
    print(
        f"cookbook renderer ({len(sample):,} sample): {ref_s:7.2f} s  {ref_tps:12,.0f} tok/s  "
        f"ratio {ref_tps / raw_tps:.3f}"
    )


if __name__ == "__main__":
    main()
