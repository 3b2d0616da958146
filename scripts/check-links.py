#!/usr/bin/env python3
"""Checks that every relative link in the repository's Markdown resolves.

    python3 scripts/check-links.py [FILE.md ...]

With no arguments it checks every tracked or new (not ignored) `*.md` file (`git ls-files`, or a
walk of the tree without `target/`, `.venv/`, `node_modules/` when git is
not there). For each inline link or image `[text](target)` and each
reference definition `[id]: target`:

- `http(s)://`, `mailto:` and other URL schemes are skipped (no network);
- a path must exist inside the repository (a link that leaves it, such as
  `../shared/...`, is an error even if the file exists on this machine);
- `#anchor` (alone or after a `.md` path) must name a heading of that file,
  with GitHub's slugs: lower case, punctuation dropped, spaces to `-`,
  `-1`, `-2` ... for repeats.

Links inside fenced code blocks and inline code are ignored. Exits 1 and
lists every broken link as `file:line: target: reason`. Standard library only.
"""

import os
import re
import subprocess
import sys
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKIP_DIRS = {".git", "target", ".venv", "node_modules", ".local", "fuzz/target"}

INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFDEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
FENCE = re.compile(r"^\s{0,3}(```|~~~)")
HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")
HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"")


def markdown_files():
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "*.md"], cwd=ROOT,
                             capture_output=True, check=True).stdout
        files = [f for f in out.decode().split("\0") if f]
        if files:
            return sorted(f for f in files if os.path.exists(os.path.join(ROOT, f)))
    except (OSError, subprocess.CalledProcessError):
        pass
    found = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        rel = os.path.relpath(dirpath, ROOT)
        dirnames[:] = [d for d in dirnames
                       if d not in SKIP_DIRS and os.path.normpath(os.path.join(rel, d)) not in SKIP_DIRS]
        found += [os.path.normpath(os.path.join(rel, f)) for f in filenames if f.endswith(".md")]
    return sorted(found)


def strip_code(line):
    return re.sub(r"(`+)(?:(?!\1).)+?\1", "", line)


def lines_outside_fences(text):
    fence = None
    for number, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if m:
            if fence is None:
                fence = m.group(1)
            elif m.group(1) == fence:
                fence = None
            continue
        if fence is None:
            yield number, line


def slug(heading):
    """GitHub's heading anchor: the text without markup, lower case."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links keep their text
    text = re.sub(r"<[^>]+>", "", text)
    text = text.replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text, flags=re.UNICODE)
    return text.replace(" ", "-")


_anchors = {}


def anchors(path):
    if path not in _anchors:
        seen, result = {}, set()
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for _, line in lines_outside_fences(text):
            m = HEADING.match(line)
            if m:
                base = slug(m.group(1))
                n = seen.get(base, 0)
                seen[base] = n + 1
                result.add(base if n == 0 else "%s-%d" % (base, n))
            result.update(HTML_ANCHOR.findall(line))
        _anchors[path] = result
    return _anchors[path]


def check(rel):
    errors = []
    path = os.path.join(ROOT, rel)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    for number, line in lines_outside_fences(text):
        plain = strip_code(line)
        targets = INLINE.findall(plain)
        m = REFDEF.match(plain)
        if m:
            targets.append(m.group(1))
        for target in targets:
            if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("//"):
                continue  # a URL: not checked here
            where, _, fragment = target.partition("#")
            where = urllib.parse.unquote(where.split("?", 1)[0])
            fragment = urllib.parse.unquote(fragment)
            if where:
                resolved = os.path.normpath(os.path.join(os.path.dirname(path), where))
                if os.path.relpath(resolved, ROOT).startswith(".."):
                    errors.append((rel, number, target, "points outside the repository"))
                    continue
                if not os.path.exists(resolved):
                    errors.append((rel, number, target, "no such file"))
                    continue
            else:
                resolved = path
            if fragment and resolved.endswith(".md") and os.path.isfile(resolved):
                if fragment not in anchors(resolved):
                    errors.append((rel, number, target, "no heading with this anchor in %s"
                                   % os.path.relpath(resolved, ROOT)))
    return errors


def main():
    files = [os.path.relpath(os.path.abspath(f), ROOT) for f in sys.argv[1:]] or markdown_files()
    errors = []
    for rel in files:
        errors += check(rel)
    for rel, number, target, reason in errors:
        print("%s:%d: %s: %s" % (rel, number, target, reason))
    if errors:
        print("check-links: %d broken link(s) in %d Markdown file(s)" % (len(errors), len(files)))
        return 1
    print("check-links: every relative link in %d Markdown file(s) resolves" % len(files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
