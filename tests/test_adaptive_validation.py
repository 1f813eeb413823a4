"""The adaptive-solvers validation experiment in quick mode: it runs, writes its section, and every claim holds."""
from validation import EXPERIMENTS
from validation import adaptive_solvers


def test_quick_experiment_claims_hold(tmp_path):
    assert "adaptive_solvers" in EXPERIMENTS
    claims = adaptive_solvers.run(tmp_path, quick=True)
    assert len(claims) == 7
    failed = [c for c in claims if not c.passed]
    assert not failed, failed
    text = (tmp_path / "adaptive_solvers.md").read_text()
    assert "| rtol | N | rejected |" in text and "pattern left → right" in text
