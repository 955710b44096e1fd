"""The doctrine as code: `chief init` and `chief plan`.

Owns the project file `chief.toml` (schema, validation, defaults), reading and validating the
user's training data, counting tokens with the model's renderer, and turning data + use case
+ base model into a plan (LoRA rank and capacity, learning rate, placement, batch and steps,
cost/time estimates, the eval suite) where every number carries the rule and source behind it.
Imports `models` (tokenizers, configs, renderers), the eval-suite schema from `evals` and the
`[gate]` rules from `registry.rules`.

Public API (other capabilities import from here):
    CONFIG_FILENAME, ProjectConfig, Project, load_project, parse_config      (planning.config)
    save_project                                                        (planning.toml_writer)
    ChatMessage, Conversation, PromptAnswer, Preference, RLPrompt, detect_format, read_records,
    read_sft_conversations, read_conversations, read_prompt_answers, read_preferences,
    read_rl_prompts                                                    (planning.data_formats)
    make_plan, Plan                                                         (planning.planner)
    render_plan_markdown                                              (planning.plan_markdown)
    init_project                                                      (planning.project_files)
The last four load on first use (they import the tokenizers and the cookbook).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tinker_chief.lazy_exports import lazy_attribute
from tinker_chief.planning.config import (
    CONFIG_FILENAME,
    Project,
    ProjectConfig,
    load_project,
    parse_config,
)
from tinker_chief.planning.data_formats import (
    ChatMessage,
    Conversation,
    Preference,
    PromptAnswer,
    RLPrompt,
    detect_format,
    read_conversations,
    read_preferences,
    read_prompt_answers,
    read_records,
    read_rl_prompts,
    read_sft_conversations,
)
from tinker_chief.planning.toml_writer import save_project

if TYPE_CHECKING:
    from tinker_chief.planning.plan_markdown import render_plan_markdown
    from tinker_chief.planning.planner import Plan, make_plan
    from tinker_chief.planning.project_files import init_project

# Heavier modules (tokenizers, cookbook) load on first use, so importing the schema stays cheap.
_EXPORTS = {
    "make_plan": "tinker_chief.planning.planner",
    "Plan": "tinker_chief.planning.planner",
    "render_plan_markdown": "tinker_chief.planning.plan_markdown",
    "init_project": "tinker_chief.planning.project_files",
}


__getattr__ = lazy_attribute(__name__, _EXPORTS)


__all__ = [
    "CONFIG_FILENAME",
    "ChatMessage",
    "Conversation",
    "Plan",
    "Preference",
    "Project",
    "ProjectConfig",
    "PromptAnswer",
    "RLPrompt",
    "detect_format",
    "init_project",
    "load_project",
    "make_plan",
    "parse_config",
    "read_conversations",
    "read_preferences",
    "read_prompt_answers",
    "read_records",
    "read_rl_prompts",
    "read_sft_conversations",
    "render_plan_markdown",
    "save_project",
]
