"""Row conditions of rate metrics (``"latency_ms > 500 and device == 'ios'"``), parsed once.

``DataFrame.eval`` parses the expression and resolves every column of the frame on each
call: about 3 ms per chunk and per metric, which made one rate metric cost more than all
the other metrics of a streaming micro-batch together. Here the condition is parsed once
into a code object over the columns it names, with the words pandas.eval treats as
elementwise (``and``, ``or``, ``not``, chained comparisons) rewritten as the operators
pandas.eval maps them to, and evaluated on the columns as Series. A condition using
anything beyond comparisons, arithmetic and the boolean words (``&``, ``|``, ``in``,
calls, attributes) is left to ``DataFrame.eval`` as before. Comparisons of numpy float
or bool columns and numbers alone can also be evaluated on the arrays, without the
Series (:meth:`Condition.evaluate_arrays`: an assertion's rule, every chunk).

>>> condition = Condition("latency_ms > 500 and not cached")
>>> condition.fast
True
>>> frame = pd.DataFrame({"latency_ms": [100.0, 700.0, 900.0], "cached": [False, False, True]})
>>> condition.evaluate(frame).tolist()
[False, True, False]
>>> Condition("device in ['ios', 'web']").fast
False
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from types import CodeType
from typing import Any

import numpy as np
import pandas as pd

_ELEMENTWISE = (
    ast.Expression, ast.Compare, ast.BoolOp, ast.UnaryOp, ast.BinOp, ast.Name, ast.Constant,
    ast.Load, ast.And, ast.Or, ast.Not, ast.USub, ast.UAdd, ast.Invert, ast.Eq, ast.NotEq,
    ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv,
    ast.Mod, ast.Pow,
)
# Comparisons of columns and numbers joined by the boolean words: on numpy float or bool
# arrays these give what they give on Series, as pandas compares with numpy itself
_COMPARISONS = (
    ast.Expression, ast.Compare, ast.BoolOp, ast.UnaryOp, ast.Name, ast.Load, ast.And,
    ast.Or, ast.Not, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE,
)
# Not here: ``&`` and ``|``, which pandas.eval binds looser than comparisons (``a > 1 | b``
# is ``(a > 1) | b`` there, ``a > (1 | b)`` in Python), and ``in``, calls, attributes.


class Condition:
    """A boolean expression over a frame's columns, as ``DataFrame.eval`` reads it."""

    def __init__(self, text: str) -> None:
        self.text = text
        tree = ast.parse(text, mode="eval")  # SyntaxError: the caller names the metric
        self.names = sorted({node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
                            - {"True", "False", "None"})
        self.fast = all(isinstance(node, _ELEMENTWISE) for node in ast.walk(tree))
        # only comparisons of columns and numbers: numpy arrays may stand for the Series
        self.comparisons = all(
            isinstance(node, _COMPARISONS) or (isinstance(node, ast.Constant) and isinstance(
                node.value, int | float)) for node in ast.walk(tree))
        self._code: CodeType | None = None
        if self.fast:
            elementwise = ast.fix_missing_locations(_Elementwise().visit(tree))
            self._code = compile(elementwise, f"<condition {text!r}>", "eval")

    def __reduce__(self) -> tuple[type[Condition], tuple[str]]:
        return Condition, (self.text,)  # the code object does not pickle: parse again

    def evaluate(self, frame: pd.DataFrame) -> Any:
        """The condition per row (what ``frame.eval(text)`` gives)."""
        return self.evaluate_columns(frame, {name: frame[name] for name in self.names})

    def evaluate_columns(self, frame: pd.DataFrame, columns: Mapping[str, pd.Series]) -> Any:
        """:meth:`evaluate` given the columns it names, ``columns`` (``frame[name]``,
        which a caller that reads them again need not look up twice: a column lookup
        costs tens of µs)."""
        if self._code is None:
            return frame.eval(self.text)
        return eval(self._code, {"__builtins__": {}}, dict(columns))

    def evaluate_arrays(self, arrays: Mapping[str, np.ndarray]) -> np.ndarray | None:
        """The condition per row on numpy float or bool arrays of the columns it names,
        or None where that might not be what the Series give (anything but
        :attr:`comparisons`, another dtype, an operation numpy refuses): then use
        :meth:`evaluate_columns`. A comparison of Series costs ~15 µs of pandas around
        numpy's ~1 µs for a chunk of thousands of rows.

        >>> Condition("a > 1 and not b").evaluate_arrays(
        ...     {"a": np.array([0.5, 2.0, np.nan, 3.0]), "b": np.array([0, 0, 0, 1], bool)})
        array([False,  True, False, False])
        >>> Condition("a + 1 > 2").evaluate_arrays({"a": np.array([1.0])}) is None
        True
        """
        if self._code is None or not self.comparisons or not all(
                isinstance(arrays[name], np.ndarray) and arrays[name].dtype.kind in "fb"
                for name in self.names):
            return None
        try:
            outcome = eval(self._code, {"__builtins__": {}}, dict(arrays))
        except (TypeError, ValueError, OverflowError):  # ``~`` of floats, say: the
            return None  # Series path raises as it did
        if isinstance(outcome, np.ndarray) and outcome.dtype == bool and outcome.ndim == 1:
            return outcome
        return None


def nan_rows(arrays: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """Where a float array of ``arrays`` holds NaN (a float column's null: the row judges
    nothing), or None where none does. What :meth:`Condition.evaluate_arrays` leaves to
    its callers, a rate and an assertion alike.

    >>> nan_rows({"a": np.array([1.0, np.nan]), "b": np.array([True, False])})
    array([False,  True])
    >>> nan_rows({"a": np.array([1.0])}) is None
    True
    """
    found: np.ndarray | None = None
    for values in arrays.values():
        if values.dtype.kind == "f":
            nan = np.isnan(values)
            if nan.any():
                found = nan if found is None else found | nan
    return found


class _Elementwise(ast.NodeTransformer):
    """``and``/``or``/``not`` and chained comparisons as ``&``/``|``/``~``, as pandas.eval
    reads them."""

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.AST:
        values = [self.visit(v) for v in node.values]
        op: ast.operator = ast.BitAnd() if isinstance(node.op, ast.And) else ast.BitOr()
        result = values[0]
        for value in values[1:]:
            result = ast.BinOp(result, op, value)
        return result

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        operand = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            return ast.UnaryOp(ast.Invert(), operand)
        return ast.UnaryOp(node.op, operand)

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        operands = [self.visit(node.left), *(self.visit(c) for c in node.comparators)]
        pairs = [ast.Compare(operands[i], [op], [operands[i + 1]])
                 for i, op in enumerate(node.ops)]
        result: ast.expr = pairs[0]
        for pair in pairs[1:]:
            result = ast.BinOp(result, ast.BitAnd(), pair)
        return result
