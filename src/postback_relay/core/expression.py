"""DynamoDB expressions from attribute names and Python values: the placeholders (``#name``, ``:value``) every
expression needs, and the SET/ADD/REMOVE clauses and condition of one UpdateItem.

Why a builder: each request used to spell its own ExpressionAttributeNames and ExpressionAttributeValues
next to the text that names them, so a placeholder could be used and not defined (or the reverse) and a
reserved word (``status``, ``source``) left unescaped. Here a name or value is written into the text only by
asking for its placeholder, which defines it. Pure (core imports no boto3): the values stay Python values,
and the caller encodes them (``placeholders(to_wire)``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any


class Expression:
    """The placeholders of one request's expressions: every attribute name and value they mention."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def name(self, attribute: str) -> str:
        """The placeholder of ``attribute`` (``#attribute``, or ``#aN`` when it is not an identifier)."""
        placeholder = f"#{attribute}" if attribute.isidentifier() else f"#a{len(self.names)}"
        self.names[placeholder] = attribute
        return placeholder

    def value(self, value: Any, hint: str = "v") -> str:
        """A new placeholder holding ``value`` (``:hintN``: the hint only makes the text readable)."""
        placeholder = f":{hint}{len(self.values)}"
        self.values[placeholder] = value
        return placeholder

    def one_of(self, attribute: str, wanted: Iterable[Any]) -> str:
        """The clause ``attribute IN (…)`` of ``wanted``."""
        return f"{self.name(attribute)} IN ({', '.join(self.value(item) for item in wanted)})"

    def placeholders(self, encode: Callable[[Any], Any]) -> dict[str, Any]:
        """ExpressionAttributeNames and ExpressionAttributeValues (each value encoded), each only when it is not
        empty: DynamoDB refuses an empty one."""
        request: dict[str, Any] = {}
        if self.names:
            request["ExpressionAttributeNames"] = self.names
        if self.values:
            request["ExpressionAttributeValues"] = {name: encode(value) for name, value in self.values.items()}
        return request


class Update(Expression):
    """One UpdateItem's expression and condition, built clause by clause: ``Update().set("a", 1).add("n", 1)
    .remove("lease_token").when("attribute_exists(#pk)")``."""

    def __init__(self) -> None:
        super().__init__()
        self._sets: list[str] = []
        self._adds: list[str] = []
        self._removes: list[str] = []
        self.condition = ""

    def set(self, attribute: str, value: Any, hint: str = "v") -> Update:
        """SET ``attribute`` to ``value``."""
        return self.set_to(attribute, self.value(value, hint))

    def set_once(self, attribute: str, value: Any) -> Update:
        """SET ``attribute`` to ``value`` unless it has a value already (``if_not_exists``)."""
        placeholder = self.name(attribute)
        return self.set_to(attribute, f"if_not_exists({placeholder}, {self.value(value)})")

    def set_to(self, attribute: str, operand: str) -> Update:
        """SET ``attribute`` to an operand written with this expression's placeholders (a function, a path)."""
        self._sets.append(f"{self.name(attribute)} = {operand}")
        return self

    def add(self, attribute: str, value: Any) -> Update:
        """ADD ``value`` to ``attribute`` (a number to a counter, a set to a set)."""
        self._adds.append(f"{self.name(attribute)} {self.value(value)}")
        return self

    def remove(self, *attributes: str) -> Update:
        """REMOVE each of ``attributes``."""
        self._removes += [self.name(attribute) for attribute in attributes]
        return self

    def when(self, condition: str) -> Update:
        """Write only when ``condition`` (written with this expression's placeholders) holds."""
        self.condition = condition
        return self

    @property
    def expression(self) -> str:
        """The UpdateExpression: its SET, ADD and REMOVE clauses."""
        clauses = (("SET", self._sets), ("ADD", self._adds), ("REMOVE", self._removes))
        return " ".join(f"{action} {', '.join(parts)}" for action, parts in clauses if parts)

    def request(self, encode: Callable[[Any], Any]) -> dict[str, Any]:
        """The UpdateItem parameters this builds: the expression, the condition if any, the placeholders."""
        request: dict[str, Any] = {"UpdateExpression": self.expression}
        if self.condition:
            request["ConditionExpression"] = self.condition
        return request | self.placeholders(encode)
