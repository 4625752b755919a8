"""How a wire declaration spells a field's JSON type, and its one interpretation.

Requests and results are ``TypedDict`` classes whose annotations use only these forms:

- ``str``, ``bool``, ``Int32``, ``Int64`` (a bare ``int`` is refused: every integer says its width);
- ``Literal["a", "b"]`` and ``Annotated[Literal[0, 1], Width(32)]``: only those values;
- ``dict[str, str]`` (an ``Ext`` map);
- ``list[F]`` of any form, and ``F | None`` as an element (the Go SDK sends ``null`` elements);
- another ``TypedDict`` (a nested object);
- ``Annotated[F, Doc("...")]`` to describe a field, ``Annotated[F, Minimum(1)]`` to bound it;
- ``DigitsId`` and ``FreeReference``, Coze's lenient forms (the wire allows two JSON types; the
  reader hands the handler one Python type).

``form_of`` turns an annotation into a ``Form``; the server's field reader and the OpenAPI
generator both walk forms, so what is checked and what is documented cannot drift apart. This
module imports nothing outside the standard library: the client ships it.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NotRequired, Required, Union, get_args, get_origin


@dataclass(frozen=True, slots=True)
class Width:
    bits: int

    @property
    def low(self) -> int:
        return -(1 << (self.bits - 1))

    @property
    def high(self) -> int:
        return (1 << (self.bits - 1)) - 1


@dataclass(frozen=True, slots=True)
class Doc:
    text: str


@dataclass(frozen=True, slots=True)
class Minimum:
    value: int


@dataclass(frozen=True, slots=True)
class Digits:
    """Coze: an ID sent as a JSON string of ASCII digits or a JSON integer (``0``, ``"0"`` and
    ``""`` mean none), read as a Python ``int``."""


@dataclass(frozen=True, slots=True)
class Reference:
    """Coze: a free reference such as ``bot_id``, sent as a JSON string or integer, read as a
    ``str``."""


Int32 = Annotated[int, Width(32)]
Int64 = Annotated[int, Width(64)]
DigitsId = Annotated[int, Digits()]
FreeReference = Annotated[str, Reference()]


@dataclass(frozen=True, slots=True)
class Form:
    """One field's JSON type. ``kind`` is ``integer``, ``string``, ``boolean``, ``string_map``,
    ``array`` (``item`` set), ``object`` (``fields`` set, named by ``name``), ``id`` or
    ``reference``."""

    kind: str
    bits: int = 0
    item: Form | None = None
    nullable: bool = False  # ``null`` is a value of its own here (array elements only)
    name: str = ""
    fields: tuple[Field, ...] = ()
    minimum: int | None = None
    doc: str = ""
    enum: tuple[Any, ...] = ()  # the only values allowed (a ``Literal``); () allows any

    @property
    def bounds(self) -> tuple[int, int]:
        """An integer's lowest and highest value, by its width."""
        width = Width(self.bits)
        return width.low, width.high


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    form: Form
    required: bool


_OBJECTS: dict[type, Form] = {}


def is_typed_dict(annotation: Any) -> bool:
    return isinstance(annotation, type) and typing.is_typeddict(annotation)


def object_form(declared: type) -> Form:
    """The form of a ``TypedDict`` class: its fields in declaration order."""
    found = _OBJECTS.get(declared)
    if found is not None:
        return found
    hints = typing.get_type_hints(declared, include_extras=True)
    total: bool = declared.__total__  # type: ignore[attr-defined]
    fields = tuple(
        Field(name, form_of(_unwrap_required(hint), where=f"{declared.__name__}.{name}"),
              _required(hint, total))
        for name, hint in hints.items()
    )  # fmt: skip
    form = Form("object", name=declared.__name__, fields=fields, doc=declared.__doc__ or "")
    check_widths(form)
    _OBJECTS[declared] = form
    return form


def _required(hint: Any, total: bool) -> bool:
    # Not ``__required_keys__``: under ``from __future__ import annotations`` Python 3.11 cannot
    # see a ``NotRequired`` there and calls every key required.
    origin = get_origin(hint)
    if origin is NotRequired:
        return False
    return origin is Required or total


def _unwrap_required(hint: Any) -> Any:
    while get_origin(hint) in (Required, NotRequired):
        hint = get_args(hint)[0]
    return hint


def form_of(annotation: Any, *, where: str = "") -> Form:
    origin = get_origin(annotation)
    if origin is Annotated:
        inner, *extras = get_args(annotation)
        form = form_of(inner, where=where)
        for extra in extras:
            if isinstance(extra, Digits):
                form = _replace(form, kind="id", bits=64)
            elif isinstance(extra, Reference):
                form = _replace(form, kind="reference")
            elif isinstance(extra, Width) and form.kind == "integer":
                form = _replace(form, bits=extra.bits)
            elif isinstance(extra, Doc):
                form = _replace(form, doc=extra.text)
            elif isinstance(extra, Minimum):
                form = _replace(form, minimum=extra.value)
        return form
    if origin is Literal:
        values = get_args(annotation)
        if all(type(v) is str for v in values):
            return Form("string", enum=values)
        if all(type(v) is int for v in values):
            return Form("integer", enum=values)  # its width comes from the Annotated around it
        raise TypeError(f"{where}: a Literal of strings or of integers only")
    if annotation is str:
        return Form("string")
    if annotation is bool:
        return Form("boolean")
    if annotation is int:
        return Form("integer")  # its width comes from the Annotated around it, checked below
    if origin is dict and get_args(annotation) == (str, str):
        return Form("string_map")
    if origin is list:
        (item,) = get_args(annotation)
        nullable = False
        if origin_is_union(item):
            members = [a for a in get_args(item) if a is not type(None)]
            if len(members) != 1 or len(get_args(item)) != 2:
                raise TypeError(f"{where}: only `X | None` unions are declarable")
            item, nullable = members[0], True
        item_form = form_of(item, where=f"{where}[]")
        return Form("array", item=_replace(item_form, nullable=nullable))
    if is_typed_dict(annotation):
        return object_form(annotation)
    raise TypeError(f"{where}: {annotation!r} is not a declarable wire type")


def origin_is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType)


def _replace(form: Form, **changes: Any) -> Form:
    values = {name: getattr(form, name) for name in Form.__slots__}
    values.update(changes)
    return Form(**values)


def check_widths(form: Form, where: str = "") -> None:
    """Every integer in ``form`` declares its width (``Int32`` or ``Int64``)."""
    if form.kind == "integer" and form.bits == 0:
        raise TypeError(f"{where or form.name}: declare Int32 or Int64, not int")
    if form.item is not None:
        check_widths(form.item, f"{where}[]")
    for field in form.fields:
        check_widths(field.form, f"{form.name}.{field.name}")
