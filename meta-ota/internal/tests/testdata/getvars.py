#!/usr/bin/env python3
# getvars.py RECIPE VAR...: print the values of VARs in RECIPE, expanded, as one JSON object
# on the last line: what bitbake-getvar -r RECIPE --value VAR prints, for many variables at
# the cost of one parse (bitbake's tinfoil). Run it in a build directory, bitbake in PATH.
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(shutil.which('bitbake')))), 'lib'))
import bb.tinfoil  # noqa: E402

with bb.tinfoil.Tinfoil(setup_logging=False) as tinfoil:
    tinfoil.prepare(quiet=3)
    d = tinfoil.parse_recipe(sys.argv[1])
    print(json.dumps({v: d.getVar(v) for v in sys.argv[2:]}))
