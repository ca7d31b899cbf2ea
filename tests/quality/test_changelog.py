"""The changelog: changelogs/ passes antsibull-changelog's lint, and CHANGELOG.md is exactly what
antsibull-changelog generates from changelogs/changelog.yaml (the releases; the changes of the next
release are fragments in changelogs/fragments/ until `antsibull-changelog release`)."""
import os
import shutil
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, ".venv", "bin", "antsibull-changelog")


def run(args, cwd):
    return subprocess.run([TOOL] + args, cwd=str(cwd), capture_output=True, text=True, timeout=300, check=False)


def copy_of_changelogs(dest):
    shutil.copy2(os.path.join(ROOT, "galaxy.yml"), str(dest / "galaxy.yml"))
    shutil.copytree(os.path.join(ROOT, "changelogs"), str(dest / "changelogs"))
    return dest


def test_fragments_and_changelog_yaml_lint_clean():
    for args in (["lint"], ["lint-changelog-yaml", "changelogs/changelog.yaml"]):
        proc = run(args, ROOT)
        assert (proc.returncode, proc.stdout + proc.stderr) == (0, ""), (args, proc.stdout + proc.stderr)


def test_lint_finds_a_bad_fragment(tmp_path):
    copy_of_changelogs(tmp_path)
    (tmp_path / "changelogs" / "fragments" / "bad.yml").write_text("---\nnew_things:\n  - not a section.\n")
    proc = run(["lint"], tmp_path)
    assert proc.returncode != 0 and "new_things" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_changelog_md_is_generated(tmp_path):
    copy_of_changelogs(tmp_path)
    proc = run(["generate"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(os.path.join(ROOT, "CHANGELOG.md"), encoding="utf-8") as f:
        committed = f.read()
    generated = (tmp_path / "CHANGELOG.md").read_text(encoding="utf-8")
    assert committed == generated, "CHANGELOG.md is not what `antsibull-changelog generate` writes: run it"
