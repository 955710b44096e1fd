"""Reading the user's files: bounded reads, UTF-8 text, JSON and TOML, with one-line errors.

Every file `chief` reads that a person (or a crash) may have broken goes through here:
`chief.toml` (`read_toml`), JSON documents such as `plan.json` and a run's `run.json`
(`read_json`, `read_json_object`), a model's config and tokenizer files (`models/hf_files.py`,
also on bytes fetched from a hub, named by their URL), and each line of a JSONL file
(`jsonl.read_jsonl_objects`, via `decode_utf8` and `parse_json`). Whatever the bytes — binary,
UTF-16, an endless `/dev/zero`, JSON nested 100,000 deep, a 5,000-digit number — the caller
gets a `ChiefError` that reads `<file>:<line>: <what>`, never a traceback. Reads are capped
(`MAX_DOCUMENT_BYTES`, or the caller's `limit`), so a wrong path cannot exhaust memory. A
UTF-8 byte-order mark (Windows editors) is accepted. Data files that may be gzipped
(`open_capped`) are decompressed as a stream with a cap on the bytes it yields, so a small gzip
bomb is refused after `limit` bytes, and a file that is not gzip or is truncated is a one-line
error too.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import json
import re
import tomllib
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, TypeAlias

from tinker_chief.errors import ChiefError, ConfigurationError, DataError

MIB = 1 << 20
# A data file whose rows are all held in memory (`chief benchmarks stage`), counted decompressed:
# a small gzip bomb is refused at this size instead of exhausting memory.
MAX_DATA_MIB = 256
# chief.toml, plan.json, run.json: small files; anything bigger is a wrong path.
MAX_DOCUMENT_BYTES = 64 * MIB
# A JSON object as read from a file: its values unchecked, so a reader narrows each one it takes
# (`isinstance`) instead of trusting the file's shape.
JsonObject: TypeAlias = dict[str, object]
_TOML_AT = re.compile(r"^(?P<msg>.*) \(at line (?P<line>\d+), column (?P<column>\d+)\)$")


def sha256_file(path: Path) -> str:
    """The file's full sha256 hex digest, read in 1 MiB blocks: the one content hash of data
    files (the registry's per-file `sha256`, a run's `data_hash`, eval data versions)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(MIB), b""):
            digest.update(block)
    return digest.hexdigest()


def _where(path: Path | str, line: int | None) -> str:
    return f"{path}:{line}" if line is not None else str(path)


def open_binary(path: Path, *, error: type[ChiefError] = DataError) -> BinaryIO:
    """`path` opened for reading bytes, or `error` saying why it cannot be."""
    if not path.exists():
        raise error(f"{path}: file not found")
    if path.is_dir():
        raise error(f"{path}: is a directory, expected a file")
    try:
        return path.open("rb")
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror})") from None


def read_bytes(
    path: Path, *, limit: int = MAX_DOCUMENT_BYTES, error: type[ChiefError] = DataError
) -> bytes:
    """The whole of `path`, at most `limit` bytes, or `error` saying why not."""
    with open_binary(path, error=error) as handle:
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise error(f"{path}: cannot read ({exc.strerror})") from None
    if len(data) > limit:
        raise error(f"{path}: larger than {limit // MIB} MiB; expected a small text file")
    return data


class CappedReader:
    """The bytes of a file, gunzipped when its name ends in `.gz`, at most `limit` of them: past
    the cap, and on data that is not gzip or ends early, `error` names the file in one line."""

    def __init__(self, path: Path, limit: int, error: type[ChiefError], hint: str) -> None:
        self.path, self.limit, self.error, self.hint, self.count = path, limit, error, hint, 0
        self.gzipped = path.suffix.lower() == ".gz"
        self._file = open_binary(path, error=error)
        self._stream: gzip.GzipFile | BinaryIO = (
            gzip.GzipFile(fileobj=self._file, mode="rb") if self.gzipped else self._file
        )

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes; all that is left (within the cap) when `size` is negative."""
        if size >= 0:
            return self._take(self._stream.read, size)
        chunks = list(iter(lambda: self._take(self._stream.read, MIB), b""))
        return b"".join(chunks)

    def readline(self, size: int = -1) -> bytes:
        return self._take(self._stream.readline, size)

    def _take(self, read: Callable[[int], bytes], size: int) -> bytes:
        room = self.limit - self.count + 1  # one byte past the cap tells "too big" from "exactly"
        try:
            data = read(room if size < 0 else min(size, room))
        except gzip.BadGzipFile:
            raise self.error(f"{self.path}: not gzip data (the name ends in .gz)") from None
        except EOFError:
            ended = "truncated: the gzip data ends before its end marker"
            raise self.error(f"{self.path}: {ended}") from None
        except zlib.error as exc:
            raise self.error(f"{self.path}: corrupt gzip data ({exc})") from None
        except OSError as exc:
            raise self.error(f"{self.path}: cannot read ({exc.strerror or exc})") from None
        self.count += len(data)
        if self.count > self.limit:
            limit = f"{self.limit // MIB} MiB" + (" once decompressed" if self.gzipped else "")
            raise self.error(f"{self.path}: more than {limit}{self.hint}")
        return data

    def close(self) -> None:
        self._stream.close()
        self._file.close()

    def __enter__(self) -> CappedReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def open_capped(
    path: Path,
    limit: int,
    *,
    error: type[ChiefError] = DataError,
    hint: str = "",
) -> CappedReader:
    """`path` (gunzipped if it ends in `.gz`) as a stream of at most `limit` bytes; `hint` ends
    the too-big error (e.g. how to raise the cap)."""
    return CappedReader(path, limit, error, hint)


def decode_utf8(
    data: bytes,
    path: Path | str,
    line: int | None = None,
    *,
    error: type[ChiefError] = DataError,
) -> str:
    """`data` (all of `path`, or its line `line`) as text; a UTF-8 byte-order mark is dropped.
    `path` only names the data in errors (a file, or the URL it came from)."""
    if line in (None, 1) and data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        at = line if line is not None else data.count(b"\n", 0, exc.start) + 1
        column = exc.start - data.rfind(b"\n", 0, exc.start)
        utf16 = line in (None, 1) and data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
        hint = "; it looks like UTF-16: save it as UTF-8" if utf16 else "; expected UTF-8 text"
        raise error(
            f"{path}:{at}: not UTF-8 (byte 0x{data[exc.start]:02x} at column {column}){hint}"
        ) from None


def parse_json(
    text: str,
    path: Path | str,
    line: int | None = None,
    *,
    error: type[ChiefError] = DataError,
) -> object:
    """`text` (all of `path`, or its line `line`) as JSON, or `error` naming the file and line."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        at = line if line is not None else exc.lineno
        raise error(f"{path}:{at}: invalid JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise error(f"{_where(path, line)}: invalid JSON (nested too deeply)") from None
    except ValueError as exc:
        # An integer past Python's digit limit; the rest of its text is for programmers.
        raise error(f"{_where(path, line)}: invalid JSON ({str(exc).split(';')[0]})") from None


def read_json(
    path: str | Path,
    *,
    limit: int = MAX_DOCUMENT_BYTES,
    error: type[ChiefError] = DataError,
) -> Any:
    """A whole JSON document (`plan.json`, `run.json`), at most `limit` bytes.

    Loosely typed: callers read it by its documented fields (the engine passes a model's
    `config.json` on as a mapping, a sweep reads its `sweep.json` and turns a bad field into one
    error); `read_json_object` is the typed reader of a document that must be an object."""
    path = Path(path)
    text = decode_utf8(read_bytes(path, limit=limit, error=error), path, error=error)
    return parse_json(text, path, error=error)


def json_object(
    data: bytes,
    path: Path | str,
    *,
    error: type[ChiefError] = DataError,
) -> JsonObject:
    """`data` (all of `path`) as a JSON object, or `error` saying what it is instead."""
    value = parse_json(decode_utf8(data, path, error=error), path, error=error)
    if not isinstance(value, dict):
        raise error(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def read_json_object(
    path: str | Path, *, limit: int = MAX_DOCUMENT_BYTES, error: type[ChiefError] = DataError
) -> JsonObject:
    """A whole JSON document that must be an object (a model's `config.json`), at most `limit`
    bytes."""
    path = Path(path)
    return json_object(read_bytes(path, limit=limit, error=error), path, error=error)


def read_text(
    path: str | Path,
    *,
    limit: int = MAX_DOCUMENT_BYTES,
    error: type[ChiefError] = DataError,
) -> str:
    """A whole UTF-8 text file (a chat template), at most `limit` bytes."""
    path = Path(path)
    return decode_utf8(read_bytes(path, limit=limit, error=error), path, error=error)


def read_toml(path: str | Path) -> dict[str, object]:
    """A TOML file (`chief.toml`) as a table; any problem is a `ConfigurationError`."""
    path = Path(path)
    text = decode_utf8(read_bytes(path, error=ConfigurationError), path, error=ConfigurationError)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = _TOML_AT.match(str(exc))
        if found is None:  # "(at end of document)"
            raise ConfigurationError(f"{path}: invalid TOML ({exc})") from None
        raise ConfigurationError(
            f"{path}:{found['line']}: invalid TOML ({found['msg']} at column {found['column']})"
        ) from None
    except RecursionError:
        raise ConfigurationError(f"{path}: invalid TOML (nested too deeply)") from None
    except ValueError as exc:  # an integer past Python's digit limit
        raise ConfigurationError(f"{path}: invalid TOML ({str(exc).split(';')[0]})") from None
