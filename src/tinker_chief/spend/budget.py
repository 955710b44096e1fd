"""Budgets: `[budget] max_usd` / `max_tokens` (and `--max-usd`) against what the project spent.

Spent to date is chief's own count, recorded in the registry (each training run's latest
registered checkpoint, whose usage is cumulative, plus every eval run: `Registry.spent()`),
priced at the project's dated price table (`[estimates] prices_file`, else the shipped one):
what the work costs, or would cost, on Tinker's cloud; tokens are training, prefill and sampled
tokens together. A command whose estimate exceeds what remains is refused before it starts
(`BudgetExceeded`, exit code 5, one line: the estimate, spent so far, what remains, how to raise
it). A training run checks after every step whether the next one would cross the budget; then it
saves a checkpoint and stops (status `budget`, exit code 5), and `chief train --resume` goes on
once the budget is raised. A dollar budget needs a price for every base model it counts: without
one the command says so and suggests `max_tokens`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinker_chief.errors import ChiefError, ConfigurationError
from tinker_chief.exit_codes import ExitCode

TOKEN_KINDS = ("train", "prefill", "sample")
RAISE_HINT = "raise [budget] max_usd / max_tokens in chief.toml (or pass --max-usd)"


class BudgetExceeded(ChiefError):
    """A command would cross, or a run reached, the project's budget (exit code 6)."""

    exit_code = ExitCode.BUDGET_STOPPED


@dataclass(frozen=True)
class Tokens:
    """Tokens by how Tinker bills them; `usd` at the price table (None: some have no price)."""

    train: int = 0
    prefill: int = 0
    sample: int = 0
    usd: float | None = 0.0

    @property
    def total(self) -> int:
        return self.train + self.prefill + self.sample

    def __add__(self, other: Tokens) -> Tokens:
        usd = None if self.usd is None or other.usd is None else self.usd + other.usd
        return Tokens(self.train + other.train, self.prefill + other.prefill, self.sample + other.sample, usd)

    def scaled(self, factor: float) -> Tokens:
        usd = None if self.usd is None else self.usd * factor
        train, prefill, sample = (math.ceil(getattr(self, k) * factor) for k in TOKEN_KINDS)
        return Tokens(train, prefill, sample, usd)

    def text(self) -> str:
        return f"{self.total:,} tokens" + ("" if self.usd is None else f" (${self.usd:,.4f})")


def parse_max_usd(value: str | None) -> float | None:
    """`--max-usd`: a non-negative number of US dollars, or one line saying what was expected."""
    if value is None:
        return None
    try:
        amount = float(value)
    except ValueError:
        amount = math.nan
    if not math.isfinite(amount) or amount < 0:
        raise ConfigurationError(f"--max-usd: expected a non-negative number of US dollars, got {value!r}")
    return amount


@dataclass(frozen=True)
class Budget:
    max_usd: float | None
    max_tokens: int | None

    @property
    def set(self) -> bool:
        return self.max_usd is not None or self.max_tokens is not None

    @classmethod
    def of(cls, project: Any, max_usd_flag: str | None = None) -> Budget:
        """The project's `[budget]`, with `--max-usd` replacing its `max_usd`."""
        section = project.config.budget
        flag = parse_max_usd(max_usd_flag)
        return cls(flag if flag is not None else section.max_usd, section.max_tokens)

    def describe(self) -> str:
        parts = [f"max_usd = ${self.max_usd:,.4f}"] if self.max_usd is not None else []
        parts += [f"max_tokens = {self.max_tokens:,}"] if self.max_tokens is not None else []
        return " and ".join(parts)

    def crossed(self, total: Tokens) -> str | None:
        """What `total` exceeds of this budget, in words; None when within it."""
        if self.max_tokens is not None and total.total > self.max_tokens:
            return f"max_tokens = {self.max_tokens:,}"
        if self.max_usd is not None and total.usd is not None and total.usd > self.max_usd:
            return f"max_usd = ${self.max_usd:,.4f}"
        return None

    def remaining(self, spent: Tokens) -> str:
        parts = []
        if self.max_tokens is not None:
            parts.append(f"{max(0, self.max_tokens - spent.total):,} tokens")
        if self.max_usd is not None and spent.usd is not None:
            parts.append(f"${max(0.0, self.max_usd - spent.usd):,.4f}")
        return " / ".join(parts)


class Pricer:
    """Tokens to dollars at the project's dated price table, per base model."""

    def __init__(self, prices_file: Path | None) -> None:
        self.prices_file = prices_file

    def price(self, base_model: str) -> dict[str, Any] | None:
        from tinker_chief.planning.estimates import price_of

        return price_of(base_model, self.prices_file)

    def tokens(self, base_model: str, train: int, prefill: int, sample: int) -> Tokens:
        price = self.price(base_model)
        usd = None
        if price is not None:
            usd = sum(count * (price.get(kind) or 0.0) for kind, count in zip(TOKEN_KINDS, (train, prefill, sample)))
            usd /= 1e6
        return Tokens(train, prefill, sample, usd)

    def table(self) -> str:
        """The price table's name, date and source (shown wherever dollars are)."""
        from tinker_chief.files import read_toml
        from tinker_chief.planning.estimates import PRICES_FILE

        path = self.prices_file or PRICES_FILE
        table = read_toml(path)
        as_of, source = table.get("as_of", "undated"), table.get("source", "no source given")
        return f"{path.name} (as of {as_of}; {source})"


def pricer_of(project: Any) -> Pricer:
    prices = project.config.estimates.prices_file
    return Pricer(project.path(prices) if prices else None)


def require_prices(budget: Budget, pricer: Pricer, base_models: list[str]) -> None:
    """A dollar budget needs a price for every base model the work runs on."""
    if budget.max_usd is None:
        return
    for model in dict.fromkeys(base_models):
        if pricer.price(model) is None:
            raise ConfigurationError(
                f"a dollar budget (max_usd) needs a price for {model}, and {pricer.table()} has "
                "none: add one ([estimates] prices_file) or set [budget] max_tokens instead"
            )


def spent(registry: Any, pricer: Pricer, exclude_run: str | None = None) -> Tokens:
    """The project's spend to date from the registry (without `exclude_run`, a run resuming)."""
    total = Tokens()
    for base, usage in registry.spent(exclude_run=exclude_run).items():
        counts = (usage.train_tokens or 0, usage.prefill_tokens or 0, usage.sample_tokens or 0)
        total = total + pricer.tokens(base, *counts)
    return total


def refuse_over(budget: Budget, spent_so_far: Tokens, estimate: Tokens, command: str) -> None:
    """Refuse `command` up front when spent + its estimate crosses the budget (one line)."""
    crossed = budget.crossed(spent_so_far + estimate)
    if crossed is None:
        return
    raise BudgetExceeded(
        f"budget: {command} would use ~{estimate.text()}, over {crossed}: spent so far "
        f"{spent_so_far.text()}, remaining {budget.remaining(spent_so_far)}; {RAISE_HINT}"
    )


def training_estimate(project: Any, pricer: Pricer, fraction: float = 1.0) -> Tokens:
    """The plan's tokens for one training run of the project (`fraction` of it, for a resume)."""
    work = plan_estimates(project).work
    counts = (work.train_tokens, work.prefill_tokens, work.sample_tokens)
    return pricer.tokens(project.config.base_model, *counts).scaled(fraction)


def eval_estimate(project: Any, pricer: Pricer, models: int = 1) -> Tokens:
    """The plan's tokens for one `chief eval` of the suite on `models` models."""
    evals = plan_estimates(project).eval_sampling
    if evals is None:
        return Tokens()
    one = pricer.tokens(project.config.base_model, 0, evals.prefill_tokens, evals.sample_tokens)
    return one.scaled(models)


def plan_estimates(project: Any) -> Any:
    """The planner's estimates for the project as it is now (`chief plan`'s numbers)."""
    from tinker_chief.planning import make_plan

    return make_plan(project).estimates


@dataclass
class RunGuard:
    """Asked by the training loop after each step: stop before the next step crosses the budget."""

    budget: Budget
    spent_before: Tokens  # the project's spend without this run
    pricer: Pricer
    base_model: str

    def check(self, run_usage: dict[str, float], step_usage: dict[str, float]) -> str | None:
        """Why to stop now (the next step, about as big as the last, would cross), or None."""
        run = self._tokens(run_usage)
        projected = self.spent_before + run + self._tokens(step_usage)
        crossed = self.budget.crossed(projected)
        if crossed is None:
            return None
        return (
            f"budget: the next step would take the project to ~{projected.text()}, over {crossed} "
            f"(spent {(self.spent_before + run).text()})"
        )

    def _tokens(self, usage: dict[str, float]) -> Tokens:
        counts = (int(usage.get(f"{kind}/tokens", 0)) for kind in TOKEN_KINDS)
        return self.pricer.tokens(self.base_model, *counts)


def _spent_now(project: Any, pricer: Pricer, exclude_run: str | None = None) -> Tokens:
    from tinker_chief.registry import Registry

    with Registry.open(project.registry_path) as registry:
        return spent(registry, pricer, exclude_run)


def start_training(project: Any, budget: Budget, resume_run: str | None = None, fraction: float = 1.0) -> RunGuard:
    """Refuse a run (or the rest of a resumed one: `fraction` of the plan) that would cross the
    budget; else the guard its loop asks after every step."""
    pricer = pricer_of(project)
    require_prices(budget, pricer, [project.config.base_model])
    refuse_over(
        budget,
        _spent_now(project, pricer),
        training_estimate(project, pricer, fraction),
        "chief train",
    )
    before = _spent_now(project, pricer, exclude_run=resume_run)
    return RunGuard(budget, before, pricer, project.config.base_model)


def check_command(project: Any, budget: Budget, command: str, estimate_of: Any, base_models: list[str]) -> None:
    """Refuse `command` up front when `estimate_of(pricer)` would cross the budget."""
    pricer = pricer_of(project)
    require_prices(budget, pricer, base_models)
    refuse_over(budget, _spent_now(project, pricer), estimate_of(pricer), command)
