"""Reports: `chief report` writes one self-contained HTML file.

Plan summary, learning curves from `metrics.jsonl`, eval comparisons with confidence
intervals, the calibration reliability diagram, safety metrics and registry status, with
every image embedded. Reads the `registry` and run logs; imports no other capability.
"""
