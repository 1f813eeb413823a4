"""The record a validation experiment returns for each claim it checks."""
from dataclasses import dataclass


@dataclass(frozen=True)
class Claim:
    """One paper (or SPEC) claim and the evidence for it.

    ``source`` names the paper/section ("[A] §3", "SPEC §1"), ``statement`` the claim in one sentence, ``passed``
    whether the measured evidence supports it, and ``evidence`` the numbers (one line, e.g. "rate 0.99 over N=32..4096").
    """

    source: str
    statement: str
    passed: bool
    evidence: str
