"""Paper Fig. 2 and the whitening count: energy-per-atom and bispectrum-component
distributions of DE and EM, ZCA whitening in DE's frame (dimensions where EM is broader and
at least 5x broader; the paper: 51 and 27 of 55), PCA, descriptor entropies, coverage and
local structure types, through ``emtool.analysis.compare`` (what ``emtool compare DE EM --twojmax 8``
runs). Writes out/fig2/ (compare.md, compare.json, figures).

Run: python examples/paper/fig2_whitening.py
"""
import json

import emtool
from emtool.analysis.compare import compare_datasets
from emtool.analysis.compare_report import write_report
from study import OUT, WORKERS, labeled_set, log


def main():
    de, em = labeled_set("DE"), labeled_set("EM")
    comparison = compare_datasets([de, em], emtool.SnapParams(twojmax=8), workers=WORKERS)
    write_report(comparison, OUT / "fig2")
    (OUT / "fig2" / "compare.json").write_text(json.dumps(comparison.summary, indent=1) + "\n")
    other = comparison.summary["others"][0]
    log(f"EM in DE's whitened frame: broader in {other['broader_dims']} of "
        f"{comparison.summary['descriptors']['n_dims']} dimensions, >= 5x in "
        f"{other['broader5x_dims']} (paper: 51 and 27 of 55)")


if __name__ == "__main__":
    main()
