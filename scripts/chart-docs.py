#!/usr/bin/env python3
"""Write the values table of charts/sam2-tracker/README.md from the `# --` comments in values.yaml.

helm-docs conventions: a key's documentation is the comment block right above it that starts with
`# --`; `# -- (int) text` states the type where the default (null) cannot. Every key, at every
depth,
must have one. Keys inside lists are part of the list's default and are not rows of their own.

    python3 scripts/chart-docs.py            # rewrite the table between the markers in the README
    python3 scripts/chart-docs.py --check    # exit 1 if the README is out of date (tests do this
    too)
"""

import argparse
import json
import os
import re
import sys

import yaml

CHART = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "charts", "sam2-tracker")
START, END = "<!-- values-table:start -->", "<!-- values-table:end -->"
_TYPED = re.compile(r"^\((\w+)\)\s*")


def _path(parent, key):
    part = f'"{key}"' if "." in key or "/" in key else key
    return f"{parent}.{part}" if parent else part


def _type(value):
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return "string"


def _comment_above(lines, line_no, indent):
    """The `# --` block directly above line `line_no` (0-based) at `indent`, as one string, or
    None."""
    block = []
    i = line_no - 1
    while i >= 0:
        text = lines[i]
        stripped = text.strip()
        if not stripped.startswith("#") or len(text) - len(text.lstrip()) != indent:
            break
        block.append(stripped[1:].strip())
        if stripped.startswith("# --"):
            return " ".join(block[::-1])[2:].strip()
        i -= 1
    return None


def parse_values(path):
    """Rows (key, type, default, description) for every key of values.yaml, and the undocumented
    keys."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    lines = text.splitlines()
    data = yaml.safe_load(text)
    rows, missing = [], []

    def walk(node, value, parent):
        for key_node, value_node in node.value:
            key = key_node.value
            path = _path(parent, key)
            default = value[key]
            desc = _comment_above(lines, key_node.start_mark.line, key_node.start_mark.column)
            if desc is None:
                missing.append(path)
            else:
                typ = _type(default)
                m = _TYPED.match(desc)
                if m:
                    typ, desc = m.group(1), desc[m.end() :]
                rows.append((path, typ, default, desc))
            if isinstance(value_node, yaml.MappingNode):
                walk(value_node, default, path)

    walk(yaml.compose(text), data, "")
    return rows, missing


def _cell(s):
    return s.replace("|", "\\|").replace("\n", " ")


def render_table(rows):
    out = ["| Key | Type | Default | Description |", "|-----|------|---------|-------------|"]
    for key, typ, default, desc in rows:
        dflt = json.dumps(default, separators=(",", ":"))
        out.append(f"| {_cell(key)} | {typ} | `{_cell(dflt)}` | {_cell(desc)} |")
    return "\n".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="Fail if the README table is out of date."
    )
    parser.add_argument("--chart", default=CHART, help="Chart directory.")
    args = parser.parse_args(argv)

    rows, missing = parse_values(os.path.join(args.chart, "values.yaml"))
    if missing:
        print("values.yaml keys without a `# --` comment: " + ", ".join(missing), file=sys.stderr)
        return 1
    readme_path = os.path.join(args.chart, "README.md")
    with open(readme_path, encoding="utf-8") as f:
        readme = f.read()
    head, sep, rest = readme.partition(START)
    _, sep2, tail = rest.partition(END)
    if not (sep and sep2):
        print(f"{readme_path}: markers {START} / {END} not found", file=sys.stderr)
        return 1
    updated = f"{head}{START}\n{render_table(rows)}\n{END}{tail}"
    if args.check:
        if updated != readme:
            print(
                f"{readme_path} is out of date: run python3 scripts/chart-docs.py", file=sys.stderr
            )
            return 1
        return 0
    if updated != readme:
        with open(readme_path, "w", encoding="utf-8") as f:
            f.write(updated)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
