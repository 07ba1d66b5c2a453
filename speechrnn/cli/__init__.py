"""Every entry point: the Hydra tasks and argparse mains of the console scripts, nothing else.

No library module imports this package (docs/layout.md: cli > training, evaluation, inference >
data, model > basics).
"""
