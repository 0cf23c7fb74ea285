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
