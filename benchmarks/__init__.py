"""The benchmarks of rda-optax, each a module run from the repository root
as ``python -m benchmarks.NAME [--help]`` (the repository on ``sys.path``,
no path edits): what each measures and its results are in its docstring
and ``benchmarks/results/``."""
