"""Modules that can be called like the function they are named after.

``robust_attn.sweep``, ``robust_attn.study`` and ``robust_attn.transfer`` are both a public function
(``ra.sweep(...)``) and a module or package (``robust_attn.sweep.engine``). Importing the module binds
it to the package attribute, which would shadow the lazily exported function, so that whether
``ra.sweep(...)`` works depended on what had been imported before. Making the module itself callable
removes that order dependence: ``ra.sweep`` is the module, and calling it calls the function.
"""
from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any


def make_callable(module_name: str, function: Callable[..., Any]) -> None:
    """Make the module ``module_name`` callable as ``function`` (with its docstring for ``help``)."""

    class CallableModule(types.ModuleType):
        __doc__ = function.__doc__

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return function(*args, **kwargs)

    sys.modules[module_name].__class__ = CallableModule
