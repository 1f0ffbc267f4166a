"""Glob semantics of ``watch.paths`` as a table: (patterns, path, expected)."""

from __future__ import annotations

import pytest

from mpsv3.policy.globs import DEFAULT_EXCLUDES, GlobSet, expand_braces, validate_glob

CASES: list[tuple[list[str], str, bool]] = [
    # ** matches zero or many segments in the middle, one or more at the end
    (["app/**/*.py"], "app/x.py", True),
    (["app/**/*.py"], "app/a/b/c/x.py", True),
    (["app/**/*.py"], "app/x.txt", False),
    (["app/**/*.py"], "other/app/x.py", False),
    (["web/**"], "web/index.html", True),
    (["web/**"], "web/a/b/c.js", True),
    (["web/**"], "webby/x.js", False),
    (["**/*.py"], "x.py", True),
    (["**/*.py"], "deep/down/x.py", True),
    (["**"], "anything/at/all", True),
    # * stays inside one segment; ? is one character; classes
    (["engine/*.py"], "engine/x.py", True),
    (["engine/*.py"], "engine/sub/x.py", False),
    (["engine/?.py"], "engine/a.py", True),
    (["engine/?.py"], "engine/ab.py", False),
    (["engine/[ab].py"], "engine/b.py", True),
    (["engine/[ab].py"], "engine/c.py", False),
    (["engine/[!ab].py"], "engine/c.py", True),
    (["engine/[!ab].py"], "engine/a.py", False),
    (["engine/[a-c]x"], "engine/bx", True),
    (["engine/[*]"], "engine/*", True),
    (["engine/[*]"], "engine/x", False),
    # braces, nested, with an empty alternative
    (["{app,lib}/*.py"], "lib/x.py", True),
    (["{app,lib}/*.py"], "src/x.py", False),
    (["{src,lib/{x,y}}/*.py"], "lib/y/m.py", True),
    (["{src,lib/{x,y}}/*.py"], "lib/z/m.py", False),
    (["conf/app.yaml{,.local}"], "conf/app.yaml.local", True),
    (["conf/{a}.yaml"], "conf/{a}.yaml", True),
    # ! excludes; the last match wins, so a later include brings a path back
    (["app/**", "!app/tests/**"], "app/tests/t.py", False),
    (["app/**", "!app/tests/**"], "app/main.py", True),
    (["app/**", "!app/tests/**", "app/tests/keep.py"], "app/tests/keep.py", True),
    (["app/tests/keep.py", "app/**", "!app/tests/**"], "app/tests/keep.py", False),
    (["!app/x.py"], "app/x.py", False),
    # no slash = any depth (gitignore style); a directory match covers its contents
    (["*.py"], "x.py", True),
    (["*.py"], "a/b/c/x.py", True),
    (["web"], "web/a/b.js", True),
    (["web/"], "sub/web/a.js", True),
    (["engine/sub/"], "engine/sub/a.py", True),
    (["engine/sub/"], "x/engine/sub/a.py", False),
    # leading "./", and Windows separators in paths and in patterns
    (["./engine/*.py"], "engine/x.py", True),
    (["engine/*.py"], "engine\\x.py", True),
    (["engine\\**\\*.py"], "engine/a/x.py", True),
    (["app/**/*.py"], "app\\a\\b\\x.py", True),
    # .. only matches patterns that climb as far; ** never leaves the root
    (["../shared/*.py"], "../shared/x.py", True),
    (["**/*.py"], "../shared/x.py", False),
    (["*.py"], "../x.py", False),
    # dotfiles are ordinary names
    (["*"], ".env", True),
]

DEFAULTS: list[tuple[str, bool]] = [
    (".git/HEAD", True),
    ("sub/.git/objects/ab", True),
    ("engine/__pycache__/a.py", True),
    ("engine/x.pyc", True),
    ("web/node_modules/react/index.js", True),
    ("engine/.x.py.swp", True),
    ("engine/.x.py.swx", True),
    ("engine/x.py~", True),
    ("engine/.#x.py", True),
    ("engine/#x.py#", True),
    ("engine/4913", True),
    ("engine/x.tmp", True),
    ("engine/x.py", False),
    ("engine/git/x.py", False),
    ("engine/49130", False),
]


@pytest.mark.parametrize(("patterns", "path", "expected"), CASES)
def test_glob_semantics(patterns: list[str], path: str, expected: bool) -> None:
    assert GlobSet(patterns).matches(path) is expected


@pytest.mark.parametrize(("path", "expected"), DEFAULTS)
def test_default_excludes(path: str, expected: bool) -> None:
    assert GlobSet(DEFAULT_EXCLUDES).matches(path) is expected


@pytest.mark.parametrize(
    ("patterns", "roots"),
    [
        (["app/**/*.py", "!app/tests/**"], ["app"]),
        (["engine/main.py"], ["engine"]),
        (["*.py"], [""]),
        (["web/"], [""]),
        (["web/static/"], ["web/static"]),
        (["{a,b/{c,d}}/x/*.txt"], ["a/x", "b/c/x", "b/d/x"]),
        (["[ab]/x.py", "src/*/y.py"], ["", "src"]),
        (["../shared/**/*.py"], ["../shared"]),
    ],
)
def test_roots(patterns: list[str], roots: list[str]) -> None:
    assert GlobSet(patterns).roots() == roots


def test_expand_braces_nested_in_order() -> None:
    assert expand_braces("{a,b/{c,d}}.{py,pyi}") == [
        "a.py",
        "a.pyi",
        "b/c.py",
        "b/c.pyi",
        "b/d.py",
        "b/d.pyi",
    ]
    assert expand_braces("[{]x") == ["[{]x"]


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("", "empty pattern"),
        ("!", "nothing after '!'"),
        ("/etc/*.conf", "absolute path"),
        ("C:\\app\\*.py", "absolute path"),
        ("app/../x", "'..' is allowed only at the start"),
        ("app/[ab", "unclosed '['"),
        ("app/{a,b", "unbalanced '{'"),
        ("app/a}", "unbalanced '}'"),
        ("app/[z-a]", "bad character class"),
        ("{a,b}{c,d}{e,f}{g,h}{i,j}{k,l}{m,n}{o,p}{q,r}", "more than 256"),
    ],
)
def test_validate_glob_problems(pattern: str, problem: str) -> None:
    found = validate_glob(pattern)
    assert found is not None
    assert problem in found
    with pytest.raises(ValueError, match=r"^'"):
        GlobSet([pattern])


@pytest.mark.parametrize("pattern", ["app/**/*.py", "!app/tests/**", "../x/{a,b}", "[!a]?", "*"])
def test_validate_glob_accepts(pattern: str) -> None:
    assert validate_glob(pattern) is None
