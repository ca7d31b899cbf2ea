"""README.md and docs/ as users read them: no references to documents that are not part of the
collection, no relative link (or anchor) to something that does not exist, the own-playbook
example quoted exactly as examples/own_playbook has it, and the test command that CI runs."""
import glob
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCS = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True))
EXAMPLE = os.path.join(ROOT, "examples", "own_playbook")

# Documents users do not have: the project's seeds and design notes, issue numbers.
DANGLING = [
    (re.compile(r"\bseeds?\b", re.I), "a seed"),
    (re.compile(r"\bDESIGN\b"), "the design notes"),
    (re.compile(r"\bissues?\s*#?\s*\d+", re.I), "an issue number"),
    (re.compile(r"\bissue\s*#", re.I), "an issue number"),
]
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def rel(path):
    return os.path.relpath(path, ROOT)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def dangling(text):
    """(line number, what, line) for every reference to a document users do not have."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for pattern, what in DANGLING:
            if pattern.search(line):
                found.append((number, what, line.strip()))
    return found


def slug(heading):
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text):
    out = set()
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            out.add(slug(line.lstrip("#")))
    return out


def broken_links(path, text):
    """Relative links (and #anchors) of one Markdown file whose target does not exist."""
    bad = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
            continue
        file_part, anchor = target.partition("#")[::2]
        if not file_part:  # an anchor of this file
            if anchor not in anchors(text):
                bad.append(target)
            continue
        dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part))
        if not os.path.exists(dest):
            bad.append(target)
        elif anchor and dest.endswith(".md") and anchor not in anchors(read(dest)):
            bad.append(target)
    return bad


def yaml_blocks(text):
    return re.findall(r"^```yaml\n(.*?)^```", text, re.M | re.S)


@pytest.mark.parametrize("path", DOCS, ids=rel)
def test_no_references_to_documents_users_do_not_have(path):
    assert dangling(read(path)) == []


@pytest.mark.parametrize("path", DOCS, ids=rel)
def test_relative_links_resolve(path):
    assert broken_links(path, read(path)) == []


def test_docs_folder_is_linked_from_readme():
    readme = read(os.path.join(ROOT, "README.md"))
    for path in DOCS[1:]:
        assert "](%s" % rel(path) in readme, rel(path)


@pytest.mark.parametrize("name", sorted(os.listdir(EXAMPLE)))
def test_readme_quotes_the_example_exactly(name):
    blocks = yaml_blocks(read(os.path.join(ROOT, "README.md")))
    assert read(os.path.join(EXAMPLE, name)) in blocks, "README.md does not quote examples/own_playbook/" + name


def test_readme_has_the_test_command_ci_runs():
    assert re.search(r"^exec make test$", read(os.path.join(ROOT, ".ci", "run")), re.M)
    readme = read(os.path.join(ROOT, "README.md"))
    assert re.search(r"^```sh\n(?:.*\n)*?make test +#", readme, re.M), "README.md lost its `make test` line"


def test_the_checks_catch_what_they_should(tmp_path):
    """The patterns and the link check really find each kind of problem, and pass good text."""
    for line in ["as in seed 001, section 4", "Seed 000's patterns", "seed 003's file sizes", "DESIGN measured 0.94",
                 "see ../shared/DESIGN.md", "Scale (issue 12, item 4)", "fixed in issue #7"]:
        assert dangling(line), line
    for line in ["the design of the lab", "a seeded random generator", "an issue with the firewall",
                 "`sevpn` lab on real machines"]:
        assert not dangling(line), line
    (tmp_path / "there.md").write_text("# A `code` heading: yes\n")
    page = str(tmp_path / "page.md")
    text = ("[ok](there.md) [ok](there.md#a-code-heading-yes) [ok](https://example.org/x) ![img](there.md)\n"
            "[gone](missing.md) [bad anchor](there.md#nope) [self](#top) ![gone](nothing.png)\n# Top\n")
    assert broken_links(page, text) == ["missing.md", "there.md#nope", "nothing.png"]
