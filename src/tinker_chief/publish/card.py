"""The model card of an export: `README.md` by the Hugging Face model card spec, the learning
curve, and `.eval_results/*.yaml` for results on hub benchmark datasets.

Front matter (written by `huggingface_hub.ModelCardData`, so `ModelCard` parses it back):
`base_model` and its relation, `library_name` (`peft` or `transformers`), `pipeline_tag`, `tags`
(tinker-chief, lora, the use case), `license` (chief.toml's), `datasets` (training data named as
hub datasets, `hf://datasets/<org>/<name>`) and `model-index` with every metric of the version's
latest finished eval per suite task: dataset name, type (the hub id for a published benchmark,
`local` for the project's own data, with the task as its config), config, split and the revision
`chief eval` recorded.
`.eval_results/<task>.yaml` (the hub's newer format) holds each benchmark task's headline value.

The body is for a person: what the model was trained to do, the data in numbers (rows, tokens,
content hashes; never the data), base model and LoRA, every hyperparameter with the rule that
chose it (plan.json), the learning curve, the full eval table beside the base model's numbers,
the gate's verdict and status history, cost, lineage (with the version's run in an experiment
tracker, `--track`), the round-trip check, and how to load it.
Every stored string reaches the Markdown through the registry's escapers.
"""

from __future__ import annotations

import base64
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tinker_chief.publish.layout import BaseModel
from tinker_chief.publish.roundtrip import RoundTrip
from tinker_chief.registry import (
    AuditEntry,
    EvalRun,
    LoraSpec,
    ModelRecord,
    Registry,
    StatusChange,
)
from tinker_chief.registry import markdown_code as code
from tinker_chief.registry import markdown_text as text
from tinker_chief.tracking.contract import RunLink, stored_links

if TYPE_CHECKING:
    from huggingface_hub import EvalResult, ModelCardData

    from tinker_chief.planning import Project

CURVE_FILE = "learning_curve.png"
EVAL_RESULTS_DIR = ".eval_results"
HUB_DATASET_PREFIX = "hf://datasets/"
OLLAMA_ARCHITECTURES = ("llama", "mistral", "gemma", "gemma2", "gemma3")  # Ollama's ADAPTER support
RECIPES = {
    "sl": "supervised fine-tuning on chat conversations",
    "rl": "reinforcement learning with a verifiable reward",
    "dpo": "direct preference optimization",
    "distill": "prompt distillation from a teacher prompt",
}


@dataclass
class CardFacts:
    """Everything the card says, gathered from the registry, the project and the export."""

    record: ModelRecord
    base: BaseModel
    export_format: str  # "adapter" | "merged"
    roundtrip: RoundTrip
    digests: dict[str, str]
    project_name: str
    use_case: str
    license: str | None
    results: dict[str, EvalRun]
    base_results: dict[str, EvalRun]
    base_ref: str | None
    history: list[StatusChange]
    promotions: list[AuditEntry]  # "promote" / "promote-rejected" rows for this version
    cost: str
    plan: dict[str, Any]  # plan.json, as read
    curve_png: bytes | None
    repo: str | None = None


def gather(
    project: Project,
    registry: Registry,
    record: ModelRecord,
    base: BaseModel,
    export_format: str,
    roundtrip: RoundTrip,
    digests: dict[str, str],
    repo: str | None = None,
) -> CardFacts:
    """The card's facts for `record` of `project`."""
    from tinker_chief.files import read_json_object
    from tinker_chief.planning.estimates import spent

    config = project.config
    base_record = _base_record(registry, record)
    audit = [
        e
        for e in registry.audit_log()
        if e.target == record.ref and e.command.startswith("promote")
    ]
    prices = project.path(config.estimates.prices_file) if config.estimates.prices_file else None
    plan_path = project.root / "plan.json"
    return CardFacts(
        record=record,
        base=base,
        export_format=export_format,
        roundtrip=roundtrip,
        digests=digests,
        project_name=config.name,
        use_case=config.use_case,
        license=config.license,
        results=registry.latest_results(record.ref),
        base_results=registry.latest_results(base_record.ref) if base_record else {},
        base_ref=base_record.ref if base_record else None,
        history=registry.status_history(record.ref),
        promotions=audit,
        cost=spent(record.base_model, record.backend, record.usage, prices),
        plan=read_json_object(plan_path) if plan_path.is_file() else {},
        curve_png=_learning_curve(project.root, record.training_run_id),
        repo=repo,
    )


def write_card(out: Path, facts: CardFacts) -> None:
    """README.md, the learning curve and `.eval_results/` into the export directory `out`."""
    if facts.curve_png:
        (out / CURVE_FILE).write_bytes(facts.curve_png)
    for name, content in eval_result_files(facts).items():
        (out / EVAL_RESULTS_DIR).mkdir(exist_ok=True)
        (out / EVAL_RESULTS_DIR / name).write_text(content, encoding="utf-8")
    (out / "README.md").write_text(render(facts), encoding="utf-8")


def render(facts: CardFacts) -> str:
    from huggingface_hub import ModelCard

    return str(ModelCard(f"---\n{card_data(facts).to_yaml()}\n---\n\n{_body(facts)}"))


def card_data(facts: CardFacts) -> ModelCardData:
    """The card's `ModelCardData` (front matter)."""
    from huggingface_hub import ModelCardData

    record = facts.record
    adapter = facts.export_format == "adapter"
    datasets = sorted({_hub_dataset(f.path) for f in record.data.files} - {""})
    results = _eval_results(facts)
    return ModelCardData(
        base_model=facts.base.card_id,
        base_model_relation="adapter" if adapter else "finetune",
        library_name="peft" if adapter else "transformers",
        pipeline_tag="text-generation",
        tags=["tinker-chief", "lora", facts.use_case],
        license=facts.license,
        datasets=datasets or None,
        model_name=_model_name(facts) if results else None,
        eval_results=results or None,
    )


def _hub_dataset(path: str) -> str:
    """`org/name` of a training file named `hf://datasets/org/name/...`, else ""."""
    if not path.startswith(HUB_DATASET_PREFIX):
        return ""
    parts = path.removeprefix(HUB_DATASET_PREFIX).split("/")
    return "/".join(parts[:2]) if len(parts) >= 2 and all(parts[:2]) else ""


def _model_name(facts: CardFacts) -> str:
    return (
        facts.repo.split("/")[-1] if facts.repo else f"{facts.record.name}-v{facts.record.version}"
    )


def _dataset_of(run: EvalRun) -> dict[str, Any] | None:
    """The hub split a published benchmark run read, as `chief eval` recorded it."""
    splits = run.settings.get("dataset")
    first = (
        splits[0] if isinstance(splits, list) and splits and isinstance(splits[0], dict) else None
    )
    return first if first and first.get("path") else None


def _eval_results(facts: CardFacts) -> list[EvalResult]:
    from huggingface_hub import EvalResult

    results = []
    for task, run in facts.results.items():
        hub = _dataset_of(run)
        for name, metric in run.metrics.items():
            if not math.isfinite(metric.value):
                continue
            results.append(
                EvalResult(
                    task_type="text-generation",
                    task_name=task,
                    dataset_type=str(hub["path"]) if hub else "local",
                    dataset_name=str(run.settings.get("inspect_task") or task),
                    # The project's own data: the task names the part of it (model-index groups
                    # results by type, config, split and revision, so tasks would merge without it).
                    dataset_config=(hub.get("name") or hub.get("data_dir")) if hub else task,
                    dataset_split=hub.get("split") if hub else None,
                    dataset_revision=hub.get("revision") if hub else None,
                    metric_type=name,
                    metric_name=name,
                    metric_value=float(metric.value),
                    metric_config=f"suite {run.suite_name} version {run.suite_version}",
                )
            )
    return results


def eval_result_files(facts: CardFacts) -> dict[str, str]:
    """`.eval_results/<task>.yaml` per published-benchmark task: its headline value on the hub
    dataset and revision it was read from."""
    import yaml

    files = {}
    for task, run in facts.results.items():
        hub = _dataset_of(run)
        metric = run.metrics.get(run.headline_metric or "")
        if hub is None or metric is None or not math.isfinite(metric.value):
            continue
        inspect_task = str(run.settings.get("inspect_task") or task)
        dataset = {"id": str(hub["path"]), "task_id": inspect_task.rsplit("/", 1)[-1]}
        if hub.get("revision"):
            dataset["revision"] = str(hub["revision"])
        ci = (
            "" if metric.ci_low is None else f", 95% CI [{metric.ci_low:.4g}, {metric.ci_high:.4g}]"
        )
        entry = {
            "dataset": dataset,
            "value": float(metric.value),
            "date": run.finished_at or run.started_at,
            "notes": f"{metric.name} (n={metric.n}{ci}), {inspect_task}, by tinker-chief",
        }
        files[f"{task}.yaml"] = yaml.safe_dump([entry], sort_keys=False)
    return files


# ------------------------------------------------------------------------------------- body


def _body(facts: CardFacts) -> str:
    sections = [
        f"# {text(_model_name(facts))}",
        "",
        _purpose(facts),
        "",
        *_data_section(facts),
        *_training_section(facts),
        *_evals_section(facts),
        *_gate_section(facts),
        "## Cost",
        "",
        f"To make: {text(facts.cost)}.",
        "",
        *_lineage_section(facts),
        *_verification_section(facts),
        *_usage_section(facts),
    ]
    return "\n".join(sections).rstrip() + "\n"


def _purpose(facts: CardFacts) -> str:
    r = facts.record
    what = (
        "A LoRA adapter"
        if facts.export_format == "adapter"
        else "A LoRA fine-tune merged into its base model"
    )
    recipe = RECIPES.get(r.recipe, r.recipe)
    origin = (
        f" (chief's `{facts.base.name}`, made from {text(facts.base.card_id)})"
        if facts.base.card_id != facts.base.hub_id
        else ""
    )
    return (
        f"{what} of {code(facts.base.hub_id or facts.base.name)}{origin}, trained by "
        "[tinker-chief](https://pypi.org/project/tinker-chief/) through the Tinker API "
        f"({text(recipe)}) "
        f"for the {code(facts.use_case)} use case of project {code(facts.project_name)}: version "
        f"{code(r.ref)}, status **{text(r.status)}** in the project's registry."
    )


def _data_section(facts: CardFacts) -> list[str]:
    data = facts.record.data
    planned = _recommendation(facts.plan, "data")  # plan.json's counts where the registry has none
    tokens = data.tokens if data.tokens is not None else planned.get("total_tokens")
    completion = data.completion_tokens
    completion = completion if completion is not None else planned.get("completion_tokens")
    lines = ["## Training data", "", "Summarized; the data itself is not published.", ""]
    lines += [
        f"- rows: {text(data.examples)}; tokens: {text(tokens)}; "
        f"trained (completion) tokens: {text(completion)}"
    ]
    lines += [f"- {code(f.path)}: sha256 {code(f.sha256)}" for f in data.files]
    return lines + [""]


def _recommendation(plan: dict[str, Any], *keys: str) -> dict[str, Any]:
    """plan.json's table at `keys` ({} when absent)."""
    node: Any = plan
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else {}


def _training_section(facts: CardFacts) -> list[str]:
    r, plan = facts.record, facts.plan
    lora, optimizer = r.lora, r.optimizer
    rows = [
        (
            "LoRA rank",
            lora.rank if lora else None,
            _recommendation(plan, "capacity", "recommended_rank"),
        ),
        ("LoRA placement", _placement(lora), _recommendation(plan, "placement")),
        (
            "learning rate",
            optimizer.get("lr"),
            _recommendation(plan, "learning_rate", "recommended"),
        ),
        (
            "batch size",
            optimizer.get("batch_size"),
            _recommendation(plan, "schedule", "batch_size"),
        ),
        (
            "epochs",
            r.config.get("schedule", {}).get("epochs"),
            _recommendation(plan, "schedule", "epochs"),
        ),
        (
            "warmup steps",
            optimizer.get("warmup_steps"),
            _recommendation(plan, "schedule", "recommended_warmup"),
        ),
        ("LR schedule", optimizer.get("schedule"), {}),
    ]
    lines = ["## Base model, LoRA and hyperparameters", ""]
    lines += [
        f"Base model: {code(facts.base.hub_id or facts.base.name)}; recipe {code(r.recipe)}.",
        "",
    ]
    lines += ["| setting | used | doctrine's value | rule that chose it |", "|---|---|---|---|"]
    for name, used, advice in rows:
        value = advice.get("value")
        lines.append(
            f"| {name} | {text(used)} | {text(value)} | {text(advice.get('rule') or '—')} |"
        )
    lines += [
        "",
        "Rules from the project's `plan.json` (LoRA Without Regret, the Tinker cookbook).",
        "",
    ]
    if facts.curve_png:
        lines += ["### Learning curve", "", f"![learning curve]({CURVE_FILE})", ""]
    return lines


def _placement(lora: LoraSpec | None) -> str | None:
    if lora is None:
        return None
    parts = [
        name
        for name, on in (
            ("mlp", lora.train_mlp),
            ("attn", lora.train_attn),
            ("unembed", lora.train_unembed),
        )
        if on
    ]
    return "+".join(parts)


def _evals_section(facts: CardFacts) -> list[str]:
    lines = ["## Evaluation", ""]
    if not facts.results:
        return lines + ["No finished evals are recorded for this version.", ""]
    base = f" ({code(facts.base_ref)})" if facts.base_ref else ""
    lines += [
        f"The version's latest finished eval per suite task, the base model's{base} beside it.",
        "",
        "| task | metric | value | 95% CI | n | base model | suite version |",
        "|---|---|---|---|---|---|---|",
    ]
    for task, run in facts.results.items():
        base_run = facts.base_results.get(task)
        for name, metric in run.metrics.items():
            ci = "—" if metric.ci_low is None else f"[{metric.ci_low:.4g}, {metric.ci_high:.4g}]"
            base_metric = base_run.metrics.get(name) if base_run else None
            cells = [text(task), text(name), text(metric.value), ci, text(metric.n)]
            cells += [text(base_metric.value if base_metric else None), code(run.suite_version)]
            lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for task, run in facts.results.items():
        hub = _dataset_of(run)
        if hub:
            revision = str(hub.get("revision") or "unpinned")
            lines.append(
                f"- {code(task)}: {text(run.settings.get('inspect_task'))} on {code(hub['path'])} "
                f"{text(hub.get('name') or 'default')}/{text(hub.get('split'))} "
                f"at revision {code(revision)}"
            )
    return lines + [""]


def _gate_section(facts: CardFacts) -> list[str]:
    lines = ["## Promotion gate and status history", ""]
    for entry in facts.promotions:
        d = entry.details
        if entry.command == "promote":
            forced = f"; forced: {text(d.get('reason'))}" if d.get("forced") else ""
            lines.append(
                f"- {text(entry.at)}: the gate passed it to {text(d.get('to'))} on suite version "
                f"{text(d.get('suite_version'))}{forced}"
            )
        else:
            listed = d.get("reasons")  # the gate's list; a hand-edited row may hold anything
            reasons = "; ".join(map(str, listed)) if isinstance(listed, list) else str(listed or "")
            lines.append(
                f"- {text(entry.at)}: the gate refused it for {text(d.get('to'))}: {text(reasons)}"
            )
    if not facts.promotions:
        lines.append("- never put to the gate")
    lines += ["", "| at | from | to | by | reason |", "|---|---|---|---|---|"]
    for h in facts.history:
        forced = " (forced)" if h.forced else ""
        lines.append(
            f"| {text(h.at)} | {text(h.from_status)} | {text(h.to_status)}{forced} "
            f"| {text(h.actor)} | {text(h.reason)} |"
        )
    return lines + [""]


def _lineage_section(facts: CardFacts) -> list[str]:
    r = facts.record
    raw_sweep = r.config.get("sweep")
    sweep: dict[str, Any] = raw_sweep if isinstance(raw_sweep, dict) else {}
    lines = ["## Lineage", ""]
    lines += [
        f"- training run {code(r.training_run_id or '—')}, step {text(r.training_step)}",
        f"- config hash {code(r.config_hash or '—')}",
        f"- parent {code(r.parent_ref) if r.parent_ref else '—'}",
        f"- sweep {code(sweep.get('id'))}, point {code(sweep.get('point'))}"
        if sweep
        else "- sweep: none",
        f"- checkpoint {code(r.tinker_path or '—')} on the {text(r.backend)} backend",
    ]
    trackers = stored_links(r.config).values()
    lines += [f"- experiment tracker: {_tracker_run(link)}" for link in trackers]
    return lines + [""]


# A web page of a tracker run that Markdown links as it is (no space, quote, bracket or paren).
_PLAIN_URL = re.compile(r"https?://[A-Za-z0-9\-._~:/?#@!$&*+,;=%]+")


def _tracker_run(link: RunLink) -> str:
    """The version's tracker run: linked when the tracker serves it on the web; a local store's
    path is this machine's, so a published card names only the run and its project."""
    run = f"{text(link.backend)} run {code(link.name)} ({code(link.run_id)})"
    if link.web_url and _PLAIN_URL.fullmatch(link.web_url):
        return f"[{run}]({link.web_url})"
    return run + (f" in {link.container} {code(link.project)}" if link.project else "")


def _verification_section(facts: CardFacts) -> list[str]:
    rt = facts.roundtrip
    lines = ["## Round-trip check", ""]
    lines.append(
        f"Loaded with plain transformers{' + PEFT' if facts.export_format == 'adapter' else ''} "
        "in a separate process, this export reproduces the serving backend's next-token "
        f"log-probs on {rt.canaries} canary "
        f"prompt(s) ({rt.tokens} tokens; {text(rt.canary_source)}) within {rt.max_abs_diff:.3g} "
        f"per token, {rt.mean_abs_diff:.3g} on average (tolerances {rt.tolerance:g} and "
        f"{rt.mean_tolerance:g} for {text(rt.precision)}), and differs from the base model by up "
        f"to {rt.adapter_effect:.3g}."
    )
    lines += [""] + [
        f"- {code(name)}: sha256 {code(digest)}" for name, digest in facts.digests.items()
    ]
    return lines + [""]


def _usage_section(facts: CardFacts) -> list[str]:
    where = facts.repo or "path/to/this/directory"
    base = facts.base.hub_id or facts.base.name
    lines = ["## How to load it", ""]
    if facts.export_format == "merged":
        lines += [
            "```python",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            f'model = AutoModelForCausalLM.from_pretrained("{where}")',
            f'tokenizer = AutoTokenizer.from_pretrained("{where}")',
            "```",
            "",
            f"vLLM: `vllm serve {where}`.",
            "",
        ]
    else:
        lines += [
            "```python",
            "from peft import PeftModel",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            f'base = AutoModelForCausalLM.from_pretrained("{base}")',
            f'model = PeftModel.from_pretrained(base, "{where}")',
            f'tokenizer = AutoTokenizer.from_pretrained("{where}")',
            "```",
            "",
            f"vLLM: `vllm serve {base} --enable-lora --lora-modules {facts.record.name}={where}`"
            + (
                " (vLLM takes no LoRA on the output embedding: this one trains it, so serve an "
                "export made "
                "with `chief export --merged`)."
                if facts.record.lora and facts.record.lora.train_unembed
                else "."
            ),
            "",
        ]
        if facts.base.model_type in OLLAMA_ARCHITECTURES:
            lines += ["Ollama (`Modelfile`):", "", "```", f"FROM {base}", "ADAPTER .", "```", ""]
    if facts.base.card_id != facts.base.hub_id and facts.base.hub_id:
        lines += [
            f"`{base}` is chief's copy of {facts.base.card_id} (its weights as chief trained on "
            "them); `pip install tinker-chief && chief models` puts it in the local Hugging Face "
            "cache under that id.",
            "",
        ]
    return lines


# ------------------------------------------------------------------------------------ inputs


def _base_record(registry: Registry, record: ModelRecord) -> ModelRecord | None:
    """The registry's record of the version's base model (the one `chief eval BASE` made), the
    newest that has results."""
    bases = [
        m
        for m in registry.list_models()
        if m.recipe == "base" and m.base_model == record.base_model
    ]
    with_results = [m for m in bases if registry.latest_results(m.ref)]
    chosen = with_results or bases
    return chosen[-1] if chosen else None


def _learning_curve(project_dir: Path, run_id: str | None) -> bytes | None:
    """The training run's curves as PNG bytes (the report's chart), None without a run log."""
    if not run_id:
        return None
    from tinker_chief.reports import collect
    from tinker_chief.reports.charts import learning_curves

    runs = [run for run in collect(project_dir).runs if run.run_id == run_id]
    png = learning_curves(runs) if runs else None
    return base64.b64decode(png) if png else None
