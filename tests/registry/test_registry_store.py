"""The store: versions, refs, lineage, eval runs, bad input, and opening bad files safely."""

from __future__ import annotations

import sqlite3

import pytest

from tinker_chief.errors import ModelNotFoundError, RegistryError
from tinker_chief.registry import LoraSpec, MetricValue, Registry, SampleOutcome
from tinker_chief.registry._migrations import MIGRATIONS

from registry_helpers import SUITE, record_suite


def test_versions_refs_and_lineage(reg):
    base = reg.register_model(
        "bot",
        base_model="SmolLM2",
        recipe="base",
        tinker_path="tinker://run-1/sampler_weights/base",
    )
    tuned = reg.register_model(
        "bot",
        base_model="SmolLM2",
        recipe="sl",
        parent=base.ref,
        lora=LoraSpec(rank=16, train_unembed=True),
        optimizer={"name": "adamw", "lr": 2e-4, "schedule": "linear"},
        training_run_id="run-2",
        training_step=40,
        data={
            "files": [{"path": "train.jsonl", "sha256": "a" * 64, "examples": 10}],
            "examples": 10,
            "tokens": 1200,
            "completion_tokens": 400,
        },
    )
    assert (base.ref, tuned.ref) == ("bot:v1", "bot:v2")
    assert reg.get_model("bot").ref == "bot:v2"  # bare name = latest version
    assert reg.get_model("bot:v1").id == base.id
    assert reg.get_model("tinker://run-1/sampler_weights/base").ref == "bot:v1"
    got = reg.get_model("bot:v2")
    assert got.parent_ref == "bot:v1" and got.lora == LoraSpec(16, True, True, True)
    assert got.data.completion_tokens == 400 and got.data.files[0].sha256 == "a" * 64
    assert got.optimizer["lr"] == 2e-4 and got.training_step == 40 and got.status == "candidate"
    assert [m.ref for m in reg.list_models()] == ["bot:v1", "bot:v2"]
    assert [h.to_status for h in reg.status_history("bot:v2")] == ["candidate"]
    assert [e.command for e in reg.audit_log()] == ["register", "register"]


def test_unknown_refs_and_bad_fields_are_clear_errors(reg):
    reg.register_model("bot", base_model="b")
    with pytest.raises(ModelNotFoundError, match=r"no model `bot:v9`.*registered: bot:v1"):
        reg.get_model("bot:v9")
    with pytest.raises(
        RegistryError, match=r"`recipe` is 'ppo'; expected one of sl, rl, dpo, distill, base"
    ):
        reg.register_model("bot", base_model="b", recipe="ppo")
    with pytest.raises(RegistryError, match=r"`name` is 'has space'"):
        reg.register_model("has space", base_model="b")
    with pytest.raises(RegistryError, match="tinker_path"):
        reg.register_model("bot", base_model="b", tinker_path="/tmp/x")
    with pytest.raises(ModelNotFoundError):
        reg.register_model("bot", base_model="b", parent="ghost")
    assert [m.ref for m in reg.list_models()] == ["bot:v1"]  # nothing half-written by the failures


def test_eval_runs_start_finish_and_latest_results(reg):
    m = reg.register_model("bot", base_model="b")
    run_id = reg.start_eval_run(
        m.ref,
        suite_name="chat",
        suite_version="v1",
        task="qa",
        settings={"temperature": 0.0},
        headline_metric="accuracy",
    )
    assert reg.latest_results(m.ref) == {}  # running runs are not results
    run = reg.finish_eval_run(
        run_id,
        metrics=[MetricValue("accuracy", 0.5, 0.3, 0.7, 4)],
        samples=[SampleOutcome("a", 1.0, True), SampleOutcome("b", 0.0, False)],
        log_location="logs/qa.eval",
    )
    assert run.status == "finished" and run.metrics["accuracy"].ci_high == 0.7
    assert run.log_location == "logs/qa.eval" and run.settings == {"temperature": 0.0}
    with pytest.raises(RegistryError, match="already finished"):
        reg.finish_eval_run(run_id)
    assert [s.sample_id for s in reg.samples(run_id)] == ["a", "b"]
    record_suite(reg, m.ref, [True, True, False, True], version="v2")
    assert set(reg.latest_results(m.ref)) == {"qa", "safety"}
    assert reg.latest_results(m.ref)["qa"].suite_version == "v2"  # latest wins
    assert reg.latest_results(m.ref, suite_version="v1")["qa"].id == run_id
    failed = reg.record_eval(
        m.ref,
        suite_name="chat",
        suite_version="v2",
        task="qa",
        metrics=[],
        status="failed",
        error="engine died",
    )
    assert reg.latest_results(m.ref)["qa"].id != failed.id  # failed runs never count


@pytest.mark.parametrize(
    ("metrics", "samples", "message"),
    [
        (
            [MetricValue("accuracy", float("nan"))],
            [],
            r"metric `accuracy`: value is nan; expected a finite number",
        ),
        ([MetricValue("a", 1.0), MetricValue("a", 0.5)], [], "unique within a run"),
        ([MetricValue("a", 0.5, 0.6, 0.4)], [], "with ci_low <= ci_high"),
        (
            [],
            [SampleOutcome("x", 1.0, True), SampleOutcome("x", 0.0, False)],
            "duplicate sample id 'x'",
        ),
        ([], [SampleOutcome("x", float("inf"))], "score is inf"),
    ],
)
def test_bad_eval_outcomes_are_refused_before_writing(reg, metrics, samples, message):
    m = reg.register_model("bot", base_model="b")
    with pytest.raises(RegistryError, match=message):
        reg.record_eval(
            m.ref, suite_name="s", suite_version="v", task="t", metrics=metrics, samples=samples
        )
    assert reg.eval_runs(m.ref) == []


def test_failure_mid_transaction_rolls_back_the_whole_run(reg):
    m = reg.register_model("bot", base_model="b")
    bad = SampleOutcome(
        "y", 1.0, True, detail=b"bytes are not text"
    )  # fails after run + metrics rows
    with pytest.raises(TypeError):
        reg.record_eval(
            m.ref,
            suite_name="s",
            suite_version="v",
            task="t",
            metrics=[MetricValue("accuracy", 1.0)],
            samples=[SampleOutcome("x", 1.0, True), bad],
        )
    assert reg.eval_runs(m.ref) == [] and [e.command for e in reg.audit_log()] == ["register"]
    with pytest.raises(RegistryError, match="already registered as bot:v2"):
        reg.register_model("bot", base_model="b", tinker_path="tinker://r/1")
        reg.register_model("bot", base_model="b", tinker_path="tinker://r/1")


def test_missing_file_without_create(tmp_path):
    with pytest.raises(RegistryError, match="does not exist"):
        Registry.open(tmp_path / "nope.db", create=False)
    assert not (tmp_path / "nope.db").exists()


def test_corrupt_file_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "registry.db"
    garbage = b"this is not a database\x00" * 100
    path.write_bytes(garbage)
    with pytest.raises(RegistryError, match="not an SQLite database"):
        Registry.open(path)
    assert path.read_bytes() == garbage


def test_damaged_sqlite_body_is_refused(tmp_path):
    path = tmp_path / "registry.db"
    Registry.open(path).close()
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # keep the magic header, wreck the schema page
    path.write_bytes(bytes(data))
    with pytest.raises(RegistryError, match="not a readable SQLite database"):
        Registry.open(path)
    assert path.read_bytes() == bytes(data)


def test_foreign_sqlite_file_is_refused(tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (x)")
    with pytest.raises(RegistryError, match="not a chief registry"):
        Registry.open(path)


def test_newer_schema_is_refused_and_untouched(tmp_path):
    path = tmp_path / "registry.db"
    with Registry.open(path) as reg:
        assert reg.schema_version == len(MIGRATIONS)
        reg.register_model("bot", base_model="b")
    db = sqlite3.connect(path)
    with db:
        db.execute("INSERT INTO _chief_migrations VALUES ('m999_from_the_future', 'later')")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    before = path.read_bytes()
    with pytest.raises(RegistryError, match="newer tinker-chief"):
        Registry.open(path)
    assert path.read_bytes() == before


def test_reopen_keeps_data_and_applies_migrations_once(tmp_path):
    path = tmp_path / "registry.db"
    with Registry.open(path) as reg:
        reg.register_model("bot", base_model="b")
    with Registry.open(path, create=False) as reg:
        assert [m.ref for m in reg.list_models()] == ["bot:v1"]
    with sqlite3.connect(path) as db:
        names = [r[0] for r in db.execute("SELECT name FROM _chief_migrations")]
        assert names == [name for name, _ in MIGRATIONS]
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_suite_requirement_from_eval_suite():
    from tinker_chief.evals.suite import EvalSuite, EvalTask
    from tinker_chief.registry import SuiteRequirement

    suite = EvalSuite(
        name="chat",
        tasks=[
            EvalTask(name="qa", layer="product", kind="jsonl", data="qa.jsonl"),
            EvalTask(
                name="harm",
                layer="safety",
                kind="safety",
                headline_metric="refusal_rate",
                thresholds={"refusal_rate": 0.9},
            ),
        ],
    )
    req = SuiteRequirement.from_suite(suite)
    assert req.version == suite.version and req.task_names() == ["qa", "harm"]
    assert (
        req.tasks[1].thresholds == {"refusal_rate": 0.9} and req.headline("harm") == "refusal_rate"
    )
    assert SUITE.headline("qa") == "accuracy"


def test_old_schema_is_migrated_forward(tmp_path):
    """A file at schema version 1 (only m001 applied) gains m002 and keeps its rows."""
    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    name, m001 = MIGRATIONS[0]
    db.execute("BEGIN")
    db.execute("CREATE TABLE _chief_migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
    m001(db)
    db.execute("INSERT INTO _chief_migrations VALUES (?, 'then')", (name,))
    for version in (1, 2):
        db.execute(
            "INSERT INTO models (name, version, display_name, backend, base_model, recipe, "
            "tinker_path, created_at) VALUES ('old', ?, 'old', 'local', 'b', 'sl', ?, 'then')",
            (version, f"tinker://x/{version}"),
        )
    db.execute("COMMIT")
    db.close()
    with Registry.open(path, create=False) as reg:
        assert reg.schema_version == len(MIGRATIONS)
        assert [m.ref for m in reg.list_models()] == ["old:v1", "old:v2"]
    with (
        sqlite3.connect(path) as raw,
        pytest.raises(sqlite3.IntegrityError),
    ):  # the new unique index is in force
        raw.execute("UPDATE models SET tinker_path = 'tinker://x/1'")


def _schema_2_registry(path, extra_sql: str = ""):
    """A registry file as the previous release wrote it (m001 + m002): one model with one eval
    run."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN")
    db.execute("CREATE TABLE _chief_migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
    for name, step in MIGRATIONS[:2]:
        step(db)
        db.execute("INSERT INTO _chief_migrations VALUES (?, 'then')", (name,))
    db.execute(
        "INSERT INTO models (name, version, display_name, backend, base_model, recipe, "
        "tinker_path, created_at) VALUES "
        "('old', 1, 'old', 'tinker', 'Qwen/Qwen3-8B', 'sl', 'tinker://x/1', 'then')"
    )
    db.execute(
        "INSERT INTO eval_runs (model_id, suite_name, suite_version, task, status, started_at) "
        "VALUES (1, 's', 'v1', 'qa', 'finished', 'then')"
    )
    db.execute("INSERT INTO metrics (run_id, name, value) VALUES (1, 'accuracy', 0.5)")
    if extra_sql:
        db.execute(extra_sql)
    db.execute("COMMIT")
    db.close()


def test_schema_2_gains_usage_columns_and_keeps_its_rows(tmp_path):
    from tinker_chief.registry import Usage

    path = tmp_path / "old.db"
    _schema_2_registry(path)
    with Registry.open(path, create=False) as reg:
        old = reg.get_model("old:v1")
        assert old.tinker_path == "tinker://x/1" and old.usage == Usage() and not old.usage.recorded
        run = reg.latest_results("old:v1")["qa"]
        assert run.metrics["accuracy"].value == 0.5 and run.usage == Usage()
        made = Usage(train_tokens=1200, prefill_tokens=300, sample_tokens=90, machine_seconds=4.5)
        new = reg.register_model("old", base_model="Qwen/Qwen3-8B", backend="tinker", usage=made)
        evaluated = reg.record_eval(
            new.ref,
            suite_name="s",
            suite_version="v1",
            task="qa",
            metrics=[MetricValue("accuracy", 0.75)],
            usage=Usage(prefill_tokens=40, sample_tokens=12, machine_seconds=1.0),
        )
    with Registry.open(path, create=False) as reg:  # a fresh read: the values are in the file
        assert reg.get_model(new.ref).usage == made
        assert reg.eval_runs(new.ref)[0].usage == evaluated.usage == Usage(None, 40, 12, 1.0)
        assert reg.get_model(new.ref).to_dict()["usage"]["train_tokens"] == 1200
    with (
        pytest.raises(RegistryError, match="usage.train_tokens` is set on an eval run"),
        Registry.open(path) as reg,
    ):
        reg.record_eval(
            "old:v1",
            suite_name="s",
            suite_version="v1",
            task="qa",
            metrics=[],
            usage=Usage(train_tokens=1),
        )
    with (
        pytest.raises(RegistryError, match=r"usage.sample_tokens` is -1"),
        Registry.open(path) as reg,
    ):
        reg.register_model("old", base_model="b", usage=Usage(sample_tokens=-1))


def test_usage_migration_is_one_transaction(tmp_path):
    """A file whose eval_runs already has a `machine_seconds` column makes m003's last statement
    fail: none of its columns stay behind and the file stays at schema 2, its rows intact."""
    path = tmp_path / "old.db"
    _schema_2_registry(path, "ALTER TABLE eval_runs ADD COLUMN machine_seconds REAL")
    with pytest.raises(
        RegistryError, match="duplicate column name: machine_seconds; nothing was written"
    ):
        Registry.open(path)
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT count(*) FROM _chief_migrations").fetchone()[0] == 2
        columns = {row[1] for row in raw.execute("PRAGMA table_info(models)")}
        assert (
            "train_tokens" not in columns
            and raw.execute("SELECT count(*) FROM models").fetchone()[0] == 1
        )


def test_migration_refused_by_existing_data_changes_nothing(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE _chief_migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
    MIGRATIONS[0][1](db)
    db.execute("INSERT INTO _chief_migrations VALUES ('m001_initial', 'then')")
    for version in (1, 2):  # two versions on one checkpoint: what m002 forbids
        db.execute(
            "INSERT INTO models (name, version, display_name, backend, base_model, recipe, "
            "tinker_path, created_at) VALUES "
            "('old', ?, 'old', 'local', 'b', 'sl', 'tinker://same', 'then')",
            (version,),
        )
    db.close()
    with pytest.raises(RegistryError, match="migration m002_unique_tinker_path cannot be applied"):
        Registry.open(path)
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT count(*) FROM _chief_migrations").fetchone()[0] == 1


def test_unwritable_location_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RegistryError, match="cannot create the registry's directory"):
        Registry.open(blocker / "sub" / "registry.db")
    with pytest.raises(RegistryError, match="is a directory"):
        Registry.open(tmp_path)


def test_bad_lora_and_data_fields(reg):
    with pytest.raises(RegistryError, match=r"`lora`: .*unexpected keyword argument 'rnak'"):
        reg.register_model("bot", base_model="b", lora={"rnak": 8})
    with pytest.raises(RegistryError, match=r"`lora.rank` is 0; expected a positive integer"):
        reg.register_model("bot", base_model="b", lora={"rank": 0})
    with pytest.raises(RegistryError, match=r"`data`: .*expected files"):
        reg.register_model("bot", base_model="b", data={"files": [{"path": "x"}]})
    with pytest.raises(RegistryError, match=r"`data` has unknown field\(s\) \['exampels'\]"):
        reg.register_model("bot", base_model="b", data={"exampels": 3})
    assert reg.list_models() == []


def test_non_json_config_values_and_long_details(reg, tmp_path):
    m = reg.register_model("bot", base_model="b", config={"data_dir": tmp_path, "steps": 3})
    assert reg.get_model(m.ref).config == {"data_dir": str(tmp_path), "steps": 3}
    run = reg.record_eval(
        m.ref,
        suite_name="s",
        suite_version="v",
        task="t",
        metrics=[MetricValue("a", 1.0)],
        samples=[SampleOutcome("x", 1.0, True, detail="y" * 5000)],
    )
    detail = reg.samples(run.id)[0].detail
    assert len(detail) == 500 and detail.endswith("…")
