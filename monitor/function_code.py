"""The code of a per-event function, as the text that decides what it computes.

A metric's id hashes its per-event function's code, so the text must change when the
function computes something else and stay the same when only its wrapping changes: the
decorator lines (which hold the metric's owner and description), the function's name,
its module, where in the file it sits, how deep it is indented, its comments and its
docstring. What the code reads from outside itself (a module constant, a helper function)
is not in the text: changing that alone keeps the id, as it always has.

The text is the function's signature without its name, followed by each statement of its
body, taken from the source with :mod:`ast` and dedented. Source text, not bytecode or
``ast.dump``: both change between Python versions, and upgrading Python must not make
every metric a new version. A lambda is its own source segment. A function whose source
cannot be read (defined in a REPL or by ``exec``) falls back to its code object: the
same code gives the same text, but only on one Python version.

>>> def ranked(events):
...     return events["rank"] * 2
>>> decorated = '''
... @mon.metric("rank2", "home", aggregate=metrics.mean(), owner="search")
... def ranked(events):  # ranks start at 1
...     "Twice the rank."
...     return events["rank"] * 2
... '''
>>> print(function_text(ranked, decorated))
def(events):
return events["rank"] * 2
>>> print(function_text(ranked, "def twice(events): return events['rank'] * 2"))
def(events):
return events['rank'] * 2
"""

from __future__ import annotations

import ast
import inspect
import io
import re
import textwrap
import tokenize
import types
from collections.abc import Callable
from typing import Any

_DEF_NAME = re.compile(r"^(async\s+)?def\s+\w+")


def code_text(function: Callable[..., Any]) -> str:
    """The text of ``function`` that decides what it computes (see the module docstring)."""
    try:
        source = textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError):  # no source file: a REPL, exec, a builtin
        return bytecode_text(function)
    return function_text(function, source)


def function_text(function: Callable[..., Any], source: str) -> str:
    """The text of ``function`` found in ``source``, the block ``inspect`` gives for it."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # e.g. a lambda in the middle of a multi-line expression
        return source
    node = _definition(tree, function)
    if isinstance(node, ast.Lambda):
        return ast.get_source_segment(source, node) or source
    if node is None:
        return source
    body = node.body
    if len(body) > 1 and _is_docstring(body[0]):
        body = body[1:]
    # The signature runs from `def` (the decorators are above it) to the first statement.
    first = node.body[0]
    span = ast.Pass(lineno=node.lineno, col_offset=node.col_offset,  # a node that is a span
                    end_lineno=first.lineno, end_col_offset=first.col_offset)
    header = ast.get_source_segment(source, span) or ""
    signature = " ".join(line.strip() for line in _without_comments(header).splitlines())
    statements = [ast.get_source_segment(source, statement, padded=True) or ""
                  for statement in body]
    return (_DEF_NAME.sub("def", signature.strip(), count=1) + "\n"
            + _without_comments(textwrap.dedent("\n".join(statements))))


def bytecode_text(function: Callable[..., Any]) -> str:
    """What a function without source computes, as text: its code object's instructions,
    constants and names, and its defaults (stable on one Python version only)."""
    code = getattr(function, "__code__", None)
    if not isinstance(code, types.CodeType):
        return repr(function)
    return repr((_code_parts(code), getattr(function, "__defaults__", None),
                 getattr(function, "__kwdefaults__", None)))


def _definition(tree: ast.Module, function: Callable[..., Any]
                ) -> ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | None:
    """The node of ``function`` in the block ``inspect`` gave for it, if it is clear which."""
    if getattr(function, "__name__", None) == "<lambda>":
        lambdas = [node for node in ast.walk(tree) if isinstance(node, ast.Lambda)]
        return lambdas[0] if len(lambdas) == 1 else None
    first = tree.body[0] if tree.body else None
    if isinstance(first, ast.FunctionDef | ast.AsyncFunctionDef):
        return first
    return None


def _without_comments(text: str) -> str:
    """``text`` without its comments (a line that held only a comment goes) and with no
    whitespace at the ends of its lines."""
    comments: dict[int, int] = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.COMMENT:
                comments[token.start[0]] = token.start[1]
    except (tokenize.TokenError, SyntaxError):  # cannot tell comments from strings: keep all
        return "\n".join(line.rstrip() for line in text.splitlines())
    kept = []
    for number, line in enumerate(text.splitlines(), start=1):
        if number in comments:
            line = line[:comments[number]]
            if not line.strip():
                continue
        kept.append(line.rstrip())
    return "\n".join(kept)


def _is_docstring(statement: ast.stmt) -> bool:
    return (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)
            and isinstance(statement.value.value, str))


def _code_parts(code: types.CodeType) -> tuple[Any, ...]:
    constants = tuple(_code_parts(c) if isinstance(c, types.CodeType) else c
                      for c in code.co_consts)
    return (code.co_code, constants, code.co_names, code.co_varnames, code.co_argcount,
            code.co_kwonlyargcount)

