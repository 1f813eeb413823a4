"""The README's two fresh-machine commands stay in step with what CI runs and with the CLI."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bash_blocks():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Two commands on a fresh machine", 1)[1].split("\n## ", 1)[0]
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", section, flags=re.S)]


def test_two_commands_one_for_the_report_one_for_the_tests():
    blocks = _bash_blocks()
    assert len(blocks) == 2 and all("\n" not in b for b in blocks)  # exactly two one-line commands
    assert blocks[0].endswith("-m refimpl validate")
    assert blocks[1].endswith("-m pytest")


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    steps = [s.strip() for s in _bash_blocks()[1].split("&&")]
    # the README's install and test steps appear in .ci/run, with pip invoked through the venv's python there
    assert steps[-1] in ci
    install = steps[1].replace(".venv/bin/pip install", ".venv/bin/python -m pip install -q")
    assert install in ci
