"""Only the C kernel is declared here (setuptools' pyproject form is still experimental);
everything else is in pyproject.toml.

Optional: without a C compiler the install still succeeds and erasure coding falls back to
zfec's own kernel, which gives the same bytes, ~4x slower (cssm_desktop/core/erasure.py).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("cssm_desktop._gf256", ["cssm_desktop/_gf256.c"], optional=True)])
