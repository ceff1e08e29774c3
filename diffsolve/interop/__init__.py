"""Drop-in interfaces to other diffusion libraries' calling conventions (imported on demand, never by
``import diffsolve``): :mod:`diffsolve.interop.kdiffusion` has k-diffusion-style ``sample_*`` functions."""
