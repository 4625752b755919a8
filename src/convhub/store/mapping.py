"""Rows <-> domain objects, declared once per table.

A ``Mapper`` pairs a dataclass with a table: each field its constructor takes is a column (of
the same name unless renamed), and a field whose Python value differs from its column's (a JSON
map kept as text, an enum kept as a number) names a ``Codec``. Selects use ``columns`` in field
order, so a row becomes an object by position, and only the fields that need it are decoded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from enum import IntEnum
from typing import Any, Generic, TypeVar

import orjson
from sqlalchemy import Column, Table

M = TypeVar("M")


@dataclasses.dataclass(frozen=True, slots=True)
class Codec:
    encode: Callable[[Any], Any]
    decode: Callable[[Any], Any]


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _strings(text: str) -> tuple[str, ...]:
    return () if text == "[]" else tuple(orjson.loads(text))


def _map(text: str) -> Any:
    return {} if text == "{}" else orjson.loads(text)


JSON = Codec(_dumps, _map)
STRINGS = Codec(lambda v: _dumps(list(v)), _strings)
FLAG = Codec(int, bool)


def enum(kind: type[IntEnum]) -> Codec:
    members = {member.value: member for member in kind}
    return Codec(int, members.__getitem__)


class Mapper(Generic[M]):
    def __init__(
        self,
        table: Table,
        model: type[M],
        *,
        renamed: Mapping[str, str] | None = None,
        codecs: Mapping[str, Codec] | None = None,
    ) -> None:
        renamed = renamed or {}
        codecs = codecs or {}
        # A field the constructor does not take is not a column (``Conversation.encoded``).
        fields = [f.name for f in dataclasses.fields(model) if f.init]  # type: ignore[arg-type]
        self.model = model
        self.fields = tuple(fields)
        self.column_names = {name: renamed.get(name, name) for name in fields}
        self.columns: tuple[Column[Any], ...] = tuple(
            table.c[self.column_names[name]] for name in fields
        )
        self._decoders = tuple(
            (index, codecs[name].decode) for index, name in enumerate(fields) if name in codecs
        )
        self._encoders = {name: codecs[name].encode for name in fields if name in codecs}
        self._positions = {self.column_names[name]: index for index, name in enumerate(fields)}
        unknown = (set(renamed) | set(codecs)) - set(fields)
        if unknown:
            raise ValueError(f"{model.__name__} has no fields {sorted(unknown)}")

    def load(self, row: Any) -> M:
        if not self._decoders:
            return self.model(*row)
        values = list(row)
        for index, decode in self._decoders:
            values[index] = decode(values[index])
        return self.model(*values)

    def patched(self, row: Sequence[Any], values: Mapping[str, Any]) -> list[Any]:
        """``row`` (as ``load`` takes it) with ``values`` (column name -> stored value, as ``dump``
        gives them) in place."""
        patched = list(row)
        for name, value in values.items():
            patched[self._positions[name]] = value
        return patched

    def dump(self, obj: M, fields: tuple[str, ...] | None = None) -> dict[str, Any]:
        """Column name -> stored value, for ``fields`` (all by default)."""
        out: dict[str, Any] = {}
        encoders = self._encoders
        for name in self.fields if fields is None else fields:
            value = getattr(obj, name)
            encode = encoders.get(name)
            out[self.column_names[name]] = value if encode is None else encode(value)
        return out
