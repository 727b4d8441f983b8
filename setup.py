"""Only the C kernel is declared here (setuptools' pyproject form is still experimental);
everything else is in pyproject.toml.

Optional: without a C compiler the install still succeeds and erasure coding falls back to
zfec's own kernel, which gives the same bytes, ~4x slower (cssm_desktop/core/erasure.py).
"""

import os

from setuptools import Extension, setup

# CSSM_NO_EXTENSION=1 installs without the kernel, as a machine without a compiler would:
# CI runs the whole suite that way too, so "no compiler needed" stays true.
KERNEL = [] if os.environ.get("CSSM_NO_EXTENSION") else [
    Extension("cssm_desktop._gf256", ["cssm_desktop/_gf256.c"], optional=True)]

setup(ext_modules=KERNEL)
