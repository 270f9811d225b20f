"""The evaluation harness: ``python evals/run.py --mode all`` compares gist-memory's answer modes
(rag, gist, hybrid, full) on one dataset, model and machine, and writes results.json, report.md
and plots. ``evals.run.evaluate(EvalConfig(...), model=..., embedder=...)`` does the same from
Python with objects instead of names."""
