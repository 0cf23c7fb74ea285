"""No logic is written twice across the package's modules: a duplicate-code finder over openrlhf_distill/.

Code is compared as syntax trees with every variable and argument renamed to one placeholder and every literal
replaced by its type, so a copy with renamed variables or changed messages still matches. Declarations are not
logic and are left out of the counts: imports, dataclass fields, constants, docstrings and argparse
``add_argument`` calls (flags with the same meaning in two subcommands are a CLI convention, not an algorithm).
"""

from __future__ import annotations

import ast
import collections
import pathlib
import textwrap

import openrlhf_distill

PACKAGE = pathlib.Path(openrlhf_distill.__file__).parent

# A function of at least this many statements must not be repeated in another module; nor may a run of at least
# WINDOW consecutive statements. Below these sizes, matches are idioms (try / return / except: return None).
FUNCTION_MIN = 2
WINDOW = 4


class _Anonymise(ast.NodeTransformer):
    def visit_Name(self, node):
        return ast.copy_location(ast.Name(id="_", ctx=node.ctx), node)

    def visit_arg(self, node):
        return ast.copy_location(ast.arg(arg="_"), node)

    def visit_Constant(self, node):
        return ast.copy_location(ast.Constant(value=type(node.value).__name__), node)


def _is_declaration(stmt: ast.stmt) -> bool:
    if isinstance(stmt, (ast.Import, ast.ImportFrom, ast.AnnAssign, ast.Pass, ast.Global, ast.Nonlocal)):
        return True
    if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant):
        return True
    if isinstance(stmt, ast.Expr):
        value = stmt.value
        if isinstance(value, ast.Constant):  # a docstring
            return True
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr == "add_argument":
            return True
    return False


def _size(stmt: ast.stmt) -> int:
    """Statements of logic in ``stmt``, nested ones included."""
    return sum(isinstance(n, ast.stmt) and not _is_declaration(n) for n in ast.walk(stmt))


def _shape(stmts: list[ast.stmt]) -> str:
    # Re-parsed from source so that the anonymising pass cannot touch the module's own tree.
    tree = ast.parse(textwrap.dedent("\n".join(ast.unparse(s) for s in stmts)))
    return ast.dump(_Anonymise().visit(tree), annotate_fields=False)


def _without_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    first = body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return body[1:]
    return body


def _blocks(tree: ast.AST):
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody"):
            block = getattr(node, field, None)
            if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                yield _without_docstring(block)


def repeated_code(sources: dict[str, str]) -> list[list[tuple[str, int, str]]]:
    """Groups of places, in more than one module, holding the same function body or statement run.

    ``sources`` maps a module's name to its source; each place is (module, line, what)."""
    seen = collections.defaultdict(list)
    for module, source in sources.items():
        tree = ast.parse(source)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = _without_docstring(node.body)
                if sum(map(_size, body)) >= FUNCTION_MIN:
                    seen["def " + _shape(body)].append((module, node.lineno, f"function {node.name}"))
        for block in _blocks(tree):
            sizes = [_size(stmt) for stmt in block]
            for start in range(len(block)):
                # The shortest run from each statement that reaches WINDOW statements of logic.
                total = 0
                for end in range(start, len(block)):
                    total += sizes[end]
                    if total >= WINDOW:
                        run = block[start : end + 1]
                        seen["run " + _shape(run)].append((module, run[0].lineno, f"lines to {run[-1].end_lineno}"))
                        break
    return [places for places in seen.values() if len({module for module, _, _ in places}) > 1]


def test_no_function_or_statement_run_is_repeated_across_the_packages_modules():
    sources = {str(p.relative_to(PACKAGE)): p.read_text() for p in sorted(PACKAGE.rglob("*.py"))}
    assert len(sources) > 50  # the whole package was read
    repeats = repeated_code(sources)
    assert not repeats, "logic written twice; give it one home and import it:\n" + "\n".join(map(str, repeats))


def test_the_finder_sees_a_copy_with_renamed_variables_and_changed_messages():
    original = """
def read_version(distribution):
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
"""
    renamed = '''
def _version(dist):
    """Docstrings do not count."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None
'''
    assert [[("a.py", 2, "function read_version"), ("b.py", 2, "function _version")]] == repeated_code(
        {"a.py": original, "b.py": renamed}
    )
    # The same code twice in one module is not this test's business (a module is one reader's page).
    assert repeated_code({"a.py": original + original.replace("read_version", "again")}) == []


def test_the_finder_sees_a_run_of_statements_copied_into_another_function():
    run = """
    rows = [json.loads(line) for line in open(path)]
    if not rows:
        raise ValueError(f"{path}: empty")
    total = sum(r["n"] for r in rows)
    return total / len(rows)
"""
    first = "def mean_n(path):\n    print('reading')" + run
    second = "def average(p, verbose):\n    if verbose:\n        log(p)" + run.replace("rows", "records")
    repeats = repeated_code({"a.py": first, "b.py": second})
    assert repeats and all({module for module, _, _ in places} == {"a.py", "b.py"} for places in repeats)
    # Declarations alone never match: the same flags declared in two subcommands.
    flags = "def add_arguments(p):\n" + "".join(f"    p.add_argument('--f{i}', default={i})\n" for i in range(6))
    assert repeated_code({"a.py": flags, "b.py": flags}) == []
