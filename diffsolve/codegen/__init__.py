"""Code generation: print derived tableaux as plain-Python modules (build time; imports SymPy).

``python -m diffsolve.codegen`` regenerates everything under ``diffsolve/_generated`` (``--check``: staleness
only).  ``emit.generate(tab, directory=None) -> Path`` writes a content-hashed module (default: the user cache,
``DIFFSOLVE_CACHE_DIR``), ``emit.load(path)`` imports it; ``catalog`` lists the shipped keys and writes the index,
``names`` the solver name <-> catalog key <-> variant tables in it, ``schedules`` the catalog schedules' module.
"""
