"""Stage 6, results. Takes the records runs wrote; gives their identity and cohorts (identity.py),
the evidence and verdict per claim (verdict.py, with stats.py), the leaderboard (table.py), comparisons
(compare.py), audit flags on the specs (audit.py), plots (plot.py) and a pandas DataFrame
(dataframe.py). Reads records and caches only: nothing here loads PyTorch."""
