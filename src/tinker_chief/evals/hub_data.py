"""The data of published Inspect Evals tasks: the hub datasets they load, and staging them offline.

Inspect Evals tasks load their rows with `datasets.load_dataset(path, name, data_dir, split,
revision=<pinned commit>)`. `task_data()` finds those calls by building the installed task with
`datasets.load_dataset` replaced by a recorder (nothing is downloaded), so the dataset path,
configuration, split and revision always come from the installed `inspect_evals`, never from a
table kept here. Tasks whose data comes from elsewhere (git clones, snapshots of gated repos,
packages not on PyPI) record no loads and report why.

`stage()` writes rows from a local JSONL, JSON, CSV or Parquet file (optionally gzipped) into
the Hugging Face `datasets` cache in the layout `datasets` itself reads back offline
(`<cache>/<ns>___<name>/<config id>/0.0.0/<revision>/`: Arrow file plus `dataset_info.json`),
so the unmodified task runs with `HF_HUB_OFFLINE=1` (reference/inspect-ai-offline.md §4,
recipe 2). The file is read as `files.py` reads any user file (`read_rows`): at most
`MAX_DATA_MIB` decompressed (gzip is a capped stream), UTF-8 checked, one-line errors. Rows are
checked next: every row has the first row's fields with values of the
same kind, and the task's own record-to-sample function accepts it; otherwise `DataError`
names the file, row and field. A `chief-staged.json` beside the Arrow file records the source
file, its hash, the row count and the revision.
"""

from __future__ import annotations

import contextlib
import inspect as pyinspect
import io
import json
import os
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from unittest import mock

from tinker_chief.errors import DataError, EvalError
from tinker_chief.files import MAX_DATA_MIB, MIB, decode_utf8, open_capped, parse_json, sha256_file
from tinker_chief.jsonl import jsonl_objects

if TYPE_CHECKING:
    import datasets
    import pyarrow.csv as pcsv
    from inspect_ai.dataset import FieldSpec, RecordToSample

STAMP = "chief-staged.json"
# Rows nested deeper than this are refused: Arrow and `datasets` fail at about 60 levels, and no
# benchmark's rows come near it.
MAX_NESTING = 32
_VERSION_DIR = "0.0.0"  # what datasets' own cache uses for hub datasets without a version


@dataclass(frozen=True)
class HubLoad:
    """One `datasets.load_dataset` call a task makes (the pinned revision included)."""

    path: str
    name: str | None
    data_dir: str | None
    split: str
    revision: str | None
    record_to_sample: RecordToSample | None = field(default=None, compare=False, repr=False)

    @property
    def config_id(self) -> str:
        import datasets

        kwargs = {"data_dir": self.data_dir} if self.data_dir else {}
        return str(
            datasets.BuilderConfig(self.name or "default").create_config_id(config_kwargs=kwargs)
        )

    def describe(self) -> str:
        config = self.name or (f"data_dir={self.data_dir}" if self.data_dir else "default")
        return f"{self.path} [{config}] split {self.split} @ {(self.revision or 'unpinned')[:12]}"

    def as_json(self) -> dict[str, str | None]:
        return {
            "path": self.path,
            "name": self.name,
            "data_dir": self.data_dir,
            "split": self.split,
            "revision": self.revision,
        }


@dataclass(frozen=True)
class TaskData:
    """What a published task loads; `loads` is empty, and `reason` says why, when it is not
    stageable."""

    task: str
    loads: tuple[HubLoad, ...]
    reason: str | None = None


def task_ref(task: str) -> str:
    return task if "/" in task else f"inspect_evals/{task}"


def task_data(task: str, task_args: Mapping[str, object] | None = None) -> TaskData:
    """The hub loads of the installed task `task` (e.g. `humaneval` or `inspect_evals/gsm8k`)."""
    import datasets
    import huggingface_hub
    import inspect_ai.dataset
    from inspect_ai._eval.registry import task_create

    ref = task_ref(task)
    loads: list[HubLoad] = []
    fields: dict[int, FieldSpec | RecordToSample | None] = {}
    real_hf_dataset = inspect_ai.dataset.hf_dataset
    signature = pyinspect.signature(datasets.load_dataset)

    # Inspect's own `hf_dataset`, taking whatever it takes, noting the `sample_fields` of the
    # loader call it is about to make.
    def hf_dataset(*args: Any, **kwargs: Any) -> inspect_ai.dataset.Dataset:
        fields[len(loads)] = kwargs.get("sample_fields")
        return real_hf_dataset(*args, **kwargs)

    def record(*args: object, **kwargs: object) -> datasets.Dataset:
        bound = dict(signature.bind_partial(*args, **kwargs).arguments)
        loads.append(
            HubLoad(
                bound["path"],
                bound.get("name"),
                bound.get("data_dir"),
                str(bound.get("split")),
                bound.get("revision"),
                _sample_mapper(fields.get(len(loads))),
            )
        )
        empty = datasets.Dataset.from_list([])
        empty.save_to_disk = lambda *_a, **_k: None  # keep Inspect's cache clean
        return empty

    def no_snapshot(*_args: object, **_kwargs: object) -> NoReturn:
        raise EvalError("downloads a hub snapshot (not a `datasets` split chief can stage)")

    reason = None
    with (
        mock.patch.object(datasets, "load_dataset", record),
        mock.patch.object(inspect_ai.dataset, "hf_dataset", hf_dataset),
        mock.patch.object(huggingface_hub, "snapshot_download", no_snapshot),
        mock.patch.object(huggingface_hub, "hf_hub_download", no_snapshot),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        try:
            task_create(ref, **(task_args or {}))
        except Exception as error:  # noqa: BLE001 - any failure of an unmodified task is its answer here
            reason = _first_line(error)
    if not loads:
        return TaskData(ref, (), reason or "loads no Hugging Face dataset")
    return TaskData(ref, tuple(loads))


def _sample_mapper(sample_fields: FieldSpec | RecordToSample | None) -> RecordToSample | None:
    if sample_fields is None:
        return None
    from inspect_ai.dataset._util import record_to_sample_fn

    return record_to_sample_fn(sample_fields)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".strip()[:300]


# -- the cache -------------------------------------------------------------------------------


def datasets_cache() -> Path:
    import datasets.config

    return Path(os.path.expanduser(str(datasets.config.HF_DATASETS_CACHE)))


def _dataset_dir(load: HubLoad) -> Path:
    from datasets.naming import camelcase_to_snakecase

    parts = load.path.split("/")
    parts[-1] = camelcase_to_snakecase(parts[-1])
    return datasets_cache() / "___".join(parts) / load.config_id


def _arrow_prefix(load: HubLoad) -> str:
    from datasets.naming import camelcase_to_snakecase

    return f"{camelcase_to_snakecase(load.path.split('/')[-1])}-{load.split}"


@dataclass(frozen=True)
class CachedSplit:
    rows: int
    revision: str | None  # the staged revision; None for a copy `datasets` downloaded itself
    staged_from: str | None
    location: Path


def cached_split(load: HubLoad) -> CachedSplit | None:
    """The newest cached copy of `load`'s split (what `datasets` reads offline), if any."""
    candidates = [
        d
        for d in _dataset_dir(load).glob("*/*")
        if (d / "dataset_info.json").is_file() and any(d.glob(_arrow_prefix(load) + "*"))
    ]
    if not candidates:
        return None
    newest = max(candidates, key=lambda d: d.stat().st_mtime)
    info = json.loads((newest / "dataset_info.json").read_text(encoding="utf-8"))
    rows = int((info.get("splits") or {}).get(load.split, {}).get("num_examples", 0))
    stamp = newest / STAMP
    staged = (
        json.loads(stamp.read_text(encoding="utf-8")).get(load.split) if stamp.is_file() else None
    )
    return CachedSplit(
        rows, staged["revision"] if staged else None, staged["source"] if staged else None, newest
    )


# -- staging ---------------------------------------------------------------------------------


def pick_load(data: TaskData, split: str | None) -> HubLoad:
    """The load a staged file fills: `split` if given, else the last (the task's evaluation
    data)."""
    if not data.loads:
        raise EvalError(f"`{data.task}` cannot be staged: {data.reason}")
    if split is None:
        return data.loads[-1]
    matches = [load for load in data.loads if load.split == split]
    if not matches:
        raise EvalError(
            f"`{data.task}` loads no split `{split}`; "
            f"it loads {', '.join(load.describe() for load in data.loads)}"
        )
    return matches[-1]


def stage(
    data: TaskData,
    source: Path,
    split: str | None = None,
    rows: list[dict[str, object]] | None = None,
) -> CachedSplit:
    """Check `source`'s rows (`rows`, when already read by `read_rows`) and write them into the
    datasets cache for `data`'s split. Nothing is written unless every row is accepted."""
    load = pick_load(data, split)
    rows = read_rows(source) if rows is None else rows
    check_rows(rows, source, load)
    table = _table(rows, source)
    target = _dataset_dir(load) / _VERSION_DIR / (load.revision or "unpinned")
    _write_split(table, target, load)
    stamp = target / STAMP
    stamps = json.loads(stamp.read_text(encoding="utf-8")) if stamp.is_file() else {}
    stamps[load.split] = {
        "source": str(source.resolve()),
        "sha256": sha256_file(source),
        "rows": len(rows),
        "revision": load.revision,
        "task": data.task,
        **load.as_json(),
    }
    stamp.write_text(json.dumps(stamps, indent=2) + "\n", encoding="utf-8")
    os.utime(target)  # `datasets` reads the newest copy of a configuration
    found = cached_split(load)
    assert found is not None
    return found


def _table(rows: list[dict[str, object]], source: Path) -> datasets.Dataset:
    """The rows as a `datasets.Dataset`, or `DataError` when Arrow cannot store them (e.g. a list
    mixing numbers and strings, an integer past 64 bits)."""
    import datasets
    import pyarrow as pa

    try:
        return datasets.Dataset.from_list(rows)
    except (pa.ArrowException, OverflowError, RecursionError, TypeError, ValueError) as error:
        why = _first_line(error)
        raise DataError(f"{source}: the rows cannot be stored as a dataset ({why})") from None


def _write_split(table: datasets.Dataset, target: Path, load: HubLoad) -> None:
    import datasets
    from datasets.arrow_writer import ArrowWriter

    info_path = target / "dataset_info.json"
    info = (
        datasets.DatasetInfo.from_directory(str(target))
        if info_path.is_file()
        else datasets.DatasetInfo()
    )
    others = [name for name in (info.splits or {}) if name != load.split]
    if others and info.features is not None and set(info.features) != set(table.features):
        raise DataError(
            f"{load.describe()}: columns {sorted(table.features)} differ from those of the staged "
            f"split(s) {', '.join(others)} of this configuration ({sorted(info.features)})"
        )
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target, suffix=".tmp", delete=False) as handle:
        temporary = Path(handle.name)
    writer = ArrowWriter(features=table.features, path=str(temporary))
    writer.write_table(table.data.table)
    examples, size = writer.finalize()
    writer.close()
    for old in target.glob(_arrow_prefix(load) + "*.arrow"):
        old.unlink()
    temporary.replace(target / f"{_arrow_prefix(load)}.arrow")
    info.features = table.features
    info.config_name = load.config_id
    info.dataset_name = load.path.split("/")[-1]
    splits = info.splits or datasets.SplitDict(dataset_name=info.dataset_name)
    splits[load.split] = datasets.SplitInfo(
        name=load.split, num_bytes=size, num_examples=examples, dataset_name=info.dataset_name
    )
    info.splits = splits
    info.write_to_directory(str(target))


def source_kind(source: Path) -> str:
    """`.jsonl`, `.json`, `.csv` or `.parquet`: what `source` holds (under an optional `.gz`)."""
    suffixes = [s.lower() for s in source.suffixes]
    kind = (
        suffixes[-2]
        if suffixes[-1:] == [".gz"] and len(suffixes) > 1
        else (suffixes[-1] if suffixes else "")
    )
    if kind not in (".jsonl", ".json", ".csv", ".parquet"):
        raise DataError(
            f"{source}: expected a .jsonl, .json, .csv or .parquet file (optionally .gz)"
        )
    return kind


def read_rows(source: Path, max_bytes: int = MAX_DATA_MIB * MIB) -> list[dict[str, object]]:
    """Rows of a JSONL, JSON (a list of objects), CSV or Parquet file; `.gz` is decompressed as a
    stream. At most `max_bytes` are read (decompressed; for Parquet, also its columns' size once
    uncompressed): past that, and for text that is not UTF-8 or not the format its name says,
    `DataError` names the file (and line)."""
    kind = source_kind(source)
    hint = " (the limit for a staged file; raise it with --max-mib if the file is that big)"
    with open_capped(source, max_bytes, hint=hint) as stream:
        if kind == ".jsonl":
            rows = [line.value for line in jsonl_objects(stream, source, allow_empty=True)]
        elif kind == ".json":
            rows = _json_list(parse_json(decode_utf8(stream.read(), source), source), source)
        elif kind == ".csv":
            rows = _csv_rows(stream.read(), source)
        else:
            rows = _parquet_rows(stream.read(), source, max_bytes, hint)
    if not rows:
        raise DataError(f"{source}: no rows")
    return rows


def _json_list(whole: object, source: Path) -> list[dict[str, object]]:
    if not isinstance(whole, list):
        got = type(whole).__name__
        raise DataError(f"{source}: expected a JSON list of row objects, got {got}")
    for number, row in enumerate(whole, start=1):
        if not isinstance(row, dict):
            expected = "expected an object with the dataset's fields"
            raise DataError(f"{source} row {number}: {expected}, got {type(row).__name__}")
    return whole


def _csv_rows(data: bytes, source: Path) -> list[dict[str, object]]:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    decode_utf8(data, source)  # a file:line error for binary or UTF-16 text, before pyarrow's own
    bad_rows: list[pcsv.InvalidRow] = []

    def refuse(row: pcsv.InvalidRow) -> str:
        bad_rows.append(row)
        return "error"

    try:  # column types inferred, as the hub's CSV loader does; one thread, so rows are numbered
        table = pcsv.read_csv(
            pa.BufferReader(data),
            read_options=pcsv.ReadOptions(use_threads=False),
            parse_options=pcsv.ParseOptions(invalid_row_handler=refuse),
        )
        return list(table.to_pylist())
    except pa.ArrowException as error:
        if bad_rows and bad_rows[0].number is not None:
            row = bad_rows[0]
            raise DataError(
                f"{source}:{row.number}: expected {row.expected_columns} columns as in the header, "
                f"got {row.actual_columns}"
            ) from None
        why = _first_line(error)
        raise DataError(f"{source}: not a CSV table pyarrow can read ({why})") from None


def _parquet_rows(data: bytes, source: Path, max_bytes: int, hint: str) -> list[dict[str, object]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(pa.BufferReader(data))
        metadata = parquet.metadata
        size = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
        if size > max_bytes:  # Parquet compresses its columns: a small file can hold gigabytes
            limit = f"{max_bytes // MIB} MiB"
            raise DataError(f"{source}: more than {limit} of columns uncompressed{hint}")
        return list(parquet.read().to_pylist())
    except (pa.ArrowException, OSError) as error:
        why = _first_line(error)
        raise DataError(f"{source}: not a Parquet file pyarrow can read ({why})") from None


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return (
        "list"
        if isinstance(value, list)
        else "object"
        if isinstance(value, dict)
        else type(value).__name__
    )


def _deeper_than(value: object, levels: int) -> bool:
    """Whether lists and objects in `value` nest more than `levels` deep (stops looking there)."""
    if isinstance(value, dict):
        children = list(value.values())
    elif isinstance(value, list):
        children = value
    else:
        return False
    return levels == 0 or any(_deeper_than(child, levels - 1) for child in children)


def check_rows(rows: list[dict[str, object]], source: Path, load: HubLoad) -> None:
    """Every row has the first row's fields with values of the same kind (nulls allowed), and
    the task's record-to-sample accepts it."""
    kinds = {name: _kind(value) for name, value in rows[0].items()}
    for number, row in enumerate(rows, start=1):
        missing = [name for name in kinds if name not in row]
        if missing:
            raise DataError(
                f"{source} row {number}: field `{missing[0]}` is missing "
                f"(the first row has {', '.join(kinds)})"
            )
        extra = [name for name in row if name not in kinds]
        if extra:
            raise DataError(f"{source} row {number}: field `{extra[0]}` is not in the first row")
        for name, value in row.items():
            if _deeper_than(value, MAX_NESTING):
                deep = f"is nested more than {MAX_NESTING} levels deep"
                raise DataError(f"{source} row {number}: field `{name}` {deep}")
            kind = _kind(value)
            if kinds[name] == "null":
                kinds[name] = kind
            elif kind not in ("null", kinds[name]):
                raise DataError(
                    f"{source} row {number}: field `{name}` is a {kind}, "
                    f"expected a {kinds[name]} as in the rows before"
                )
        _check_mapping(row, number, source, load)


def _check_mapping(row: dict[str, object], number: int, source: Path, load: HubLoad) -> None:
    if load.record_to_sample is None:
        return
    try:
        with contextlib.redirect_stdout(sys.stderr):
            load.record_to_sample(row)
    except KeyError as error:
        raise DataError(
            f"{source} row {number}: field `{error.args[0]}` is missing; {load.path} rows have it"
        ) from None
    except Exception as error:  # noqa: BLE001 - the task's own mapping rejected the row
        raise DataError(
            f"{source} row {number}: {load.path}'s task cannot read this row ({_first_line(error)})"
        ) from None
