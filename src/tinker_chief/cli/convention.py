"""The CLI's convention, written once: docs/CLI.md's "Convention" section is rendered from this
module (`section()`), and tests/cli/test_convention.py holds every command under `chief` to it.

A new command follows the rules or is named below with its reason, so an exception is a
decision that shows in the docs, never an accident.
"""

from __future__ import annotations

from tinker_chief.exit_codes import MEANINGS

# Commands that work outside any project, and why; every other command takes `-p/--project DIR`.
NO_PROJECT: dict[str, str] = {
    "chief models": "lists the models chief can use",
    "chief models fetch": "fills the local Hugging Face cache",
    "chief eval-offline": "grades a model on one JSONL file (`--data`), outside any suite",
    "chief benchmarks stage": "fills the `datasets` cache",
    "chief engine serve": "an engine serves any project; its state is `--state-dir`",
}

# Commands without `--json`, and why; every other command prints one JSON object with it.
NO_JSON: dict[str, str] = {
    "chief engine serve": "a server: it runs until stopped",
    "chief demo": "a narrated tour for a person; what it leaves (registry, report) is the result",
    "chief registry export": "its result is a document: `--format json --output -` prints it",
    "chief playground": (
        "a web page for a person, served until stopped; `--export` writes it as files"
    ),
}

# A short flag means one long flag wherever it appears.
SHORT_FLAGS: dict[str, str] = {
    "-p": "--project",
    "-m": "--base-model",
    "-o": "--output",
    "-h": "--help",
}

# Old spellings read until the next release, with a `Note: ...` on stderr (Markdown: old -> new).
OLD_SPELLINGS: dict[str, str] = {
    "`chief init DIR`, `chief plan DIR`": "`chief init -p DIR`, `chief plan -p DIR`",
    "`chief init --task sl|rl|dpo|distill`": "`chief init --recipe sl|rl|dpo|distill`",
    "`chief demo --dir DIR`": "`chief demo -p DIR`",
    '`task = "rl"` in chief.toml': '`recipe = "rl"` (any save writes it so, at schema 2)',
}

PROSE = """\
## Convention

Every command follows these rules; tests/cli/test_convention.py walks the command tree and holds
each one to them.

- **`-p/--project DIR`** on every command that works in a project: the directory holding
  `chief.toml` (default: the current directory). For `chief init` and `chief demo` it names the
  directory the project is created in.
- **`--json`** on every command that reports: exactly one JSON object on stdout and nothing else
  there; progress bars, tables and notes go to stderr. That holds for the long runs too
  (`chief train`, `chief sweep`, `chief select`), whatever the exit code says (a Ctrl-C'd
  `chief train --json` still prints its object, with `"status": "interrupted"`). A command that
  fails with exit 1 or 2 prints no object: its one `Error: ...` line is on stderr.
- **Errors never echo a key.** An `Error:` line may quote what you gave (a field's value, a
  flag's); anything in it that looks like an API key or token (`tml-...`, `sk-...`, `hf_...`,
  `ghp_...`, `AKIA...`, JWTs, bearer tokens) is printed as `[REDACTED]`. The library's own
  errors (`ChiefError`) carry the redacted text too, for scripts that call it directly.
- **`--task`** always names an eval task of the project's suite (`chief eval`, `chief select`).
  The training kind is the **recipe**: `chief init --recipe sl|rl|dpo|distill`, `recipe` in
  `chief.toml`.
- **Short flags** mean one thing wherever they appear: {short_flags}.
- **Old spellings** are read for one more release, each with one `Note: ...` line on stderr, and
  are gone in the next; they appear in no `--help`:

{old_spellings}

### Exit codes

One table (`tinker_chief.exit_codes`), the same for every command:

| code | meaning |
|---|---|
{exit_codes}

A script can rely on them: `chief train && chief eval CANDIDATE` stops after a Ctrl-C (130) or a
run the recipe stopped (5), and `chief promote ... --to prod` exits 3 when the gate refuses.

### Commands outside a project (no `-p/--project`)

{no_project}

### Commands without `--json`

{no_json}
"""


def _rows(table: dict[str, str]) -> str:
    return "\n".join(f"- `{command}`: {why}" for command, why in table.items())


def section() -> str:
    """The convention as docs/CLI.md states it, above the generated reference."""
    return PROSE.format(
        short_flags=", ".join(f"`{short}` is `{long}`" for short, long in SHORT_FLAGS.items()),
        old_spellings="\n".join(f"  - {old}: now {new}" for old, new in OLD_SPELLINGS.items()),
        exit_codes="\n".join(f"| {int(code)} | {meaning} |" for code, meaning in MEANINGS.items()),
        no_project=_rows(NO_PROJECT),
        no_json=_rows(NO_JSON),
    )
