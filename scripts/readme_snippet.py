"""Prints the first fenced code block of a language under a heading of a README (the
project's, or the one given), so that `make packs` builds the READMEs' examples and CI
proves they work as written.

Usage: python3 scripts/readme_snippet.py "Writing a pack in C" c [README]
"""

import pathlib
import sys


def snippet(text: str, heading: str, language: str) -> str:
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.lstrip("#").strip() == heading)
    except StopIteration:
        sys.exit(f"README.md has no heading {heading!r}")
    inside = None
    for line in lines[start + 1 :]:
        if inside is None:
            if line.startswith("#"):
                break
            if line.strip() == f"```{language}":
                inside = []
        elif line.strip() == "```":
            return "\n".join(inside) + "\n"
        else:
            inside.append(line)
    sys.exit(f"README.md has no {language} block under {heading!r}")


if __name__ == "__main__":
    root = pathlib.Path(__file__).resolve().parent.parent
    readme = pathlib.Path(sys.argv[3]) if len(sys.argv) > 3 else root / "README.md"
    sys.stdout.write(snippet(readme.read_text(encoding="utf-8"), sys.argv[1], sys.argv[2]))
