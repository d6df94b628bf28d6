"""The report reads facts from the columns a run records, never from names; folders written by 0.3
(no such columns) go through the one fallback, report/legacy.py, and report as before.

Every folder here is written with pandas (no model, no attack), so names can be chosen to mean nothing:
``spotlight`` is an attention variant of ``plain`` only because its rows say so.
"""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pandas as pd
import pytest

from robust_attn.report import build_report
from robust_attn.report.legacy import RESULT_DESCRIPTION, describe_results, describe_transfer
from robust_attn.report.tables import ambiguous_baselines, attention_vs_baseline, baseline_candidates
from robust_attn.report.transfer import build_transfer_report, model_descriptions, pairing
from robust_attn.results import RESULT_COLUMNS, UNKNOWN, read_results_csv, wilson_interval

ROOT = Path(__file__).resolve().parents[1]
N = 50
EPS = ((0.0, "0"), (4 / 255, "4/255"), (8 / 255, "8/255"))


def _row(model: str, architecture: str, attack: str, eps: float, eps_label: str, k: int, **extra) -> dict:
    low, high = wilson_interval(k, N)
    row = {"model": model, "checkpoint_sha256": f"{abs(hash(model)):064d}"[:64], "architecture": architecture,
           "width": 0.5, "trained_on": "cifar10-subset", "dataset": "cifar10-embedded", "n": N, "attack": attack,
           "attack_params": "{}", "norm": "Linf", "objective": "misclassify", "eps": eps, "eps_label": eps_label,
           "n_correct": k, "accuracy": k / N, "ci_low": low, "ci_high": high, "worst_case_n_correct": k,
           "worst_case_accuracy": k / N, "worst_case_ci_low": low, "worst_case_ci_high": high,
           "accuracy_method": "per-eps", "clean_accuracy": 40 / N, "zero_gradient_fraction": 0.0,
           "max_perturbation": eps, "attack_failures": 0, "attention_shift": float("nan"), "seed": 0,
           "version": "0.4.0", "seconds": 0.1}
    return {**row, **extra}


def _curve(model: str, architecture: str, attack: str, counts: tuple[int, ...], **extra) -> list[dict]:
    return [_row(model, architecture, attack, eps, label, k, **extra) for (eps, label), k in zip(EPS, counts)]


# Two models whose names follow no rule: a backbone 'plain' and its attention variant 'spotlight'.
DESCRIBED = {"plain": {"model_family": "toy", "baseline": "", "attention_maps": "none"},
             "spotlight": {"model_family": "toy", "baseline": "plain", "attention_maps": "gate"}}
KINDS = {"zap": ("single-step", True), "zoom": ("iterative", True), "fuzz": ("noise", False)}


def _described_rows(**gradient) -> list[dict]:
    rows = []
    for model, arch, counts in (("net-a", "plain", (40, 20, 10)), ("net-b", "spotlight", (40, 25, 12))):
        for attack, (kind, ce) in KINDS.items():
            shift = {"zap": 5, "zoom": 0, "fuzz": 15}[attack]
            rows += _curve(model, arch, attack, (counts[0], counts[1] + shift, counts[2] + shift),
                           **DESCRIBED[arch], training_threat_model="standard", model_args="{}", attack_kind=kind, ce_gradient=ce,
                           **gradient)
    return rows


def _folder(path: Path, rows: list[dict], catalog: dict | None = None) -> Path:
    path.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(path / "results.csv", index=False)
    if catalog is not None:
        start = {"event": "start", "run_id": "r1", "time": "2026-01-01T00:00:00+0000", "command": "robust-attn sweep",
                 "settings": {"n": N}, "attacks": [], "checkpoints": [], "planned": [], "attack_catalog": catalog}
        end = {"event": "end", "run_id": "r1", "status": "finished", "wall_seconds": 1.0}
        (path / "runs.jsonl").write_text(json.dumps(start) + "\n" + json.dumps(end) + "\n")
    return path


def _report(folder: Path, out: Path) -> dict[str, pd.DataFrame | str]:
    build_report([folder], out, panel_images=0, shift_images=0)
    return {"page": (out / "index.html").read_text(),
            **{name: pd.read_csv(out / f"{name}.csv", keep_default_na=False)
               for name in ("summary", "sanity", "attention_vs_baseline")}}


# ------------------------------------------------------------------ a folder whose rows describe themselves

def test_pairing_maps_and_attack_kinds_come_from_the_columns(tmp_path):
    report = _report(_folder(tmp_path / "described", _described_rows()), tmp_path / "report")
    diffs = report["attention_vs_baseline"]
    assert set(diffs["model"]) == {"net-b"} and set(diffs["baseline"]) == {"net-a"}
    sanity = dict(zip(report["sanity"]["check"], report["sanity"]["status"]))
    iterative = next(s for c, s in sanity.items() if c.startswith("iterative attacks"))
    noise = next(s for c, s in sanity.items() if c.startswith("random noise"))
    assert iterative == "PASS" and noise == "PASS"  # zap is single-step and fuzz noise because the rows say so
    assert 'class="name attn">net-b' in report["page"]  # a model with maps, marked as attention model


def test_a_variant_is_paired_only_with_a_baseline_trained_alike():
    rows = _described_rows()
    frame = pd.DataFrame(rows + [{**r, "model": "net-a-at", "training_threat_model": "pgd-linf-8"}
                                 for r in rows if r["model"] == "net-a"])
    frame = frame.assign(attack_label=frame["attack"])
    assert set(attention_vs_baseline(frame, None, set())["baseline"]) == {"net-a"}
    assert not ambiguous_baselines(frame)
    trained = frame.assign(training_threat_model="pgd-linf-8")
    assert ambiguous_baselines(trained) == {("net-b", "cifar10-embedded", N): ["net-a", "net-a-at"]}


def test_masking_hints_name_the_run_logs_catalog(tmp_path):
    catalog = {name: {"kind": kind, "norm": "Linf", "eps_bounded": True, "uses_gradient": kind != "noise",
                      "ce_gradient": ce, "objective": "misclassify"} for name, (kind, ce) in KINDS.items()}
    catalog["margin-walk"] = {"kind": "iterative", "norm": "Linf", "eps_bounded": True, "uses_gradient": True,
                              "ce_gradient": False, "objective": "misclassify"}
    report = _report(_folder(tmp_path / "masked", _described_rows(zero_gradient_fraction=0.5), catalog),
                     tmp_path / "report")
    assert "FAIL" in set(report["sanity"]["status"])
    page = report["page"]
    assert "Run next" in page and "<code>margin-walk</code>" in page and "--attack margin-walk" in page
    assert "apgd-dlr" not in page  # 0.3's catalog is not assumed for a run that recorded its own


# ------------------------------------------------------------------ a folder written by 0.3

def _legacy_rows() -> list[dict]:
    rows = []
    for model, arch, counts in (("vgg_c10s", "vgg", (40, 20, 10)), ("vgg-att3-concat-pc_c10s", "vgg-att3-concat-pc",
                                                                    (40, 25, 12)),
                                ("resnet-se_c10s", "resnet-se", (40, 22, 11))):
        for attack, shift in (("fgsm", 5), ("pgd", 0), ("noise", 15)):
            rows += _curve(model, arch, attack, (counts[0], counts[1] + shift, counts[2] + shift))
    return rows


def test_a_folder_written_by_0_3_reports_as_one_that_describes_itself(tmp_path):
    """The fallback fills the columns a 0.3 folder lacks; the same rows with those columns written out
    give the same pairing, summary and sanity checks."""
    legacy = pd.DataFrame(_legacy_rows())
    assert not set(RESULT_DESCRIPTION) & set(legacy.columns)
    old = _report(_folder(tmp_path / "old", _legacy_rows()), tmp_path / "old-report")
    described = describe_results(legacy)
    assert described.set_index("model")["baseline"].to_dict() == {
        "vgg_c10s": "", "vgg-att3-concat-pc_c10s": "vgg", "resnet-se_c10s": "resnet"}
    assert set(described["attack_kind"]) == {"single-step", "iterative", "noise"}
    new = _report(_folder(tmp_path / "new", described.to_dict("records")), tmp_path / "new-report")
    for name in ("summary", "sanity", "attention_vs_baseline"):
        pd.testing.assert_frame_equal(old[name], new[name], check_dtype=False)
    assert set(old["attention_vs_baseline"]["model"]) == {"vgg-att3-concat-pc_c10s"}  # resnet-se: no resnet here
    statuses = set(old["sanity"]["status"])
    assert statuses <= {"PASS", "NOT TESTED"} and "PASS" in statuses


def test_a_folder_mixing_0_3_cells_with_described_ones_describes_every_row(tmp_path):
    """Cells a 0.3 run left beside cells a new run wrote: the results reader gives the 0.3 rows' facts
    unknown, and the fallback fills those rows alone."""
    described = describe_results(pd.DataFrame(_legacy_rows()))
    old = described[described["attack"] != "noise"].drop(columns=list(RESULT_DESCRIPTION))
    new = described[described["attack"] == "noise"].assign(training_threat_model="pgd-linf-8")
    folder = _folder(tmp_path / "mixed", [*old.to_dict("records"), *new.to_dict("records")])
    read = read_results_csv(folder)
    assert (read.loc[read["attack"] != "noise", "model_family"] == "").all()
    filled = describe_results(read)
    expected = pd.concat([described[described["attack"] != "noise"], new])
    for column in RESULT_DESCRIPTION:
        assert filled[column].tolist() == expected[column].tolist(), column
    assert set(filled.loc[filled["attack"] == "noise", "training_threat_model"]) == {"pgd-linf-8"}


def test_the_fallback_touches_no_column_a_folder_has():
    rows = pd.DataFrame(_described_rows())
    assert describe_results(rows)[list(RESULT_DESCRIPTION)].equals(rows[list(RESULT_DESCRIPTION)])


# ------------------------------------------------------------------ transfer folders

def _transfer_cells(described: bool) -> pd.DataFrame:
    models = {"src-one": ("plain", ""), "src-two": ("spotlight", "plain")} if described else \
        {"vgg_c10s": ("vgg", ""), "vgg-cbam_c10s": ("vgg-cbam", "vgg")}
    cells = []
    for source in models:
        for target in models:
            for eps, label in EPS[:2]:
                k = 40 if eps == 0 else (10 if source == target else 25)
                low, high = wilson_interval(k, N)
                cell = {"source": source, "target": target, "dataset": "cifar10-subset", "n": N, "attack": "pgd",
                        "attack_params": "{}", "norm": "Linf", "eps": eps, "eps_label": label, "n_correct": k,
                        "accuracy": k / N, "ci_low": low, "ci_high": high, "clean_accuracy": 40 / N}
                if described:
                    for role, name in (("source", source), ("target", target)):
                        arch, base = models[name]
                        cell.update({f"{role}_architecture": arch, f"{role}_family": "toy", f"{role}_baseline": base,
                                     f"{role}_attention_maps": "gate" if base else "none",
                                     f"{role}_training_threat_model": "standard"})
                    cell.update(attack_kind="iterative", ce_gradient=True)
                cells.append(cell)
    return pd.DataFrame(cells)


@pytest.mark.parametrize("described", [True, False])
def test_transfer_pairs_from_the_recorded_architectures(tmp_path, described):
    cells = _transfer_cells(described)
    folder = tmp_path / "t"
    folder.mkdir()
    cells.to_csv(folder / "transfer.csv", index=False)
    path = build_transfer_report(folder)
    asym = pd.read_csv(path.parent / "transfer_asymmetry.csv")
    pair = ("src-two", "src-one") if described else ("vgg-cbam_c10s", "vgg_c10s")
    assert set(zip(asym["attention"], asym["baseline"])) == {pair}
    summary = pd.read_csv(path.parent / "transfer_summary.csv")
    kinds = dict(zip(summary["source"], summary["source_kind"]))
    assert kinds == {pair[0]: "attention", pair[1]: "baseline"}


def test_transfer_pairs_no_variant_with_two_candidate_baselines():
    cells = describe_transfer(_transfer_cells(True))
    twin = cells[cells["source"] == "src-one"].assign(source="src-one-again")
    cells = pd.concat([cells, twin], ignore_index=True)
    result = pairing(cells, model_descriptions(cells))
    assert result.pairs == [] and result.unpaired == ["src-two"]


def test_transfer_pairs_seed_replicas_by_their_recorded_training_data():
    cells = describe_transfer(_transfer_cells(True))
    twin = cells[cells["source"] == "src-one"].assign(source="src-one-again")
    cells = pd.concat([cells, twin], ignore_index=True)
    data = {"src-one": "c10-seed0", "src-two": "c10-seed0", "src-one-again": "c10-seed1"}
    recorded = cells.assign(source_trained_on=cells["source"].map(data), target_trained_on=cells["target"].map(data))
    assert pairing(recorded, model_descriptions(recorded)).pairs == [("src-two", "src-one")]
    # a variant that did not record its training data matches both replicas: no single baseline
    unknown = recorded.assign(**{f"{end}_trained_on": recorded[f"{end}_trained_on"].mask(recorded[end] == "src-two", "")
                                 for end in ("source", "target")})
    assert pairing(unknown, model_descriptions(unknown)).unpaired == ["src-two"]


def test_a_transfer_folder_mixing_0_3_rows_with_described_ones_describes_every_row():
    old = _transfer_cells(False)
    new = describe_transfer(_transfer_cells(True)).assign(source_trained_on="c10", target_trained_on="c10")
    mixed = describe_transfer(pd.concat([old, new], ignore_index=True).fillna(""))
    assert mixed.iloc[len(old):][new.columns].astype(str).equals(new.astype(str).set_axis(mixed.index[len(old):]))
    first = mixed.iloc[:len(old)]
    assert set(first["source_architecture"]) == {"vgg", "vgg-cbam"} and set(first["source_trained_on"]) == {"c10s"}
    assert set(first["attack_kind"]) == {"iterative"} and first["ce_gradient"].all()


# ------------------------------------------------------------------ what the report may import

FORBIDDEN = ("robust_attn.attacks", "robust_attn.models", "robust_attn.sweep", "robust_attn.transfer")


def _imports(path: Path, package: str) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            out |= {module, *(f"{module}.{a.name}" for a in node.names)}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return out


def test_no_report_module_imports_the_registries_the_sweep_or_transfer():
    for path in (ROOT / "robust_attn" / "report").rglob("*.py"):
        package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
        imported = _imports(path, package)
        assert not {m for m in imported for f in FORBIDDEN if m == f or m.startswith(f + ".")}, (path, imported)


def test_the_report_reads_the_description_columns_beside_the_result_columns():
    """The report reads the description columns whether or not results.py declares them yet."""
    from robust_attn.report.inputs import COLUMNS

    assert COLUMNS[:len(RESULT_COLUMNS)] == list(RESULT_COLUMNS) and set(RESULT_DESCRIPTION) <= set(COLUMNS)


def test_importing_every_report_page_loads_no_registry_sweep_or_transfer():
    import subprocess
    import sys

    code = ("import sys, robust_attn.report, robust_attn.report.study, robust_attn.report.transfer; "
            f"print([m for m in sys.modules if m.startswith({FORBIDDEN!r})])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def _sweep_models(**args: str) -> pd.DataFrame:
    """One row per model of a sweep folder; ``args``: each model's recorded model_args."""
    arch = {"r20": ("resnet", ""), "r8": ("resnet", ""), "se8": ("resnet-se", "resnet")}
    return pd.DataFrame([{"model": m, "architecture": arch[m][0], "baseline": arch[m][1], "width": 1.0,
                          "trained_on": "cifar10", "model_args": a, "dataset": "cifar10-subset", "n": N,
                          "training_threat_model": "standard"} for m, a in args.items()])


def test_the_sweep_page_pairs_no_depth_8_variant_with_a_depth_20_baseline():
    key = ("se8", "cifar10-subset", N)
    assert baseline_candidates(_sweep_models(r20='{"depth":20}', se8='{"depth":8}')) == {key: []}
    assert baseline_candidates(_sweep_models(r20='{"depth":20}', r8='{"depth":8}', se8='{"depth":8}')) == {key: ["r8"]}
    # 0.3 rows record no model arguments (the fallback leaves them unknown): they pair as before
    assert baseline_candidates(_sweep_models(r20=UNKNOWN, se8=UNKNOWN)) == {key: ["r20"]}
