"""Hyperparameter tuning: the Optuna sweeper (`hydra/sweeper=optuna`, `sweeper`), its search
space in Hydra's override syntax (`space`) and `ssm-bench tune` (`command`), which runs one study
per model and writes their best settings as an experiment config (`export`)."""
