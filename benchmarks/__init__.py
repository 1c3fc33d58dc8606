"""The benchmarks of rda-optax, each a module run from the repository root
as ``python -m benchmarks.NAME [--help]`` (the repository on ``sys.path``,
no path edits): what each measures and its results are in its docstring
and ``benchmarks/results/``. One module is no benchmark: :mod:`.sweeps`,
the runner of the sweeps of ``python -m train`` runs (``frontier``,
``transformers_nm``)."""
