"""Prints the first fenced code block of a language under a heading of a README (the
project's, or the one given), so that `make packs` builds the READMEs' examples and CI
proves they work as written.

Usage: python3 scripts/readme_snippet.py "Writing a pack in C" c [README]
"""

import pathlib
import sys


def snippet(text: str, heading: str, language: str, name: str) -> str:
    """The block's text; exits naming `name` when the heading or the block is missing."""
    fenced = False
    under_heading = False
    inside = None
    for line in text.splitlines():
        if inside is not None:
            if line.strip() == "```":
                return "\n".join(inside) + "\n"
            inside.append(line)
            continue
        if line.startswith("```"):
            # A `#` inside a block (a shell comment) is no heading.
            fenced = not fenced
            if under_heading and fenced and line.strip() == f"```{language}":
                inside = []
            continue
        if fenced or not line.startswith("#"):
            continue
        if under_heading:
            break
        under_heading = line.lstrip("#").strip() == heading
    if not under_heading:
        sys.exit(f"{name} has no heading {heading!r}")
    sys.exit(f"{name} has no {language} block under {heading!r}")


if __name__ == "__main__":
    root = pathlib.Path(__file__).resolve().parent.parent
    readme = pathlib.Path(sys.argv[3]) if len(sys.argv) > 3 else root / "README.md"
    text = readme.read_text(encoding="utf-8")
    sys.stdout.write(snippet(text, sys.argv[1], sys.argv[2], str(readme)))
