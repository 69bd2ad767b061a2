"""Write one benchmark's table into BENCHMARKS.md without touching the others.

Each benchmark owns a section delimited by `<!-- begin: NAME -->` and
`<!-- end: NAME -->`; `write_section` replaces that section (or appends it) and
writes the file atomically.
"""

import os
import platform
import re
from control_opt._internal.atomic import atomic_write

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS = os.path.join(ROOT, "BENCHMARKS.md")
HEADER = "# Benchmarks\n\nEvery table below was written by the script named in it; ratios are measured in one run, against a baseline timed in the same process.\n"


def machine_line():
    return f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}."


def write_section(name, markdown, path=BENCHMARKS):
    begin, end = f"<!-- begin: {name} -->", f"<!-- end: {name} -->"
    block = f"{begin}\n{markdown.strip()}\n{end}\n"
    text = open(path).read() if os.path.exists(path) else HEADER
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end) + r"\n?", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + block
    atomic_write(path, lambda f: f.write(text))


def section_rows(name, path=BENCHMARKS):
    """The data rows of the tables of section `name` (header and separator lines left out), so a
    benchmark that measures one row at a time can keep the rows it did not rerun."""
    text = open(path).read() if os.path.exists(path) else ""
    found = re.search(f"<!-- begin: {re.escape(name)} -->(.*?)<!-- end: {re.escape(name)} -->", text, re.S)
    lines = found.group(1).splitlines() if found else []
    return [line for line in lines
            if line.startswith("| ") and not line.startswith("| model") and not line.startswith("|---")]


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
