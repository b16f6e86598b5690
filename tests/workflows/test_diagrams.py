"""The state diagrams come from the machine definitions, and the README shows them as they are."""

from __future__ import annotations

from config.settings import ROOT
from workflows.machines import CASE_TRANSITIONS, diagram


def test_diagrams_command_prints_mermaid_for_both_lifecycles(runner) -> None:
    result = runner.invoke(args=["diagrams"])
    assert result.exit_code == 0, result.output
    assert result.output.count("stateDiagram-v2") == 2
    assert "pending_approval --> referred: approve | escalate" in result.output
    assert "failed --> queued: retry" in result.output


def test_every_case_transition_is_drawn() -> None:
    source = diagram("case")
    for transition in CASE_TRANSITIONS:
        assert transition["trigger"] in source


def test_the_readme_shows_the_generated_diagrams(runner) -> None:
    generated = runner.invoke(args=["diagrams", "--markdown"]).output.strip()
    assert generated in (ROOT / "README.md").read_text(encoding="utf-8")
