"""Loading a script of tools/ as a module in a test (the tools are not a package).

``load_tool("release_numbers")`` or ``load_tool("mutations/privacy")`` runs
``tools/<name>.py`` once per session and returns the module, registered in
``sys.modules`` (dataclasses look their module up) under ``doorpi_tool_<name>``.
``tools/`` is put on ``sys.path`` first, as it is when the script runs, so a
tool's ``import docsection`` finds tools/docsection.py.
"""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / "tools"


@cache
def load_tool(name: str) -> ModuleType:
    """The module of ``tools/<name>.py``; FileNotFoundError naming the path if absent."""
    path = TOOLS / f"{name}.py"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such tool")
    if str(TOOLS) not in sys.path:
        sys.path.insert(0, str(TOOLS))
    mod_name = "doorpi_tool_" + name.replace("/", "_")
    spec = importlib.util.spec_from_file_location(mod_name, path)
    assert spec is not None and spec.loader is not None, path
    mod = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = mod
    spec.loader.exec_module(mod)
    return mod
