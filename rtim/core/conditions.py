"""The condition language: small, safe boolean expressions over a customer's features.

    credit_check_status != "failed" and age >= 18
    segment in ["gold", "platinum"] and cart_value > 50
    not has_open_complaint or minutes_since_complaint > 60

A condition is parsed once into a tree of frozen nodes and compiled into Python closures; it is
never handed to ``eval``/``exec``. Evaluation never raises: a missing feature is null, ordering
comparisons with null or across types are false, equality with null works. ``docs/strategy.md``
is the reference for users.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, TypeAlias

from rtim.errors import StrategyError

__all__ = [
    "And",
    "Compare",
    "Condition",
    "ConditionSyntaxError",
    "Const",
    "Feature",
    "Features",
    "Membership",
    "Node",
    "Not",
    "NullCheck",
    "Or",
    "Predicate",
    "Scalar",
    "Truthy",
    "compile_condition",
    "parse_condition",
]

Scalar: TypeAlias = str | int | float | bool | None
Features: TypeAlias = Mapping[str, object]
Predicate: TypeAlias = Callable[[Features], bool]

COMPARISON_OPS: Final = ("==", "!=", "<", "<=", ">", ">=")


class ConditionSyntaxError(StrategyError):
    """A condition could not be parsed; ``column`` (1-based) points into ``source``."""

    def __init__(self, message: str, column: int, source: str) -> None:
        super().__init__(message)
        self.message = message
        self.column = column
        self.source = source


# --- syntax tree ----------------------------------------------------------------------------
# Every node carries its span [start, end) in the source text (0-based character offsets).


@dataclass(frozen=True, slots=True)
class Feature:
    """A reference to a feature by name (dots are part of the name: ``attr.country``)."""

    name: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Const:
    """A literal: number, string, true, false or null."""

    value: Scalar
    start: int
    end: int


Operand: TypeAlias = Feature | Const


@dataclass(frozen=True, slots=True)
class Compare:
    """``left op right`` with op one of == != < <= > >=."""

    op: str
    left: Operand
    right: Operand
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Membership:
    """``operand in [values]`` (or ``not in`` when negated)."""

    operand: Operand
    values: tuple[Scalar, ...]
    negated: bool
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class NullCheck:
    """``operand is null`` (or ``is not null`` when negated)."""

    operand: Operand
    negated: bool
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Truthy:
    """A bare operand used as a condition: true unless null, false, 0 or ""."""

    operand: Operand
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[Node, ...]
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Node, ...]
    start: int
    end: int


Node: TypeAlias = Compare | Membership | NullCheck | Truthy | Not | And | Or
_Leaf: TypeAlias = Compare | Membership | NullCheck | Truthy


# --- tokenizer ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # name number string kw op ( ) [ ] , - end
    text: str
    start: int
    end: int
    value: Scalar = None


_KEYWORDS: Final = frozenset({"and", "or", "not", "in", "is", "true", "false", "null"})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*")
_NUMBER = re.compile(r"\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_OPS = ("==", "!=", "<=", ">=", "<", ">")
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "n": "\n", "t": "\t"}
_HINTS = {
    "&&": "write 'and' instead of '&&'",
    "||": "write 'or' instead of '||'",
    "&": "write 'and' instead of '&'",
    "|": "write 'or' instead of '|'",
    "!": "write 'not' instead of '!'",
    "=": "write '==' to compare",
}


def _fail(source: str, message: str, pos: int, found: str = "") -> ConditionSyntaxError:
    column = pos + 1
    text = f"{message} at column {column}" + (f", found {found}" if found else "")
    return ConditionSyntaxError(text, column, source)


def _tokenize(src: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if c.isspace():
            i += 1
            continue
        if c.isalpha() or c == "_":
            m = _NAME.match(src, i)
            assert m is not None
            end = m.end()
            if end < n and src[end] == ".":
                raise _fail(src, f"incomplete feature name '{src[i : end + 1]}'", i)
            word = m.group()
            low = word.lower()
            if low in _KEYWORDS:
                value: Scalar = {"true": True, "false": False}.get(low)
                tokens.append(_Token("kw", low, i, end, value))
            else:
                tokens.append(_Token("name", word, i, end))
            i = end
            continue
        if c.isdigit():
            m = _NUMBER.match(src, i)
            assert m is not None
            end = m.end()
            if end < n and (src[end].isalpha() or src[end] == "_"):
                j = end
                while j < n and (src[j].isalnum() or src[j] == "_"):
                    j += 1
                raise _fail(
                    src,
                    f"'{src[i:j]}' is not a number (conditions compare plain numbers, "
                    "e.g. minutes_since_complaint > 30)",
                    i,
                )
            text = m.group()
            num: int | float = int(text) if text.isdigit() else float(text)
            tokens.append(_Token("number", text, i, end, num))
            i = end
            continue
        if c in "\"'":
            j = i + 1
            chars: list[str] = []
            while True:
                if j >= n:
                    raise _fail(src, "unterminated string (missing closing quote)", i)
                ch = src[j]
                if ch == c:
                    break
                if ch == "\\":
                    if j + 1 >= n:
                        raise _fail(src, "unterminated string (missing closing quote)", i)
                    esc = src[j + 1]
                    if esc not in _ESCAPES:
                        raise _fail(src, f"unknown escape '\\{esc}' in string", j)
                    chars.append(_ESCAPES[esc])
                    j += 2
                    continue
                chars.append(ch)
                j += 1
            tokens.append(_Token("string", src[i : j + 1], i, j + 1, "".join(chars)))
            i = j + 1
            continue
        op = next((o for o in _OPS if src.startswith(o, i)), None)
        if op is not None:
            tokens.append(_Token("op", op, i, i + len(op)))
            i += len(op)
            continue
        if c in "()[],-":
            tokens.append(_Token(c, c, i, i + 1))
            i += 1
            continue
        two = src[i : i + 2]
        hint = _HINTS.get(two) or _HINTS.get(c)
        suffix = f"; {hint}" if hint else ""
        raise _fail(src, f"unexpected character '{c}'{suffix}", i)
    tokens.append(_Token("end", "", n, n))
    return tokens


# --- parser ---------------------------------------------------------------------------------


def _describe(tok: _Token) -> str:
    return "the end of the condition" if tok.kind == "end" else f"'{tok.text}'"


class _Parser:
    def __init__(self, src: str) -> None:
        self.src = src
        self.tokens = _tokenize(src)
        self.i = 0

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def take(self) -> _Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def is_kw(self, word: str, ahead: int = 0) -> bool:
        tok = self.peek(ahead)
        return tok.kind == "kw" and tok.text == word

    def error(self, message: str, tok: _Token) -> ConditionSyntaxError:
        return _fail(self.src, message, tok.start, "" if tok.kind == "end" else _describe(tok))

    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise _fail(self.src, "empty condition", 0)
        node = self.parse_or()
        tok = self.peek()
        if tok.kind != "end":
            if tok.kind == ")":
                raise _fail(self.src, "unexpected ')' without a matching '('", tok.start)
            raise _fail(
                self.src,
                f"unexpected {_describe(tok)}; expected 'and', 'or' or the end of the condition",
                tok.start,
            )
        return node

    def parse_or(self) -> Node:
        items = [self.parse_and()]
        while self.is_kw("or"):
            self.take()
            items.append(self.parse_and())
        if len(items) == 1:
            return items[0]
        return Or(tuple(items), items[0].start, items[-1].end)

    def parse_and(self) -> Node:
        items = [self.parse_not()]
        while self.is_kw("and"):
            self.take()
            items.append(self.parse_not())
        if len(items) == 1:
            return items[0]
        return And(tuple(items), items[0].start, items[-1].end)

    def parse_not(self) -> Node:
        if self.is_kw("not"):
            tok = self.take()
            operand = self.parse_not()
            return Not(operand, tok.start, operand.end)
        return self.parse_comparison()

    def parse_comparison(self) -> Node:
        tok = self.peek()
        if tok.kind == "(":
            self.take()
            inner = self.parse_or()
            close = self.peek()
            if close.kind == "end":
                raise _fail(self.src, "unclosed '('", tok.start)
            if close.kind != ")":
                raise self.error("expected ')', 'and' or 'or'", close)
            self.take()
            nxt = self.peek()
            if nxt.kind == "op" or (nxt.kind == "kw" and nxt.text in ("in", "is")):
                raise _fail(
                    self.src,
                    f"cannot apply '{nxt.text}' to a parenthesised condition",
                    nxt.start,
                )
            return replace(inner, start=tok.start, end=close.end)
        before = self.tokens[self.i - 1] if self.i > 0 else None
        left = self.parse_operand(before)
        nxt = self.peek()
        if nxt.kind == "op":
            compares: list[Node] = []
            while self.peek().kind == "op":
                op_tok = self.take()
                right = self.parse_operand(op_tok)
                compares.append(Compare(op_tok.text, left, right, left.start, right.end))
                left = right
            if len(compares) == 1:
                return compares[0]
            return And(tuple(compares), compares[0].start, compares[-1].end)
        if self.is_kw("in") or (self.is_kw("not") and self.is_kw("in", 1)):
            negated = self.is_kw("not")
            if negated:
                self.take()
            self.take()
            values, end = self.parse_list("not in" if negated else "in")
            return Membership(left, values, negated, left.start, end)
        if self.is_kw("is"):
            is_tok = self.take()
            negated = False
            if self.is_kw("not"):
                self.take()
                negated = True
            last = self.peek()
            if not self.is_kw("null"):
                raise self.error(f"expected 'null' or 'not null' after '{is_tok.text}'", last)
            self.take()
            return NullCheck(left, negated, left.start, last.end)
        return Truthy(left, left.start, left.end)

    def parse_operand(self, after: _Token | None) -> Feature | Const:
        tok = self.peek()
        if tok.kind == "name":
            self.take()
            if tok.text.lower() == "none":
                raise _fail(self.src, "'None' is not a value here; write null", tok.start)
            return Feature(tok.text, tok.start, tok.end)
        if tok.kind in ("number", "string") or (
            tok.kind == "kw" and tok.text in ("true", "false", "null")
        ):
            self.take()
            return Const(tok.value, tok.start, tok.end)
        if tok.kind == "-":
            self.take()
            num = self.peek()
            if num.kind != "number" or num.start != tok.end:
                raise self.error("expected a number right after '-' (there is no arithmetic)", num)
            self.take()
            assert isinstance(num.value, int | float)
            return Const(-num.value, tok.start, num.end)
        if tok.kind == "[":
            raise _fail(self.src, "a list can only follow 'in' or 'not in'", tok.start)
        if after is not None and after.kind == "op":
            raise self.error(f"expected a value after '{after.text}'", tok)
        if after is not None and after.kind == "kw":
            raise self.error(f"expected a condition after '{after.text}'", tok)
        if after is not None and after.kind == "(":
            raise self.error("expected a condition after '('", tok)
        raise self.error("expected a feature name, a value or '('", tok)

    def parse_list(self, after: str) -> tuple[tuple[Scalar, ...], int]:
        open_tok = self.peek()
        if open_tok.kind != "[":
            raise self.error(f'expected a list like ["a", "b"] after \'{after}\'', open_tok)
        self.take()
        values: list[Scalar] = []
        while True:
            tok = self.peek()
            if tok.kind == "]":
                self.take()
                return tuple(values), tok.end
            if tok.kind == "name":
                raise _fail(
                    self.src,
                    "a list may only hold values (numbers, strings, true, false, null), "
                    f"not the feature '{tok.text}'",
                    tok.start,
                )
            is_value = tok.kind in ("number", "string", "-") or (
                tok.kind == "kw" and tok.text in ("true", "false", "null")
            )
            if not is_value:
                if tok.kind == "end":
                    raise _fail(self.src, "unclosed '['", open_tok.start)
                raise self.error("expected a value in the list", tok)
            item = self.parse_operand(None)
            assert isinstance(item, Const)
            values.append(item.value)
            sep = self.peek()
            if sep.kind == ",":
                self.take()
            elif sep.kind == "end":
                raise _fail(self.src, "unclosed '['", open_tok.start)
            elif sep.kind != "]":
                raise self.error("expected ',' or ']' in the list", sep)


def parse_condition(source: str) -> Node:
    """Parse a condition into its syntax tree; raise ``ConditionSyntaxError`` when malformed."""
    if not isinstance(source, str):
        raise ConditionSyntaxError(
            f"a condition must be text, got {type(source).__name__}", 1, str(source)
        )
    return _Parser(source).parse()


# --- semantics ------------------------------------------------------------------------------


def _kind(v: object) -> str | None:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "num"
    if isinstance(v, str):
        return "str"
    return None


def _eq(a: object, b: object) -> bool:
    if a is None or b is None:
        return a is None and b is None
    ka = _kind(a)
    return ka is not None and ka == _kind(b) and bool(a == b)


def _ne(a: object, b: object) -> bool:
    return not _eq(a, b)


def _ordered(op: Callable[[Any, Any], bool]) -> Callable[[object, object], bool]:
    def compare(a: object, b: object) -> bool:
        ka = _kind(a)
        if ka is None or ka == "bool" or ka != _kind(b):
            return False
        return bool(op(a, b))

    return compare


_CMP: Final[dict[str, Callable[[object, object], bool]]] = {
    "==": _eq,
    "!=": _ne,
    "<": _ordered(operator.lt),
    "<=": _ordered(operator.le),
    ">": _ordered(operator.gt),
    ">=": _ordered(operator.ge),
}
_RAW: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_FLIP: Final = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _truthy(v: object) -> bool:
    if v is None:
        return False
    if isinstance(v, bool):
        return v
    if isinstance(v, int | float):
        return v != 0
    if isinstance(v, str):
        return v != ""
    return False


def _member(v: object, values: tuple[Scalar, ...]) -> bool:
    return any(_eq(v, e) for e in values)


# --- compiler -------------------------------------------------------------------------------


def _const(result: bool) -> Predicate:
    def constant(_f: Features) -> bool:
        return result

    return constant


def _compile_feature_vs_const(name: str, op: str, lit: Scalar) -> Predicate:
    generic = _CMP[op]
    if lit is None or isinstance(lit, bool):
        if op == "==":

            def is_lit(f: Features) -> bool:
                return f.get(name) is lit

            return is_lit
        if op == "!=":

            def is_not_lit(f: Features) -> bool:
                return f.get(name) is not lit

            return is_not_lit
        return _const(False)  # ordering with null or a boolean is always false
    if isinstance(lit, str):
        if op == "==":

            def eq_str(f: Features) -> bool:
                v = f.get(name)
                return v == lit if type(v) is str else _eq(v, lit)

            return eq_str
        if op == "!=":

            def ne_str(f: Features) -> bool:
                v = f.get(name)
                return v != lit if type(v) is str else not _eq(v, lit)

            return ne_str
        raw_s = _RAW[op]

        def order_str(f: Features) -> bool:
            v = f.get(name)
            return raw_s(v, lit) if type(v) is str else generic(v, lit)

        return order_str
    # a number
    if op == "==":

        def eq_num(f: Features) -> bool:
            v = f.get(name)
            t = type(v)
            return v == lit if t is int or t is float else _eq(v, lit)

        return eq_num
    if op == "!=":

        def ne_num(f: Features) -> bool:
            v = f.get(name)
            t = type(v)
            return v != lit if t is int or t is float else not _eq(v, lit)

        return ne_num
    raw = _RAW[op]

    def order_num(f: Features) -> bool:
        v = f.get(name)
        t = type(v)
        return raw(v, lit) if t is int or t is float else generic(v, lit)

    return order_num


def _compile_compare(node: Compare) -> Predicate:
    op, left, right = node.op, node.left, node.right
    if isinstance(left, Const) and isinstance(right, Const):
        return _const(_CMP[op](left.value, right.value))
    if isinstance(left, Const):
        left, right, op = right, left, _FLIP[op]
    assert isinstance(left, Feature)
    name = left.name
    if isinstance(right, Feature):
        other, fn = right.name, _CMP[op]

        def features_compare(f: Features) -> bool:
            return fn(f.get(name), f.get(other))

        return features_compare
    return _compile_feature_vs_const(name, op, right.value)


def _compile_membership(node: Membership) -> Predicate:
    values, negated = node.values, node.negated
    operand = node.operand
    if isinstance(operand, Const):
        return _const(_member(operand.value, values) != negated)
    name = operand.name
    if values and all(type(v) is str for v in values):
        strings = frozenset(values)

        def in_strings(f: Features) -> bool:
            v = f.get(name)
            return v in strings if type(v) is str else _member(v, values)

        if not negated:
            return in_strings

        def not_in_strings(f: Features) -> bool:
            return not in_strings(f)

        return not_in_strings

    def in_values(f: Features) -> bool:
        return _member(f.get(name), values) != negated

    return in_values


def _compile(node: Node, preds: dict[int, Predicate]) -> Predicate:
    pred: Predicate
    if isinstance(node, Compare):
        pred = _compile_compare(node)
    elif isinstance(node, Membership):
        pred = _compile_membership(node)
    elif isinstance(node, NullCheck):
        operand, negated = node.operand, node.negated
        if isinstance(operand, Const):
            pred = _const((operand.value is None) != negated)
        else:
            name = operand.name
            if negated:

                def is_not_null(f: Features) -> bool:
                    return f.get(name) is not None

                pred = is_not_null
            else:

                def is_null(f: Features) -> bool:
                    return f.get(name) is None

                pred = is_null
    elif isinstance(node, Truthy):
        operand = node.operand
        if isinstance(operand, Const):
            pred = _const(_truthy(operand.value))
        else:
            name = operand.name

            def truthy(f: Features) -> bool:
                v = f.get(name)
                return v if type(v) is bool else _truthy(v)

            pred = truthy
    elif isinstance(node, Not):
        inner = _compile(node.operand, preds)

        def negation(f: Features) -> bool:
            return not inner(f)

        pred = negation
    else:
        parts = [_compile(item, preds) for item in node.operands]
        pred = _compile_and(parts) if isinstance(node, And) else _compile_or(parts)
    preds[id(node)] = pred
    return pred


def _compile_and(parts: list[Predicate]) -> Predicate:
    if len(parts) == 2:
        a, b = parts

        def and2(f: Features) -> bool:
            return a(f) and b(f)

        return and2
    if len(parts) == 3:
        a, b, c = parts

        def and3(f: Features) -> bool:
            return a(f) and b(f) and c(f)

        return and3
    group = tuple(parts)

    def and_n(f: Features) -> bool:
        for p in group:  # noqa: SIM110 - a loop is ~2x faster than all() over a generator
            if not p(f):
                return False
        return True

    return and_n


def _compile_or(parts: list[Predicate]) -> Predicate:
    if len(parts) == 2:
        a, b = parts

        def or2(f: Features) -> bool:
            return a(f) or b(f)

        return or2
    if len(parts) == 3:
        a, b, c = parts

        def or3(f: Features) -> bool:
            return a(f) or b(f) or c(f)

        return or3
    group = tuple(parts)

    def or_n(f: Features) -> bool:
        for p in group:  # noqa: SIM110 - a loop is ~2x faster than any() over a generator
            if p(f):
                return True
        return False

    return or_n


def _operand_features(operand: Operand) -> list[str]:
    return [operand.name] if isinstance(operand, Feature) else []


def _leaf_features(node: _Leaf) -> list[str]:
    if isinstance(node, Compare):
        return _operand_features(node.left) + _operand_features(node.right)
    return _operand_features(node.operand)


def _all_features(node: Node) -> list[str]:
    if isinstance(node, Not):
        return _all_features(node.operand)
    if isinstance(node, And | Or):
        return [name for item in node.operands for name in _all_features(item)]
    return _leaf_features(node)


def _render(v: object) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    return repr(v)


# --- the compiled condition -----------------------------------------------------------------


class Condition:
    """A compiled condition.

    ``cond(features)`` or ``cond.evaluate(features)`` (the raw closure, one call less) → bool;
    ``source`` is the text as written, ``features`` the feature names it reads, ``ast`` its
    syntax tree, ``explain(features)`` says which clauses decided the outcome.
    """

    __slots__ = ("_preds", "ast", "evaluate", "features", "source")

    source: str
    ast: Node
    features: frozenset[str]
    evaluate: Predicate

    def __init__(self, source: str) -> None:
        self.source = source
        self.ast = parse_condition(source)
        self._preds: dict[int, Predicate] = {}
        self.evaluate = _compile(self.ast, self._preds)
        self.features = frozenset(_all_features(self.ast))

    def __call__(self, features: Features) -> bool:
        return self.evaluate(features)

    def explain(self, features: Features) -> str:
        """The clauses that decide the outcome, with the actual values of their features.

        For a condition that fails: the failing clause(s), e.g.
        ``credit_check_status != "failed" (credit_check_status = "failed")``; for one that holds:
        the clauses that make it hold. Absent features show as ``name is missing``.
        """
        text, names = self.explain_parts(features)
        if not names:
            return text
        values = ", ".join(
            f"{name} = {_render(features[name])}" if name in features else f"{name} is missing"
            for name in names
        )
        return f"{text} ({values})"

    def explain_parts(self, features: Features) -> tuple[str, tuple[str, ...]]:
        """The deciding clauses as condition text, and the features they read.

        The text is itself a condition with the same outcome for ``features`` (clauses that
        decide through a ``not`` appear negated), e.g. ``('age >= 18', ('age',))``.
        """
        text, _op, names = self._explain(self.ast, features, negated=False)
        return text, tuple(dict.fromkeys(names))

    def _explain(self, node: Node, f: Features, negated: bool) -> tuple[str, str, list[str]]:
        """Text (with the outcome of ``node`` xor ``negated``), its top operator, features."""
        if isinstance(node, Not):
            return self._explain(node.operand, f, not negated)
        if isinstance(node, And | Or):
            # De Morgan: under negation an `and` behaves as an `or` of negated parts.
            conj = isinstance(node, And) != negated
            outcome = self._preds[id(node)](f) != negated
            parts = [(item, self._preds[id(item)](f) != negated) for item in node.operands]
            if outcome == conj:  # all parts decide: a true `and`, a false `or`
                chosen = [item for item, _ in parts]
            else:  # the first part with the outcome decides
                chosen = [next(item for item, value in parts if value == outcome)]
            if len(chosen) == 1:
                return self._explain(chosen[0], f, negated)
            op = "and" if conj else "or"
            texts: list[str] = []
            names: list[str] = []
            for item in chosen:
                text, sub_op, sub_names = self._explain(item, f, negated)
                texts.append(f"({text})" if sub_op == "or" and op == "and" else text)
                names += sub_names
            return f" {op} ".join(texts), op, names
        text = self.source[node.start : node.end]
        return (f"not {text}" if negated else text), "", _leaf_features(node)

    def __repr__(self) -> str:
        return f"Condition({self.source!r})"

    def __str__(self) -> str:
        return self.source

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Condition) and other.source == self.source

    def __hash__(self) -> int:
        return hash(("Condition", self.source))

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (Condition, (self.source,))


def compile_condition(source: str) -> Condition:
    """Parse and compile a condition; raise ``ConditionSyntaxError`` (with a column) if bad."""
    return Condition(source)
