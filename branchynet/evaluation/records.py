"""Dataclasses that cross modules as JSON: ``Record.to_json`` and ``Record.from_json``.

A ``Record`` subclass is a keyword-only dataclass whose fields are annotated with plain types:
bool, int, float, str, other ``Record`` types, ``list[T]``, ``dict[str, T]`` and ``Optional[T]``.
``to_json`` gives nested JSON-able values; ``from_json`` checks them against the annotations, so a
file of another layout is a clear error naming the field, not a ``KeyError`` far away.
"""
import dataclasses
import typing


class Record:
    """Base of the JSON-able dataclasses (see the module docstring)."""

    def to_json(self):
        return {f.name: _dump(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, data, where=None):
        return _load(cls, data, where or cls.__name__)


def _dump(value):
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, (list, tuple)):
        return [_dump(v) for v in value]
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    return value


def _load_record(cls, data, where):
    if not isinstance(data, dict):
        raise ValueError("%s: expected an object for %s, got %r" % (where, cls.__name__, type(data).__name__))
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError("%s: unknown fields %s for %s" % (where, unknown, cls.__name__))
    values = {}
    for name, f in fields.items():
        if name in data:
            values[name] = _load(hints[name], data[name], "%s.%s" % (where, name))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ValueError("%s: missing field %r of %s" % (where, name, cls.__name__))
    return cls(**values)


def _load(tp, data, where):
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union:
        if data is None and type(None) in args:
            return None
        return _load(next(a for a in args if a is not type(None)), data, where)
    if origin is list:
        if not isinstance(data, list):
            raise ValueError("%s: expected a list, got %r" % (where, type(data).__name__))
        return [_load(args[0], v, "%s[%d]" % (where, i)) for i, v in enumerate(data)]
    if origin is dict:
        if not isinstance(data, dict):
            raise ValueError("%s: expected an object, got %r" % (where, type(data).__name__))
        return {k: _load(args[1], v, "%s[%r]" % (where, k)) for k, v in data.items()}
    if isinstance(tp, type) and issubclass(tp, Record):
        return _load_record(tp, data, where)
    if tp is float and isinstance(data, (int, float)) and not isinstance(data, bool):
        return float(data)
    if tp is typing.Any or isinstance(data, tp):
        return data
    raise ValueError("%s: expected %s, got %r" % (where, tp.__name__, data))
