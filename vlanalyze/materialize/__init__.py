"""The materialize step: turn a selection into files.

Reads selections (files with a ``media_id`` column), writes query results and whole
exports as CSV/Parquet/JSON, and (plan, then apply) image folders and training
layouts. Every write is atomic and never replaces a user's file unasked.

``vlanalyze.materialize`` is both this package and the public function
:func:`vlanalyze.materialize._apply.materialize`: the package is callable, because
Python puts a subpackage on its parent under the same name, whichever is imported first.
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from vlanalyze.materialize._apply import materialize

        return materialize(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
