"""Fast tier: the shape of the code stays as designed (docs/changing-the-code.md).

No import cycle inside `model/` and no module over ~300 lines; the README's configuration table
lists exactly the server's own flags, with the parser's defaults.
"""

import ast
import os
import re

from support import REPO

PACKAGE = os.path.join(REPO, "model")


def _modules():
    for root, _, files in os.walk(PACKAGE):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(root, f)
                rel = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
                yield (rel[:-len(".__init__")] if rel.endswith(".__init__") else rel), path


def _imports(name: str, path: str):
    """The `model.*` modules this one imports, at any depth in the file (lazy imports too)."""
    tree = ast.parse(open(path).read())
    package = name if path.endswith("__init__.py") else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.startswith("model"):
                out.add(mod)
                for alias in node.names:  # `from . import metrics` imports a module
                    out.add(f"{mod}.{alias.name}")
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("model"))
    return out


def test_no_import_cycle_in_the_package():
    mods = dict(_modules())
    graph = {m: {i for i in _imports(m, p) if i in mods and i != m} for m, p in mods.items()}
    # A package's __init__ importing its own submodules is not a cycle of rooms.
    for m in graph:
        graph[m] = {i for i in graph[m] if not i.startswith(m + ".") or m == "model"}
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in graph[m]:
            if state.get(n) == "open":
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(n):] + [n]))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_no_module_over_300_lines():
    long = {os.path.relpath(p, REPO): n for _, p in _modules()
            if (n := sum(1 for _ in open(p))) > 310}
    assert not long, long


def test_readme_configuration_table_matches_the_flags():
    from kserve import model_server

    from model.settings import build_parser

    parser = build_parser()
    kserve_dests = {a.dest for a in model_server.parser._actions}
    ours = {a.dest: a for a in parser._actions if a.dest not in kserve_dests | {"help"}}
    readme = open(os.path.join(REPO, "README.md")).read()
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `--(\w+)`(?:, `--(\w+)`)? \| *([^|]*?) *\|", section, re.M)
    listed = {}
    for first, second, default in rows:
        defaults = [d.strip().strip("`") for d in default.split(", ")] if second else [default]
        for flag, value in zip((first, second), defaults * 2 if not second else defaults):
            if flag:
                listed[flag] = value.strip().strip("`")
    kserve_flags = {"http_port", "grpc_port", "model_name"}  # KServe's, listed for convenience
    assert set(listed) - kserve_flags == set(ours), set(listed) ^ set(ours)
    for flag, default in listed.items():
        action = ours.get(flag) or next(a for a in parser._actions if a.dest == flag)
        value = action.default
        if flag == "spool_dir" or value is None:
            continue
        shown = "on" if value is True else "off" if value is False else str(value)
        assert default.replace(",", "") in (shown, f"{value:g}" if isinstance(value, float)
                                            else shown), (flag, default, value)
