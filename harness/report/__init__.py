"""Results read back from the MLflow store: `python -m harness.report [--plots]`.

- `command`: the command line.
- `load`: runs and metric histories into typed pandas frames.
- `stats`: means, spreads and tests over seeds.
- `tables`: leaderboard, ablation and excluded-runs tables.
- `pool`: which runs a cell may pool (the same experiment but for the seed).
- `format`: their Markdown, LaTeX, CSV and terminal renderings; `html`: the static page.
- `published`: the papers' numbers (`results/published_results.csv`).
- `figures`: gathers each figure's data; `plots` draws it with seaborn.

Importing this package imports nothing; torch and the models load only to draw model figures.
"""
