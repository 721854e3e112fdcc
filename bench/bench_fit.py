"""Time and peak memory of a twojmax-8 linear SNAP fit of the whole W DFT set.

Imports ``../shared/data/fitsnap_W_PRB2019`` (9,897 configurations, 164,415 atoms, energies
and forces), then times with 2 worker processes (one Numba thread each): building and solving
the system (``fit_snap``: descriptors, derivatives, chunked QR, SVD), and separately the
metrics pass of ``emtool fit`` (``evaluate_images``). Reported against FitSNAP's recorded
176 s descriptors + 29 s solve for the larger W-Be set. Goal: build + solve under 60 s. Peak
memory is the largest resident set of the main process and of one worker.

Run: python bench/bench_fit.py
"""
import resource
import tempfile
import time
from pathlib import Path

from emtool import SnapParams
from emtool.data.exchange import import_to_dataset
from emtool import read_dataset
from emtool.analysis.evaluate import evaluate_images
from emtool.fitting.snap import fit_snap
from emtool.fitting.weights import GroupWeights, UniformWeights
from emtool.potentials.snap import SnapPotential

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "fitsnap_W_PRB2019"


def main():
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "de.h5"
        import_to_dataset(DATA, data)
        images = read_dataset(data)
        params = SnapParams(twojmax=8, rcutfac=4.73, elements=("W",))
        start = time.perf_counter()
        weights = UniformWeights(GroupWeights(energy=100.0, force=1.0))
        coefficients, info = fit_snap(images, params, weights, workers=2, source=data)
        seconds = time.perf_counter() - start
        start = time.perf_counter()
        m = evaluate_images(SnapPotential(params, coefficients[None, :]), images, 2, data)
        metrics_seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"# W DFT set, twojmax 8 linear SNAP ({len(coefficients)} coefficients), "
          f"{info['rows']} rows, 2 workers (JIT cache warm)")
    print("| measure | value |")
    print("|---|---:|")
    print(f"| build + solve, wall | {seconds:.1f} s |")
    print(f"| metrics pass (energy and force errors of every configuration), wall | "
          f"{metrics_seconds:.1f} s |")
    print(f"| peak resident memory: main process / largest worker | {peak:.0f} / {worker:.0f} MB |")
    print(f"| training energy RMSE | {m['energy_rmse']:.4f} eV/atom |")
    print(f"| training force RMSE | {m['force_rmse']:.4f} eV/Å |")
    print("| FitSNAP, W-Be set (recorded) | 176 s descriptors + 29 s solve |")


if __name__ == "__main__":
    main()
