"""`chief demo`: the README's main job, end to end on the embedded SmolLM2, as a library.

Owns the demo project (`scaffold.py`: the synthetic secret-code skill, initialised and planned by
the planner, then narrowed to what a 2-core CPU runs in minutes), its compare-then-gate
promotion (`promotion.py`) and the six-step workflow (`workflow.py`: plan, evaluate the base
model, train, evaluate the checkpoint, promote through the gate, write the paper trail). It
composes the other capabilities' public calls and adds no rules of its own: the gate is the
registry's, judged by the project's own suite and `[gate]` rules. A workflow like the others
(`tinker_chief.workflows`), but nothing else imports it; the CLI (`cli/demo.py`) only prints
what `run_demo` reports.

    from tinker_chief.workflows.demo import run_demo
    run = run_demo(Path("chief-demo"), observer, steps=2, base_model="tiny-random-llama")
    run.promotion.prod_ref, run.trail.registry_markdown
"""

from tinker_chief.workflows.demo.promotion import (
    DemoPromotion,
    GateStep,
    promote_better,
    write_registry_markdown,
)
from tinker_chief.workflows.demo.scaffold import (
    CUSTOM_TASK,
    DEMO_NAME,
    DemoProject,
    create_demo_project,
)
from tinker_chief.workflows.demo.workflow import (
    STEPS,
    DemoObserver,
    DemoRun,
    PaperTrail,
    run_demo,
)

__all__ = [
    "CUSTOM_TASK",
    "DEMO_NAME",
    "STEPS",
    "DemoObserver",
    "DemoProject",
    "DemoPromotion",
    "DemoRun",
    "GateStep",
    "PaperTrail",
    "create_demo_project",
    "promote_better",
    "run_demo",
    "write_registry_markdown",
]
