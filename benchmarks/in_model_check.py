"""A tuned compile against the templates in one process: per tuned task and end to end.

    python benchmarks/in_model_check.py --model gpt2 --db /tmp/gpt2_s15/gpt2.db [--rounds 15] [--runs 20]

Compiles the model with the database (``tcomp.compile(db=...)``: the records it applies after
the in-model verdicts, ``tuning/in_model.py``) and with the templates (``schedule="template"``),
then, in this one process: per-step medians of both modules profiled in turns (``--rounds``
rounds, as the verification times them), summed per tuned task, over the tuned steps and over
the other steps (what the tuned kernels leave their neighbours), and ``--runs`` end-to-end runs of
each, in turns. Runs of separate processes (``tune_models.py``, ``interleave.py``) also differ by
where each process's memory lies; here both modules share the process.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from model_zoo import MODEL_NAMES, export_model  # noqa: E402


def main() -> None:
    import tcomp
    from tcomp.tuning.in_model import interleaved_step_times, random_feeds, tuned_steps

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gpt2", choices=MODEL_NAMES)
    parser.add_argument("--db", required=True)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/tcomp-bench-models"))
    args = parser.parse_args()
    path = str(export_model(args.model, args.cache_dir))
    tuned = tcomp.compile(path, db=args.db)
    template = tcomp.compile(path, schedule="template")
    feeds = random_feeds(template)
    t, b = interleaved_step_times([tuned, template], feeds, args.rounds)
    steps = tuned_steps(tuned)
    for workload, indices in steps.items():
        print(f"task {workload[:10]} x{len(indices)}: tuned {sum(t[i] for i in indices) * 1e3:8.3f} ms, "
              f"template {sum(b[i] for i in indices) * 1e3:8.3f} ms in the model")
    inside = {i for indices in steps.values() for i in indices}
    others = [i for i in range(len(t)) if i not in inside]
    print(f"tuned steps: {sum(t[i] for i in inside) * 1e3:.3f} vs {sum(b[i] for i in inside) * 1e3:.3f} ms; other "
          f"steps: {sum(t[i] for i in others) * 1e3:.3f} vs {sum(b[i] for i in others) * 1e3:.3f} ms; all steps: "
          f"{sum(t) * 1e3:.2f} vs {sum(b) * 1e3:.2f} ms (tuned vs template)")
    runs: dict = {"tuned": [], "template": []}
    modules = [("tuned", tuned), ("template", template)]
    for r in range(args.runs):
        for name, module in modules if r % 2 == 0 else modules[::-1]:
            start = time.perf_counter()
            module.run(feeds)
            runs[name].append(time.perf_counter() - start)
    print(f"end to end, {args.runs} runs each in turns: tuned {np.median(runs['tuned']) * 1e3:.2f} ms, "
          f"template {np.median(runs['template']) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
