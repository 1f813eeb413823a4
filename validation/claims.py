"""The record a validation experiment returns for each claim it checks."""
from dataclasses import dataclass


@dataclass(frozen=True)
class Claim:
    """One claim (of a paper, or derived in docs/theory) and the evidence for it.

    ``source`` names the paper (by arXiv number) or the docs/theory file that states the claim, ``statement`` the claim in one sentence, ``passed``
    whether the measured evidence supports it, and ``evidence`` the numbers (one line, e.g. "rate 0.99 over N=32..4096").
    ``timed``: the verdict compares wall times, so it depends on the machine's load (the report marks it with
    :func:`validation.walltime.wall`).
    """

    source: str
    statement: str
    passed: bool
    evidence: str
    timed: bool = False
