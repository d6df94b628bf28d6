"""An independent tool confirms the numbers: foolbox 3 (Rauber et al.) on the same images."""
from __future__ import annotations

import foolbox as fb
import pytest
import torch

from robust_attn.attacks import parse_eps_grid
from robust_attn.sweep import sweep

N = 300


def _nested_counts(success: torch.Tensor) -> list[int]:
    """foolbox reports success per eps independently; a point broken at a smaller eps counts as
    broken at every larger one in robust accuracy, as in the sweep."""
    return (~torch.cummax(success.int(), dim=0).values.bool()).sum(1).tolist()


@pytest.fixture(scope="module")
def setup(shipped, embedded_cifar):
    ckpt = shipped["vgg-att3-concat-pc_c10s"] if "vgg-att3-concat-pc_c10s" in shipped else shipped["vgg_c10s"]
    model = ckpt.model.eval().to(memory_format=torch.contiguous_format)
    x, y = embedded_cifar.float_batch(slice(0, N))
    return ckpt, fb.PyTorchModel(model, bounds=(0, 1)), x, y


def test_fgsm_agrees_with_foolbox_exactly(setup):
    ckpt, fmodel, x, y = setup
    grid = parse_eps_grid("0:8:1")
    _, _, success = fb.attacks.FGSM()(fmodel, x, y, epsilons=list(grid.values))
    ours = sweep([ckpt], ["fgsm"], grid, n=N)["n_correct"].tolist()
    assert ours == _nested_counts(success)


def test_pgd_agrees_with_foolbox_within_half_a_point(setup, embedded_cifar):
    """All 932 images: random starts differ between the tools, and half a point is 4.7 examples here
    (on 300 images it would be 1.5, inside the random-start noise). foolbox draws its random start
    from torch's global RNG, seeded here so the test is deterministic."""
    ckpt, fmodel, _, _ = setup
    x, y = embedded_cifar.float_batch(slice(0, len(embedded_cifar)))
    n = len(y)
    grid = parse_eps_grid("0,1,2,4")  # by 4/255 both tools leave < 1% standing
    attack = fb.attacks.LinfPGD(steps=10, rel_stepsize=0.25, random_start=True)
    torch.manual_seed(0)
    success = torch.cat([attack(fmodel, x[s:s + 233], y[s:s + 233], epsilons=list(grid.values))[2]
                         for s in range(0, n, 233)], dim=1)
    theirs = _nested_counts(success)
    # like for like: plain PGD (last iterate), as foolbox runs it
    plain = sweep([ckpt], ["pgd"], grid, attack_args={"early_stop": False})["n_correct"].tolist()
    for eps, a, b in zip(grid.labels, plain, theirs):
        assert abs(a - b) / n <= 0.005, f"eps {eps}: robust-attn {a}/{n} vs foolbox {b}/{n}"
    # the default keeps each point's first adversarial iterate: never weaker than the independent tool
    default = sweep([ckpt], ["pgd"], grid)["n_correct"].tolist()
    for eps, a, b in zip(grid.labels, default, theirs):
        assert a <= b + 0.005 * n, f"eps {eps}: robust-attn {a}/{n} vs foolbox {b}/{n}"
