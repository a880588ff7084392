"""The auto-scheduler: design spaces, cost model, evolutionary search, measurement, records.

    workload.py   workload_key(func): a hash of a PrimFunc's structure (identical kernels, one key)
    space.py      design_space(func, target) -> [Trace]: sketches built by rules/ (multi-level
                  tiling, auto-inline, cache-write, rfactor, parallel/vectorize/unroll,
                  tensorize); each is a trace with sampling instructions (Trace.apply_to(func,
                  resample=True, seed=s) draws one candidate)
    measure.py    Measurer: candidates built and timed in isolated worker processes with time
                  limits; crash, hang, build error and wrong output (vs the unscheduled kernel
                  on random inputs) are recorded, never chosen
    database.py   Database: tuning records (JSON lines) keyed by workload and target; best()
    search.py     evolutionary search over sampled decisions, scored by a cost model
                  (tcomp.costmodel), eps-greedy, measured in batches
    tuner.py      tune(func, target, trials, db); build(func, db=...) applies the best record
    in_model.py   after a model's tuning: its tuned kernels timed in the model against the
                  templates; a verdict per task in the database, "rejected" keeps the template
"""
