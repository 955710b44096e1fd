"""The model registry and its governance rules: `chief registry`, `compare`, `promote`.

A durable SQLite store (versioned schema, WAL, one transaction per change) of models with
lineage, eval runs with per-sample outcomes, status history and an audit log; the promotion
gate that refuses a worse model; and the generated `MODEL_REGISTRY.md`. A pure store: it
imports no other capability of tinker-chief.
"""
