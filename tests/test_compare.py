"""The methods comparison table: exact values from crafted inputs, NA where an input is missing."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from contig.cli import main
from contig.evaluate.compare import ComparisonInputs, Probe, comparison_table
from contig.core.errors import InputError


def tsv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def inputs(tmp_path):
    truth = tsv(tmp_path / "truth.tsv",
                "method\tn_loci\tloci_major\tloci_burden\tloci_polygenic\tloci_false\t"
                "loci_false_null_chrom\t"
                "planted_major\tmajor_found\tmajor_recall\tplanted_burden\tburden_found\twindow_kb\t"
                "n_phenotypes\tlambda_gc_null_median\tlambda_gc_null_mean\n"
                "contig\t10\t6\t0\t4\t0\t0\t18\t6\t0.3333333333333333\t4\t0\t250.0\t10\t1.0086\t1.0105\n"
                "simclr\t6\t3\t0\t2\t1\t1\t18\t3\t0.16666666666666666\t4\t0\t250.0\tNA\tNA\tNA\n"
                "other\t1\t1\t0\t0\t0\t0\t18\t1\t0.0555\t4\t0\t250.0\tNA\tNA\tNA\n")
    rep = tsv(tmp_path / "rep_contig.summary.tsv",
              "name_a\tname_b\tn_loci_a\tn_loci_b\treplicated_a_in_b\treplicated_b_in_a\t"
              "lead_missing_in_b\t"
              "lead_missing_in_a\tn_replicated\talpha\twindow_kb\n"
              "left\tright\t7\t8\t5\t6\t0\t0\t6\t0.05\t250.0\n")
    probes = tsv(tmp_path / "probes.tsv",
                 "method\tlabel\tkind\tmetric\tfraction\tn_seeds\tmean\tsd\tlower\tupper\n"
                 "contig\tdisease\tbinary\tauroc\t1.0\t5\t0.7123\t0.0101\t0.689\t0.7351\n"
                 "contig\tdisease\tbinary\tauroc\t0.1\t5\t0.6\t0.05\t0.55\t0.65\n"
                 "contig\tseverity\tordinal\tkappa_quadratic\t1.0\t5\t0.41\t0.02\t0.35\t0.47\n"
                 "contig\tseverity\tordinal\tauroc_vs_lowest\t1.0\t5\t0.66\t0.02\t0.6\t0.7\n"
                 "simclr\tdisease\tbinary\tauroc\t1\t5\t0.65\tNA\tNA\tNA\n"
                 "random\tdisease\tbinary\tauroc\t1.0\t5\t0.55\t0.03\t0.5\t0.6\n")
    folds = []
    for k, (top1, chance) in enumerate(((0.03, 0.01), (0.05, 0.02))):
        folds.append(tsv(tmp_path / f"contig_fold{k}.tsv",
                         "epoch\ttrain_loss\tval_loss\tval_top1\tval_top5\tchance_top1\n"
                         f"1\t4.0\t4.1\t0.9\t0.9\t{chance}\n"  # not the last epoch: ignored
                         f"2\t3.0\t3.1\t{top1}\t0.2\t{chance}\n"))
    simclr = tsv(tmp_path / "simclr_fold0.tsv",
                 "epoch\ttrain_loss\tval_loss\tval_top1\tval_top5\tchance_top1\n1\t5\t5\tNA\tNA\tNA\n")
    loci = tsv(tmp_path / "random.loci.tsv", "LOCUS\tLEAD_ID\tCHROM\tLEAD_POS\tSTART\tEND\n"
               "1\ta\t1\t5\t5\t5\n2\tb\t1\t9\t9\t9\n")
    return dict(truth=truth, rep=rep, probes=probes, folds=folds, simclr=simclr, loci=loci)


def test_table_from_crafted_inputs_is_exact(inputs, tmp_path):
    out = tmp_path / "cmp"
    args = ["compare", "--methods", "contig", "simclr", "random", "--truth-table", str(inputs["truth"]),
            "--loci", f"random={inputs['loci']}", "--replication", f"contig={inputs['rep']}",
            "--probes", str(inputs["probes"]), "--metrics",
            f"contig={inputs['folds'][0]},{inputs['folds'][1]}", f"simclr={inputs['simclr']}",
            "--out", str(out)]
    assert main(args) == 0
    table = pl.read_csv(f"{out}.tsv", separator="\t", null_values="NA")
    kappa = "severity_kappa_quadratic"
    assert table.columns == ["method", "n_loci", "planted_major", "major_found", "major_recall",
                             "false_loci", "lambda_gc_null", "replicated_loci", "disease_auroc_mean",
                             "disease_auroc_lower", "disease_auroc_upper", "disease_auroc_n_seeds",
                             f"{kappa}_mean", f"{kappa}_lower", f"{kappa}_upper",
                             f"{kappa}_n_seeds", "retrieval_top1", "retrieval_chance_top1",
                             "retrieval_n_folds"]
    rows = {r["method"]: r for r in table.iter_rows(named=True)}
    assert rows["contig"] == {
        "method": "contig", "n_loci": 10, "planted_major": 18, "major_found": 6,
        "major_recall": pytest.approx(1 / 3), "false_loci": 0, "lambda_gc_null": 1.0086,
        "replicated_loci": 6, "disease_auroc_mean": 0.7123, "disease_auroc_lower": 0.689,
        "disease_auroc_upper": 0.7351, "disease_auroc_n_seeds": 5, f"{kappa}_mean": 0.41,
        f"{kappa}_lower": 0.35, f"{kappa}_upper": 0.47, f"{kappa}_n_seeds": 5,
        "retrieval_top1": pytest.approx(0.04), "retrieval_chance_top1": pytest.approx(0.015),
        "retrieval_n_folds": 2}
    assert rows["simclr"]["lambda_gc_null"] is None and rows["simclr"]["false_loci"] == 1
    assert rows["simclr"]["disease_auroc_mean"] == 0.65 and rows["simclr"]["disease_auroc_lower"] is None
    assert rows["simclr"]["retrieval_top1"] is None and rows["simclr"]["retrieval_n_folds"] == 0
    # random: not in the truth table, loci from its loci table, no replication or metrics
    assert rows["random"]["n_loci"] == 2 and rows["random"]["major_found"] is None
    assert rows["random"]["replicated_loci"] is None and rows["random"][f"{kappa}_mean"] is None
    assert table["method"].to_list() == ["contig", "simclr", "random"]  # --methods order
    md = Path(f"{out}.md").read_text().splitlines()
    assert md[0].startswith("Made by `contig compare --methods contig simclr random")
    assert md[2] == ("| method | loci | planted major found (recall) | false loci | λGC null chr. | "
                     "replicated across eyes | disease AUROC | severity κ | retrieval top-1 (chance) |")
    assert md[4] == ("| contig | 10 | 6/18 (0.33) | 0 | 1.009 | 6 | 0.712 [0.69, 0.74] | "
                     "0.410 [0.35, 0.47] | 0.040 (0.015) |")
    assert md[5] == "| simclr | 6 | 3/18 (0.17) | 1 | NA | NA | 0.650 | NA | NA |"
    assert md[6] == "| random | 2 | NA | NA | NA | NA | 0.550 [0.50, 0.60] | NA | NA |"


def test_only_methods_every_other_column_na(tmp_path):
    out = tmp_path / "cmp"
    assert main(["compare", "--methods", "a", "b", "--out", str(out), "--header", "# demo"]) == 0
    table = pl.read_csv(f"{out}.tsv", separator="\t", null_values="NA")
    assert table.height == 2 and not any(c.endswith("_mean") for c in table.columns)
    assert all(table[c].null_count() == 2 for c in table.columns
               if c not in ("method", "retrieval_n_folds"))
    md = Path(f"{out}.md").read_text().splitlines()
    assert md[0] == "# demo"
    assert md[4] == "| a | NA | NA | NA | NA | NA | NA |"


def test_probe_choice_and_fraction(inputs):
    table, probes, notes = comparison_table(["contig", "simclr"], ComparisonInputs(
        probes_path=inputs["probes"], probes=[Probe("disease", "auroc")], probe_fraction=0.1))
    assert table["disease_auroc_mean"].to_list() == [0.6, None]
    assert table["disease_auroc_upper"].to_list() == [0.65, None]
    assert "severity_kappa_quadratic_mean" not in table.columns and probes == [Probe("disease", "auroc")]
    assert not any("random" in n for n in notes)  # its only row is at fraction 1.0
    assert any("no values for simclr" in n for n in notes)


def test_default_probes_are_the_summary_labels_with_their_primary_metric(tmp_path):
    """A user's own label sheet (here glaucoma, binary, and stage, ordinal) shows up by default."""
    summary = tsv(tmp_path / "own.tsv",
                  "method\tlabel\tkind\tmetric\tfraction\tn_seeds\tmean\tsd\tlower\tupper\n"
                  "m\tstage\tordinal\tauroc_vs_lowest\t1.0\t2\t0.7\t0\t0.6\t0.8\n"
                  "m\tstage\tordinal\tkappa_quadratic\t1.0\t2\t0.3\t0\t0.2\t0.4\n"
                  "m\tglaucoma\tbinary\tauroc\t1.0\t2\t0.8\t0\t0.75\t0.85\n")
    out = tmp_path / "cmp"
    assert main(["compare", "--methods", "m", "--probes", str(summary), "--out", str(out)]) == 0
    table = pl.read_csv(f"{out}.tsv", separator="\t", null_values="NA")
    assert [c for c in table.columns if c.endswith("_mean")] == ["stage_kappa_quadratic_mean",
                                                                 "glaucoma_auroc_mean"]
    assert table["glaucoma_auroc_lower"][0] == 0.75
    md = Path(f"{out}.md").read_text().splitlines()
    assert md[2].endswith("| stage κ | glaucoma AUROC | retrieval top-1 (chance) |")
    assert "| 0.300 [0.20, 0.40] | 0.800 [0.75, 0.85] |" in md[4]


def test_joint_test_columns_only_when_given(inputs, tmp_path):
    truth = tsv(tmp_path / "truth_joint.tsv",
                "method\tn_loci\tloci_false\tplanted_major\tmajor_found\tmajor_recall\t"
                "lambda_gc_null_median\tn_loci_joint\tloci_false_joint\tmajor_found_joint\t"
                "major_recall_joint\tlambda_gc_null_joint\n"
                "contig\t10\t0\t18\t6\t0.3333\t1.01\t12\t1\t9\t0.5\t0.987\n")
    joint = tsv(tmp_path / "contig.joint.tsv", "LOCUS\tLEAD_ID\tCHROM\tLEAD_POS\tSTART\tEND\n"
                + "".join(f"{i}\tv{i}\t1\t{i}\t{i}\t{i}\n" for i in range(1, 13)))
    table, _, _ = comparison_table(["contig", "simclr"], ComparisonInputs(truth=truth))
    assert "n_loci_joint" not in table.columns and "major_found_joint" not in table.columns
    out = tmp_path / "cmp"
    assert main(["compare", "--methods", "contig", "simclr", "--truth-table", str(truth),
                 "--loci-joint", f"contig={joint}", "--out", str(out)]) == 0
    table = pl.read_csv(f"{out}.tsv", separator="\t", null_values="NA")
    assert table.columns[:13] == ["method", "n_loci", "planted_major", "major_found",
                                  "major_recall", "false_loci", "lambda_gc_null", "n_loci_joint",
                                  "major_found_joint", "major_recall_joint", "false_loci_joint",
                                  "lambda_gc_null_joint", "replicated_loci"]
    assert table.row(0)[7:12] == (12, 9, 0.5, 1, 0.987)
    assert table.row(1)[7:12] == (None, None, None, None, None)
    md = Path(f"{out}.md").read_text().splitlines()
    assert md[2].startswith("| method | loci | planted major found (recall) | false loci | λGC null "
                            "chr. | joint-test loci | joint: planted major found (recall) | "
                            "joint: false loci | joint: λGC null chr. | replicated across eyes |")
    assert md[4].startswith("| contig | 10 | 6/18 (0.33) | 0 | 1.010 | 12 | 9/18 (0.50) | 1 | 0.987 "
                            "| NA |")


def test_duplicate_rows_are_input_errors(inputs, tmp_path):
    probes = tsv(tmp_path / "dup.tsv", inputs["probes"].read_text()
                 + "contig\tdisease\tbinary\tauroc\t1.0\t3\t0.7\t0.01\t0.6\t0.8\n")
    with pytest.raises(InputError, match=r"dup.tsv, row 8"):
        comparison_table(["contig"], ComparisonInputs(probes_path=probes))
    truth = tsv(tmp_path / "t.tsv", inputs["truth"].read_text()
                + "contig\t1\t1\t0\t0\t0\t0\t18\t1\t0.05\t4\t0\t250.0\tNA\tNA\tNA\n")
    with pytest.raises(InputError, match=r"row 5, column 'method'"):
        comparison_table(["contig"], ComparisonInputs(truth=truth))


def test_probe_fraction_out_of_range_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["compare", "--methods", "a", "--probe-fraction", "0", "--out", str(tmp_path / "c")])
    assert exit_.value.code == 2 and "--probe-fraction: 0 is not in (0, 1]" in capsys.readouterr().err


def test_retrieval_comes_from_the_epoch_model_pt_holds(tmp_path):
    """With best-epoch selection the row marked ``selected`` is read, not the last one; files
    from before the column existed fall back to the last row; two selected rows are an error."""
    from contig.evaluate.compare import final_retrieval

    header = "epoch\tval_top1\tchance_top1\tselected\n"
    a = tsv(tmp_path / "a.tsv", header + "1\t0.10\t0.01\t0\n2\t0.30\t0.01\t1\n3\t0.20\t0.01\t0\n")
    b = tsv(tmp_path / "b.tsv", "epoch\tval_top1\tchance_top1\n1\t0.10\t0.02\n2\t0.50\t0.02\n")
    out = final_retrieval([a, b])
    assert out["retrieval_top1"] == pytest.approx((0.30 + 0.50) / 2)
    assert out["retrieval_chance_top1"] == pytest.approx(0.015)
    assert out["retrieval_n_folds"] == 2
    bad = tsv(tmp_path / "bad.tsv", header + "1\t0.1\t0.01\t1\n2\t0.3\t0.01\t1\n")
    with pytest.raises(InputError, match="selected"):
        final_retrieval([bad])
