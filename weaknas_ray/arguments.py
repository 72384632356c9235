"""Config settings checked against the signature of what they configure (a benchmark loader, a method,
a predictor), so that a typo or a wrong type stops the run with its key path before anything runs,
instead of failing deep inside a worker with a Python error."""

from __future__ import annotations

import collections.abc
import inspect
import os
import sys
import types
import typing
from collections.abc import Callable
from typing import Any

from weaknas_ray.exceptions import ConfigError

_SCALARS: dict[type, tuple[type, ...]] = {int: (int,), float: (int, float), str: (str,), bool: (bool,)}


def check_arguments(
    target: Callable | type,
    values: dict[str, Any],
    where: str,
    what: str,
    *,
    counts: bool = False,
    hidden: tuple[str, ...] = ("self",),
) -> None:
    """Check keyword ``values`` against ``target``'s parameters and their annotations.

    Args:
        target: the function, or class (its ``__init__``), the values are passed to.
        values: the settings from a config.
        where: their key path, e.g. ``"methods.weaknas"`` (errors name ``methods.weaknas.<key>``).
        what: the thing configured, for messages, e.g. ``"method 'weaknas'"``.
        counts: integer settings count something (>= 1) and number settings are >= 0, as for every
            method and predictor setting.
        hidden: parameters a config does not set (listed neither as accepted nor checked).

    Raises:
        ConfigError: an unknown key (listing the accepted ones), a value of the wrong type or out of range.
    """
    params, takes_any = parameters(target)
    accepted = sorted(k for k in params if k not in hidden)
    for key, value in values.items():
        if key not in params or key in hidden:
            if takes_any and key not in hidden:
                continue
            raise ConfigError(f"{where}.{key}: not a setting of {what}; its settings: {accepted}")
        hint = params[key]
        if _matches(hint, value) is False:
            raise ConfigError(f"{where}.{key}: expected {_describe(hint)}, got {type(value).__name__} {value!r}")
        if counts and isinstance(value, (int, float)) and not isinstance(value, bool):
            floor = 1 if isinstance(value, int) and _matches(hint, 0.5) is False else 0
            if value < floor:
                kind = "an integer >= 1" if floor else "a number >= 0"
                raise ConfigError(f"{where}.{key}: expected {kind}, got {value!r}")


def parameters(target: Callable | type) -> tuple[dict[str, Any], bool]:
    """``{name: resolved annotation}`` of ``target``'s keyword parameters, and whether it takes any
    keyword. A class whose ``__init__`` passes ``**settings`` on to its base's gets the base's too."""
    functions = [target]
    if isinstance(target, type):
        functions = [vars(cls)["__init__"] for cls in target.__mro__ if "__init__" in vars(cls)]
    params: dict[str, Any] = {}
    for function in functions:
        namespace = vars(sys.modules[function.__module__])
        takes_any = False
        for name, param in inspect.signature(function).parameters.items():
            if param.kind is inspect.Parameter.VAR_KEYWORD:
                takes_any = True
            elif param.kind is not inspect.Parameter.VAR_POSITIONAL:
                params.setdefault(name, _resolve(param.annotation, namespace))
        if not takes_any or not isinstance(target, type):
            return params, takes_any
    return params, True


def _resolve(annotation: Any, namespace: dict[str, Any]) -> Any:
    """The annotation as a type; ``None`` when absent or not resolvable here (then the value is not checked)."""
    if annotation is inspect.Parameter.empty:
        return None
    if isinstance(annotation, str):
        try:
            return eval(annotation, namespace)  # noqa: S307 - our own modules' annotations
        except Exception:  # a name imported only for type checkers
            return None
    return annotation


def _members(hint: Any) -> tuple[Any, ...] | None:
    origin = typing.get_origin(hint)
    return typing.get_args(hint) if origin in (typing.Union, types.UnionType) else None


def _matches(hint: Any, value: Any) -> bool | None:
    """Whether ``value`` fits ``hint``; ``None`` when the hint is not one this check understands."""
    if (members := _members(hint)) is not None:
        verdicts = [_matches(m, value) for m in members]
        return True if True in verdicts else None if None in verdicts else False
    if hint is type(None):
        return value is None
    if hint in _SCALARS:
        return isinstance(value, _SCALARS[hint]) and (hint is bool or not isinstance(value, bool))
    if hint is os.PathLike:
        return isinstance(value, (str, os.PathLike))
    origin = typing.get_origin(hint) or hint
    if origin in (dict, collections.abc.Mapping):
        return isinstance(value, dict)
    if origin in (list, tuple, collections.abc.Sequence):
        if not isinstance(value, (list, tuple)):
            return False
        (item, *_) = typing.get_args(hint) or (None,)
        verdicts = [_matches(item, v) for v in value]
        return False not in verdicts
    return None


def _describe(hint: Any) -> str:
    if (members := _members(hint)) is not None:
        return " or ".join(_describe(m) for m in members)
    if hint is type(None):
        return "null"
    origin = typing.get_origin(hint) or hint
    if origin in (list, tuple, collections.abc.Sequence):
        (item, *_) = typing.get_args(hint) or (None,)
        return f"a list of {_describe(item)}" if item is not None else "a list"
    if hint is os.PathLike:
        return "a path"
    return "a mapping" if origin in (dict, collections.abc.Mapping) else getattr(hint, "__name__", str(hint))
