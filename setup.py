"""Installs rules/ and samples/ under <prefix>/share/advisor so an installed package finds them."""

import os

from setuptools import setup


def data_files(top):
    out = []
    for root, _dirs, files in os.walk(top):
        if files:
            out.append((os.path.join("share", "advisor", root), [os.path.join(root, f) for f in files]))
    return out


setup(data_files=data_files("rules") + data_files("samples"))
