"""Stage 5, measurement. Takes a model (or its `[model]` section, or a saved checkpoint); gives its
parameters and MACs (size.py), batch-1 latency (latency.py), training FLOPs and cost estimates
(compute.py), training throughput (speed.py), a saved model's accuracy (evaluation.py: `harness eval`),
and the `harness measure` table (summary.py). Counts and timings are cached, so tables read them without
PyTorch."""
