"""Verify a claim: is a published robust accuracy what standard AutoAttack measures on the model?

The claim is confirmed when it lies inside the Wilson 95% interval of the accuracy under standard
AutoAttack (the point-wise worst case over APGD-CE, APGD-T, FAB-T and Square) on the evaluation images.
The run is an ordinary sweep into a results folder (resumable, with its admission checks in
``admission.csv``; ``robust-attn report FOLDER`` draws its page), followed by the folder's RobustBench-style
record (:mod:`robust_attn.report.records`), so the verdict comes with the evidence someone else needs to
check it.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UserError

RECORDS_DIR = "records"


@dataclass(frozen=True)
class ClaimVerdict:
    model: str
    eps_label: str
    claimed: float  # percent
    measured: float  # percent, accuracy under standard AutoAttack
    ci_low: float  # percent, Wilson 95%
    ci_high: float
    n: int
    attack_params: str  # the AutoAttack parameters, as the row records them
    unreliable: bool  # a sanity check of the evaluation failed
    records: list[Path]

    @property
    def confirmed(self) -> bool:
        return self.ci_low <= self.claimed <= self.ci_high

    def sentence(self) -> str:
        where = (f"inside the 95% interval [{self.ci_low:.1f}, {self.ci_high:.1f}]% of the measured {self.measured:.1f}% "
                 if self.confirmed else
                 f"{'above' if self.claimed > self.ci_high else 'below'} the 95% interval [{self.ci_low:.1f}, "
                 f"{self.ci_high:.1f}]% of the measured {self.measured:.1f}% ")
        verdict = "confirmed" if self.confirmed else "not confirmed"
        params = ", ".join(f"{k}={v}" for k, v in sorted(json.loads(self.attack_params).items()))
        text = (f"{self.model} at eps {self.eps_label}: the claimed {self.claimed:g}% lies {where}(standard AutoAttack "
                f"as torchattacks runs it, {params}; {self.n:,} images): {verdict}")
        if self.unreliable:
            text += "; the evaluation failed a sanity check (see the record's footnote and admission.csv): treat it as unreliable"
        return text


def check_claim(claimed: float) -> float:
    """A claimed robust accuracy in percent, in [0, 100]."""
    if isinstance(claimed, bool) or not isinstance(claimed, (int, float)) or not math.isfinite(claimed) \
            or not 0 <= claimed <= 100:
        raise UserError(f"--claimed must be a robust accuracy in percent, in [0, 100], got {claimed!r}")
    return float(claimed)


def verify_claim(model: str, eps: str, claimed: float, out: str | os.PathLike, *, eps_unit: str = "255",
                 data: str | None = None, data_dir: str | os.PathLike | None = None, n: int | None = None,
                 attack_args: Mapping[str, Any] | None = None, models_dir: str | os.PathLike = "models",
                 batch_size: int = 256, seed: int = 0, device: str = "cpu",
                 provenance: Mapping[str, Any] | None = None, **callbacks: Callable) -> ClaimVerdict:
    """Sweep ``model`` under standard AutoAttack at ``eps`` into ``out``, write its record under
    ``out/records`` and compare ``claimed`` (percent) with the measured accuracy."""
    from .attacks import parse_eps_grid
    from .report.records import export_records
    from .sweep import run_sweep

    claimed = check_claim(claimed)
    grid = parse_eps_grid(eps, eps_unit)
    if len(grid) != 1 or grid.values[0] <= 0:
        raise UserError(f"--eps must be one budget > 0 (the claim's), got {eps!r}")
    frame = run_sweep([model], ["autoattack"], grid, data, eps_unit=eps_unit, attack_args=attack_args,
                      data_dir=data_dir, models_dir=models_dir, n=n, batch_size=batch_size, seed=seed, device=device,
                      out=out, per_example=True, provenance=provenance, **callbacks)
    row = frame.iloc[0]
    records = export_records([out], Path(out) / RECORDS_DIR, [grid.labels[0]])
    contents = {p: json.loads(p.read_text()) for p in records}
    mine = [p for p, c in contents.items() if c["name"] == row.model and c["provenance"]["n"] == int(row.n)
            and c["provenance"]["checkpoint_sha256"] == row.checkpoint_sha256]
    unreliable = any(contents[p].get("unreliable") for p in mine)
    return ClaimVerdict(str(row.model), grid.labels[0], claimed, 100 * float(row.accuracy), 100 * float(row.ci_low),
                        100 * float(row.ci_high), int(row.n), str(row.attack_params), unreliable, mine)
