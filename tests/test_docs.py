"""The README and docs/ pages: links that resolve, a README that stays a short guide, and an architecture page
that names every module of the package."""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ["README.md"] + [
    os.path.join("docs", n) for n in sorted(os.listdir(os.path.join(ROOT, "docs"))) if n.endswith(".md")
]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _read(page: str) -> str:
    with open(os.path.join(ROOT, page)) as f:
        return f.read()


def test_every_relative_link_of_the_readme_and_docs_names_a_file_of_the_repository():
    broken = []
    for page in PAGES:
        for target in LINK.findall(_read(page)):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not os.path.exists(os.path.normpath(os.path.join(ROOT, os.path.dirname(page), target))):
                broken.append(f"{page}: {target}")
    assert not broken, broken


def test_the_readme_is_a_guide_under_20_kb_and_links_the_architecture_page():
    readme = _read("README.md")
    assert len(readme.encode()) < 20_000, "README.md over 20 KB: move reference material to docs/"
    assert "docs/architecture.md" in readme


def test_the_architecture_page_names_every_module_of_the_package():
    page = _read("docs/architecture.md")
    package = os.path.join(ROOT, "openrlhf_distill")
    missing = []
    for folder, dirs, files in os.walk(package):
        dirs[:] = [d for d in dirs if d not in ("__pycache__", "prebuilt")]
        for name in files:
            if not name.endswith(".py"):
                continue
            rel = os.path.relpath(os.path.join(folder, name), package).replace(os.sep, "/")
            # a subpackage's modules are listed under its heading (`toy/`), by their path inside it (`world.py`)
            top, _, inner = rel.partition("/")
            shown = f"`{rel}`" in page or (bool(inner) and f"`{top}/`" in page and f"`{inner}`" in page)
            if not shown:
                missing.append(rel)
    assert not missing, f"docs/architecture.md does not name: {missing}"


def _layout_order(page: str) -> list[str]:
    """The modules of the architecture page's layout, in its order, as paths inside the package."""
    layout = page[page.index("## Layout") : page.index("## A record")]
    order, package = [], None
    for line in layout.splitlines():
        if heading := re.match(r"- \*\*`(\w+)/`\*\*", line):
            package = heading.group(1)
        elif line.startswith("- **"):
            package = None
            order += re.findall(r"`([\w/]+\.py)`", line)
        elif item := re.match(r"\s+- `([\w/]+\.py)`", line):
            name = item.group(1)
            order.append(f"{package}/{name}" if package and not name.startswith(f"{package}/") else name)
    return order


def _package_imports(path: str, module_parts: list[str]) -> set[str]:
    """The package modules (paths inside it) that a module imports with relative imports, lazy ones included."""
    import ast

    package = os.path.join(ROOT, "openrlhf_distill")
    found = set()
    with open(os.path.join(package, path)) as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        if not (isinstance(node, ast.ImportFrom) and node.level):
            continue
        base = module_parts[: len(module_parts) - node.level + 1] + (node.module.split(".") if node.module else [])
        for candidate in [base] + [base + [alias.name] for alias in node.names]:
            rel = "/".join(candidate[1:])
            for target in (f"{rel}.py", f"{rel}/__init__.py"):
                if rel and os.path.isfile(os.path.join(package, target)):
                    found.add(target)
    return found


def test_the_architecture_pages_order_is_the_import_order():
    """The page lists modules in the order a record flows and says a module imports only what is above it (plus
    the adapter and the helpers; a package's __init__ gathers its own modules), with one named exception."""
    order = _layout_order(_read("docs/architecture.md"))
    position = {path: i for i, path in enumerate(order)}
    exempt = ("compat/", "argtypes.py", "model_folders.py", "cluster_paths.py", "processes.py")
    upward = set()
    for path in order:
        if path.endswith("__init__.py") or path.startswith(exempt):
            continue
        parts = ["openrlhf_distill", *path.split("/")[:-1]]
        for target in _package_imports(path, parts):
            if target != path and not target.startswith(exempt) and target.endswith(".py"):
                if target.endswith("__init__.py") and target.split("/")[0] == path.split("/")[0]:
                    continue
                if position.get(target, -1) > position[path]:
                    upward.add((path, target))
    assert upward == {("report/collect.py", "pipeline/stages.py")}
