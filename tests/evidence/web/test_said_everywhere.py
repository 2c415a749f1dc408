"""Every refusal a page can show is made with catalog.said.say, so a Chinese page says it in Chinese: an f-string or
a plain literal raised (or handed to a page as its error) in a module whose refusals reach a page would be shown in
English. The modules are named (a new page-facing module is added here); what is exempt says why."""
from __future__ import annotations

import ast
from pathlib import Path

from catalog.said import said_in

ROOT = Path(__file__).parents[3]

#: Modules whose refusals reach a page (through str(exc), an HTTPException's detail or a page's error).
PAGE_FACING = [
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "evidence" / "web").glob("*.py")),
    "catalog/access.py", "catalog/cases.py", "catalog/classification.py", "catalog/disposal.py", "catalog/errors.py",
    "catalog/periods.py", "catalog/registry.py", "catalog/releases.py", "catalog/restamping.py",
    "catalog/saved_searches.py",
    "catalog/sensitivity.py", "catalog/shares.py", "catalog/spotcheck.py", "catalog/spotcheck_result.py",
    "catalog/spotcheck_team.py",
    "catalog/package/refusals.py", "catalog/package/signing_keys.py", "catalog/stamps.py", "catalog/users.py",
    "ingest/documents.py",
    "ingest/pipeline/options.py",
    "ingest/redaction/derivative.py", "ingest/redaction/spec.py", "ingest/snapshots.py",
]
#: (module, exception) raised with plain text that no page shows as a refusal.
EXEMPT = {
    ("evidence/web/ranges.py", "ValueError"),  # a bad Range header: a bare 416 answer to a player, no page
    ("evidence/web/search_form.py", "ValueError"),  # caught by parse_search, which says its own problem
    ("ingest/redaction/spec.py", "TypeError"),  # inside RedactionSpec.from_json, said by its RedactionInvalid
    ("ingest/redaction/derivative.py", "RedactionAbandoned"),  # a renderer that lost its job: the worker's log
    ("evidence/web/deps.py", "PageInstead"),  # carries the page to answer; its text is never shown
}
INTERNAL = {"AssertionError", "RuntimeError", "NotImplementedError"}  # a bug, never a refusal


def _plain(node: ast.expr) -> bool:
    """English made on the spot: an f-string, a string literal or a concatenation with one."""
    if isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str)):
        return True
    if isinstance(node, ast.BinOp):
        return _plain(node.left) or _plain(node.right)
    if isinstance(node, ast.List):
        return any(_plain(e) for e in node.elts)
    return False


def _problems(node: ast.expr) -> bool:
    """A list of problems a refusal lists (`problems`, `problems.append`, `self.problems`)."""
    target = node.value if isinstance(node, ast.Attribute) and node.attr == "append" else node
    name = target.id if isinstance(target, ast.Name) else getattr(target, "attr", "")
    return "problem" in name


def _name(call: ast.Call) -> str:
    return call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", "")


def plain_refusals(path: str, source: str) -> list[str]:
    """Where *source* (the text of module *path*) raises, or gives a page, English made on the spot."""
    found = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            name = _name(node.exc)
            said = node.exc.args[1:2] if name == "HTTPException" else node.exc.args[:1]
            if name not in INTERNAL and (path, name) not in EXEMPT and any(_plain(a) for a in said):
                found.append(f"{path}:{node.lineno} raise {name}")
        elif isinstance(node, ast.Call) and any(k.arg in ("error", "message") and _plain(k.value)
                                                for k in node.keywords):
            found.append(f"{path}:{node.lineno} {_name(node)}(error=…)")  # a page given English
        elif isinstance(node, ast.Call) and _name(node) == "append" and node.args and _plain(node.args[0]) \
                and _problems(node.func):
            found.append(f"{path}:{node.lineno} problems.append")  # a refusal's list of problems
        elif isinstance(node, ast.Assign | ast.AugAssign) and _plain(node.value) and isinstance(node.value, ast.List) \
                and any(_problems(t) for t in (node.targets if isinstance(node, ast.Assign) else [node.target])):
            found.append(f"{path}:{node.lineno} problems = […]")
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):  # an exception that makes its English
        for node in ast.walk(cls):
            if isinstance(node, ast.Call) and _name(node) == "__init__" and node.args and _plain(node.args[0]) \
                    and (path, cls.name) not in EXEMPT:
                found.append(f"{path}:{node.lineno} {cls.name}.__init__")
    return found


def test_every_refusal_a_page_can_show_is_said_in_the_readers_language():
    assert [found for path in PAGE_FACING
            for found in plain_refusals(path, (ROOT / path).read_text(encoding="utf-8"))] == []


def test_the_check_finds_what_it_looks_for():
    """An f-string refusal, a literal handed to a page and a list of plain problems are found; say() is not."""
    source = ('raise CaseStateError(f"case {n} is closed")\nrender(request, error="plain")\n'
              'raise StampInvalid(["blank"])\nraise CaseStateError(say("case {n}", n=1))\n'
              'raise AssertionError("unreachable")\nraise HTTPException(404, f"no {n}")\n'
              'class Refused(Exception):\n    def __init__(self, what):\n'
              '        super().__init__(f"no package for {what}")\n'
              'problems.append(f"{n} is blank")\nproblems = [f"no {n}"]\nproblems.append(say("{n} is blank", n=1))\n'
              'lines.append(f"{n}")\n')
    assert set(plain_refusals("probe.py", source)) == {
        "probe.py:1 raise CaseStateError", "probe.py:2 render(error=…)", "probe.py:3 raise StampInvalid",
        "probe.py:6 raise HTTPException", "probe.py:9 Refused.__init__", "probe.py:10 problems.append",
        "probe.py:11 problems = […]"}


def _missing_values(source: str) -> list[tuple[int, str]]:
    """say("…{x}…", …) calls that give no x (a KeyError when the refusal is made, hiding the refusal itself)."""
    from string import Formatter

    missing = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and _name(node) == "say" and node.args \
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str) \
                and not any(k.arg is None for k in node.keywords):  # **values: not known here
            asked = {name for _l, name, _s, _c in Formatter().parse(node.args[0].value) if name is not None}
            given = {k.arg for k in node.keywords}
            missing += [(node.lineno, name) for name in sorted(asked - given)]
    return missing


def test_every_message_said_is_given_every_value_it_names():
    found = {str(path.relative_to(ROOT)): _missing_values(path.read_text(encoding="utf-8"))
             for top in ("catalog", "evidence", "ingest") for path in (ROOT / top).rglob("*.py")}
    assert {path: missing for path, missing in found.items() if missing} == {}
    assert _missing_values('say("case {case} is closed on {day}", case=1)') == [(1, "day")]


def test_a_malformed_form_field_is_said_in_the_readers_language():
    """FastAPI's field errors (a blank required box, a number that is not one) said as the archive's messages."""
    from evidence.web.app import field_problem
    from evidence.web.i18n import gettext_for

    zh = gettext_for("zh_CN")
    said = [field_problem({"type": "missing", "loc": ("body", "reason"), "msg": "Field required"}),
            field_problem({"type": "int_parsing", "loc": ("body", "size"), "msg": "Input should be a valid integer"}),
            field_problem({"type": "string_too_long", "loc": ("body", "code"), "ctx": {"max_length": 64}}),
            field_problem({"type": "url_parsing", "loc": ("body", "x"), "msg": "Input should be a valid URL"})]
    assert said == ["reason: required", "size: not a whole number", "code: at most 64 characters",
                    "x is not valid: Input should be a valid URL"]
    assert [said_in(s, zh) for s in said] == ["reason：必须填写", "size：不是整数", "code：最多 64 个字符",
                                              "x 无效：Input should be a valid URL"]
