"""Evaluation in three layers: `chief eval`, `chief eval-offline`, Inspect AI integration.

Owns the eval-suite schema (`suite.py`), graders, evaluators usable inline by cookbook
training loops, the Inspect AI model provider and tasks, the safety and calibration suites,
the code-execution sandbox, and the statistics (Wilson and bootstrap intervals) every result
carries. Reaches models only through the `tinker` SDK; records results in the `registry`.
"""
