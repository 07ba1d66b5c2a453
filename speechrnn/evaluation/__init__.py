"""Evaluation: batched inference on a split, metrics, and the report files."""
