"""Code generation: print derived tableaux as Python/Numba modules (build time; imports SymPy).

``emit.generate(tableau, directory=None) -> Path`` writes a content-hashed module (default: the user cache,
``DIFFSOLVE_CACHE_DIR``), ``emit.load(path)`` imports it; ``catalog`` regenerates ``diffsolve/_generated``
(``python -m diffsolve.codegen.catalog``).
"""
