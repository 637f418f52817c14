"""`lab simulate`: seeded, deterministic discrete-event models of two labs' failure modes.

- `retries`: optimistic-concurrency contention under five backoff strategies (Marc
  Brooker, "Exponential Backoff and Jitter", AWS Architecture Blog 2015).
- `overload`: the overload lab's queue (open-loop arrivals, a worker pool, client
  timeouts and retries, a trigger) and its fixes; sweeps draw the hysteresis.
- `overload_lab`: the overload lab's variants as the model's parameters.
- `plots`: the figures; `cli`: the subcommand.

Pure Python plus numpy (random draws in blocks); no lab's services run. This package
is not the engine: it may read a lab's scenario, and the engine's parser only hands the
subcommand to `cli`.
"""
