"""Training orchestration: `chief train`.

Runs a project's plan through the `tinker` SDK on the local engine or Tinker's cloud:
supervised chat SFT, prompt distillation, RL with verifiable rewards and DPO; inline
evaluators; periodic checkpoints registered with lineage; exact resume after a crash.
Imports `planning` (the project and plan), `evals` (inline evaluators) and `registry`.
"""
