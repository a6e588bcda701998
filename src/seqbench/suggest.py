""""Did you mean" for a misspelled name (a model, a dataset, a settings key). Standard library only:
params validation and the CLI import it before anything heavy."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin


def closest(value: str, choices: Iterable[str]) -> str | None:
    """The known name nearest to `value`, if one is near enough to be a typo of it."""
    names = [str(name) for name in choices]
    matches = difflib.get_close_matches(str(value), names, n=1, cutoff=0.6)
    if not matches:  # a different case or a dash for an underscore: difflib scores those too low
        folded = {name.lower().replace("-", "_"): name for name in names}
        matches = difflib.get_close_matches(str(value).lower().replace("-", "_"), list(folded), n=1, cutoff=0.6)
        matches = [folded[m] for m in matches]
    return matches[0] if matches else None


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' or '' when nothing known is close."""
    match = closest(value, choices)
    return f" (did you mean {match!r}?)" if match is not None else ""


def unknown(what: str, values: str | list[str], choices: Iterable[str]) -> str:
    """"unknown dataset 'imbd' (did you mean 'imdb'?); known: ..." for one name, "unknown models [...]
    (did you mean ...?); known: ..." for a list (`what` is the word for one or for the list)."""
    choices = [str(c) for c in choices]
    if isinstance(values, str):
        return f"unknown {what} {values!r}{did_you_mean(values, choices)}; known: {', '.join(choices)}"
    hints = [f"{closest(v, choices)!r} for {v!r}" for v in values if closest(v, choices) is not None]
    hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
    return f"unknown {what} {list(values)}{hint}; known: {', '.join(choices)}"


def _unwrap(annotation: Any) -> Any:
    while get_origin(annotation) in (Annotated, Union, UnionType):  # SerializeAsAny[X], X | None
        annotation = next(arg for arg in get_args(annotation) if arg is not type(None))
    return annotation


def allowed_keys(model: type, loc: tuple) -> list[str]:
    """The keys a pydantic settings model accepts where an error location points (the key is its last part)."""
    node = _unwrap(model)
    for part in loc[:-1]:
        if get_origin(node) in (dict, list):
            node = get_args(node)[-1]  # the part is a key or an index: its value's type
        elif part in getattr(node, "model_fields", {}):
            node = node.model_fields[part].annotation
        else:
            return []
        node = _unwrap(node)
    return list(getattr(node, "model_fields", {}))
