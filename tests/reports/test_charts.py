"""The eval comparison chart: one panel per metric, each saying which direction is better.

Accuracy (0-1) and an NLL (nats, often 2-4) on one axis made the accuracy bars unreadable; the
figure is checked through its axes (panels, titles, bars), not its pixels.
"""

from __future__ import annotations

import base64

from matplotlib.text import Text

from tinker_chief.registry import GateRules, MetricValue
from tinker_chief.reports import charts
from tinker_chief.reports.collect import TaskResult


def _result(model: str, task: str, metric: str, value: float) -> TaskResult:
    return TaskResult(
        model_ref=model,
        task=task,
        suite_version="v1",
        headline=metric,
        metrics={metric: MetricValue(metric, value, value - 0.05, value + 0.05, n=20)},
        log_location=None,
    )


RESULTS = [
    _result(model, task, metric, value)
    for model in ("base", "tuned")
    for task, metric, value in (
        ("secret_code", "accuracy", 0.4),
        ("trivia", "accuracy", 0.7),
        ("heldout", "nll", 2.9),
        ("confidence", "mean_confidence", 0.6),
    )
]


def test_each_metric_gets_its_own_panel_titled_with_its_better_direction():
    figure = charts.comparison_figure(RESULTS, lambda r: r.headline, "eval comparison")
    titles = {ax.get_title() for ax in figure.axes}
    assert titles == {
        "accuracy\n\u2191 higher is better",
        "mean_confidence\nno better direction",
        "nll\n\u2193 lower is better",
    }
    bars = {ax.get_title().split("\n")[0]: len(ax.patches) for ax in figure.axes}
    assert bars == {"accuracy": 4, "mean_confidence": 2, "nll": 2}  # tasks x models in each panel
    accuracy = next(ax for ax in figure.axes if ax.get_title().startswith("accuracy"))
    assert [label.get_text() for label in accuracy.get_xticklabels()] == ["secret_code", "trivia"]
    assert accuracy.get_ylim()[1] < 1.5  # not stretched to the NLL's scale


def test_the_direction_follows_the_projects_gate_rules():
    rules = GateRules(lower_is_better=["accuracy"])
    figure = charts.comparison_figure(RESULTS[:2], lambda r: r.headline, "eval comparison", rules)
    assert [ax.get_title() for ax in figure.axes] == ["accuracy\n\u2193 lower is better"]


def test_the_chart_is_a_png_and_nothing_to_draw_is_none():
    png = charts.comparison_bars(RESULTS, lambda r: r.headline, "eval comparison")
    assert png is not None and base64.b64decode(png).startswith(b"\x89PNG")
    assert charts.comparison_bars(RESULTS, lambda r: None, "eval comparison") is None


def test_names_with_dollar_signs_are_drawn_as_typed_not_as_mathtext():
    """`$\\frac$` is invalid mathtext (drawing it raised) and `$x^2$` would be typeset: both are
    names, shown as typed in the titles, tick labels and legend of a figure drawn later."""
    results = [_result(model, "t$\\frac$", "acc$x^2$", 0.5) for model in ("m$a$", "m$b$")]
    figure = charts.comparison_figure(results, lambda r: r.headline, "$eval$")
    figure.canvas.draw()  # outside the chart function: texts keep what they were made with
    texts = [text for text in figure.findobj(Text) if text.get_text()]  # titles, ticks, legend
    shown = {text.get_text().split("\n")[0] for text in texts}
    assert {"$eval$", "acc$x^2$", "t$\\frac$", "m$a$", "m$b$"} <= shown
    assert not any(text.get_parse_math() for text in texts)
    png = charts.comparison_bars(results, lambda r: r.headline, "$eval$")
    assert png is not None and base64.b64decode(png).startswith(b"\x89PNG")
