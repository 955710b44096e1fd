"""The doctrine as code: `chief init` and `chief plan`.

Owns the project file `chief.toml` (schema, validation, defaults), reading and validating the
user's training data, counting tokens with the model's renderer, and turning data + use case
+ base model into a plan (LoRA rank and capacity, learning rate, placement, batch and steps,
cost/time estimates, the eval suite) where every number carries the rule and source behind it.
Imports `models` (tokenizers, configs, renderers) and the eval-suite schema from `evals`.
"""
