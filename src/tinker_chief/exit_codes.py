"""The exit codes of every `chief` command, in one table.

Scripts branch on these (`chief train && chief eval ...` must not go on after a Ctrl-C), so each
outcome has one number everywhere: the CLI exits with them, `ChiefError.exit_code` names one,
and docs/CLI.md's table is rendered from `MEANINGS` (tests/cli/test_convention.py holds both).
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    GATE_REFUSED = 3
    TASKS_FAILED = 4
    STOPPED = 5
    BUDGET_STOPPED = 6
    INTERRUPTED = 130


# What each code means, as docs/CLI.md states it.
MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "done (`chief train`: every step; `chief sweep`: every point)",
    ExitCode.ERROR: "an error, with one `Error: ...` line on stderr (bad input, a backend that "
    "cannot be reached, a step that failed)",
    ExitCode.USAGE: "usage: an unknown flag, a bad value or a missing argument (click's code)",
    ExitCode.GATE_REFUSED: "`chief promote`: the gate refused; each failing rule is on stderr",
    ExitCode.TASKS_FAILED: "some tasks failed: each is reported with its error, and the others "
    "ran to the end and were recorded: `chief eval` (a suite task), `chief select` (a suite task "
    "of a shortlisted candidate; the choice is still made), `chief sweep` (a point's run)",
    ExitCode.STOPPED: "`chief train` / `chief sweep`: the recipe stopped a run on its own rule "
    "(RL: no learning signal after `[rl] signal_check_steps`); a checkpoint was saved and "
    "`--resume` continues once the cause is fixed",
    ExitCode.BUDGET_STOPPED: "the budget (`[budget]` in chief.toml, `--max-usd`): `chief train`, "
    "`sweep`, `eval` and `select` refused to start over it, or stopped before crossing it "
    "(training runs, a sweep's too, at a checkpoint; `eval` and `select` between suite tasks); "
    "raise the budget, then `--resume` (`eval`, `select`: run it again)",
    ExitCode.INTERRUPTED: "interrupted by Ctrl-C (or SIGTERM); `chief train` and `chief sweep` "
    "first save a checkpoint, and `--resume` continues",
}
