"""Installs rules/ and samples/ under <prefix>/share/advisor so an installed package finds them,
and builds the perf script parser's hot loop in C (advisor/parse/_fast_blocks.c). That build is
optional: without a C compiler and Python's headers the package installs all the same, and the
parser runs its pure-Python loop (`advisor.parse.perf_script.HOT_LOOP` says which)."""

import os

from setuptools import Extension, setup


def data_files(top):
    out = []
    for root, _dirs, files in os.walk(top):
        if files:
            out.append((os.path.join("share", "advisor", root), [os.path.join(root, f) for f in files]))
    return out


setup(data_files=data_files("rules") + data_files("samples"),
      ext_modules=[Extension("advisor.parse._fast_blocks", ["advisor/parse/_fast_blocks.c"],
                             extra_compile_args=["-O2"], optional=True)])
