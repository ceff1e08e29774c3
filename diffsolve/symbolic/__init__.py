"""Symbolic engine (SymPy; never imported by runtime modules).

``multistep.derive_multistep`` / ``singlestep.derive_singlestep`` derive checked :class:`tableau.SymbolicTableau`
objects from ``quadrature`` (exponential quadrature of Lagrange interpolants against the moment functions of
``psi``), ``forms`` (data / noise parameterisation) and ``covariance`` (stage-noise laws); ``checks`` holds the
symbolic checks they run; ``schedule`` is the schedule calculus.
"""
