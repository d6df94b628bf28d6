"""The training threat models' defaults: the papers' step sizes, scaled with the budget."""
from __future__ import annotations

import pytest

from robust_attn.errors import UserError
from robust_attn.threat_models import THREAT_MODELS, resolve_threat

ADVERSARIAL = [cfg.name.value for cfg in THREAT_MODELS.values() if cfg.adversarial]


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_the_paper_step_at_the_paper_budget(name):
    cfg = THREAT_MODELS[name]
    threat = resolve_threat(name)
    assert (threat.eps_label, threat.step_size_label) == (cfg.eps, cfg.step_size)


@pytest.mark.parametrize("name", ADVERSARIAL)
@pytest.mark.parametrize("eps", ["4/255", "0.1", "16/255", "1/255"])
def test_a_budget_alone_keeps_the_papers_step_to_eps_ratio(name, eps):
    paper = resolve_threat(name)
    threat = resolve_threat(name, eps=eps)
    assert threat.step_size / threat.eps == pytest.approx(paper.step_size / paper.eps, rel=1e-5)
    # the label is what the record shows: it parses back to the number used
    assert resolve_threat(name, eps=eps, step_size=threat.step_size_label).step_size == pytest.approx(threat.step_size)


def test_labels_of_scaled_steps():
    assert resolve_threat("pgd", eps="4/255").step_size_label == "1/255"
    assert resolve_threat("fast-fgsm", eps="0.1").step_size_label == "0.125"
    assert resolve_threat("fast-fgsm", eps="16/255").step_size_label == "20/255"


def test_a_given_step_size_is_never_scaled():
    assert resolve_threat("pgd", eps="0.1", step_size="2/255").step_size_label == "2/255"


def test_a_bad_step_size_names_the_option():
    with pytest.raises(UserError, match="--threat-step-size"):
        resolve_threat("pgd", eps="0.1", step_size="-1")
