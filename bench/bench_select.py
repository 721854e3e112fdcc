"""Learning curves of ``emtool select`` against random subsets and QUESTS (docs/select.md).

Protocol: ``emtool generate`` (defaults, seed 11) makes POOL + TEST configurations; the first
POOL are the pool, the rest the held-out generated test set. The real expert-curated W set
(DE, ../shared/data/fitsnap_W_PRB2019) is the second test set. One ground truth labels all
(``--labeler``, default the embedded reference ``reference:W``). From the pool, each method
picks nested subsets (greedy methods: the first b picks of one run of max(budgets)):

- ``coverage``, ``farthest`` and ``entropy`` (``emtool.analysis.select``, 2J = 8 descriptors),
- ``random`` with seeds 0..SEEDS-1,
- QUESTS' ``fps`` and ``msc`` (its own descriptors and defaults; needs ``pip install quests``,
  which is not a dependency of emtool; skipped with a note when absent).

On each subset: quadratic SNAP (2J = 4, energies only, emtool's least squares) and, with
``--nn``, NN-A1 (2J = 6, energies only, 90 % of the subset to train, 10 % to validate,
``--epochs``, the mean over ``--nn-seeds`` training seeds). Test energy RMSE (meV/atom) on TEST and on DE; a table (``select.md``,
``select.json``) and a log-log plot (``learning_curves.png``) in ``--out``.
``--timing M`` also times ``select_rows`` (coverage, ``--timing-picks`` picks, default 1000)
on a pool of M configurations (the real pool's descriptors repeated with noise of 1e-3
standardized units; the cost depends on the sizes) and reports the peak memory.

Everything but the fits is cached in ``--out`` (default bench/select_out): reruns are cheap.
Run: python bench/bench_select.py [--pool 10000] [--test 1000] [--nn [--nn-seeds 3]]
     [--quests fps,msc]
     [--timing 100000] [--plot docs/select_learning_curves.png]
"""
import argparse
import importlib.util
import json
import resource
import time
import tracemalloc
from pathlib import Path

import numpy as np

import emtool
from emtool.data.dataset import read_dataset, write_dataset
from emtool.fitting.snap import TallSkinnyQR, configuration_rows
from emtool.generator.generate import generate_dataset
from emtool.labeling.label import LabelerSpec, label_dataset
from emtool.analysis.select import select_rows

HERE = Path(__file__).resolve().parent
DE_SOURCE = HERE.parents[1] / "shared" / "data" / "fitsnap_W_PRB2019"
SELECT_PARAMS = emtool.SnapParams(twojmax=8, rcutfac=4.73, bzeroflag=0)
SNAP_PARAMS = emtool.SnapParams(twojmax=4, rcutfac=4.73, bzeroflag=0)
NN_PARAMS = emtool.SnapParams(twojmax=6, rcutfac=4.73, bzeroflag=0)
BUDGETS = (50, 100, 200, 400, 800)


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def cached(path, make):
    """np.load(path) of a dict of arrays, made by ``make()`` once."""
    if not path.exists():
        np.savez(path.with_suffix(".tmp.npz"), **make())
        path.with_suffix(".tmp.npz").replace(path)
    return dict(np.load(path, allow_pickle=False))


def datasets(args, tag):
    """(pool, test, DE) labeled dataset paths."""
    raw = args.out / f"generated_{args.pool + args.test}.h5"
    log(f"generating {args.pool + args.test} configurations (seed 11)")
    generate_dataset(raw, args.pool + args.test, seed=11, workers=args.workers)
    labeled = args.out / f"generated_{args.pool + args.test}_{tag}.h5"
    if not labeled.exists():
        log(f"labeling with {args.labeler}")
        label_dataset(raw, LabelerSpec("potential", args.labeler), labeled, workers=args.workers)
    pool, test = args.out / f"pool_{args.pool}_{tag}.h5", args.out / f"test_{args.test}_{tag}.h5"
    if not (pool.exists() and test.exists()):
        images = read_dataset(labeled)
        write_dataset(pool, images[:args.pool])
        write_dataset(test, images[args.pool:])
    de = args.out / f"de_{tag}.h5"
    if not de.exists():
        from emtool.data.exchange import import_to_dataset
        de_raw = args.out / "de_raw.h5"
        if not de_raw.exists():
            import_to_dataset(DE_SOURCE, de_raw, element="W")
        log(f"labeling DE with {args.labeler}")
        label_dataset(de_raw, LabelerSpec("potential", args.labeler), de, workers=args.workers,
                      relabel=True)
    return pool, test, de


def energy_rows(path, params, quadratic):
    """Per-configuration energy design rows (n, ncols) and E/N (n,) of a labeled dataset."""
    images = read_dataset(path)
    rows = np.array([configuration_rows(a, params, quadratic, derivatives=False)[0]
                     for a in images])
    energy = np.array([a.get_potential_energy() / len(a) for a in images])
    return dict(rows=rows, energy=energy)


def atom_rows(path, params):
    """Per-atom descriptors (M, D), offsets (n + 1,) and E/N (n,) of a labeled dataset."""
    images = read_dataset(path)
    b = [emtool.bispectrum(a, params) for a in images]
    return dict(b=np.vstack(b), offsets=np.r_[0, np.cumsum([len(x) for x in b])],
                energy=np.array([a.get_potential_energy() / len(a) for a in images]))


def fit_snap_rows(rows, energy):
    qr = TallSkinnyQR(rows.shape[1])
    qr.add(rows, energy)
    return qr.solve(0.0, None)[0]


def fit_network(data, picks, epochs, seed):
    from emtool.fitting.networks import TrainingData, TrainingSettings, train_network
    records = [dict(b=data["b"][data["offsets"][c]:data["offsets"][c + 1]],
                    energy=data["energy"][c]) for c in picks]
    training = TrainingData(records, forces=False)
    order = np.random.default_rng(seed).permutation(len(picks))
    n_val = max(1, len(picks) // 10)
    settings = TrainingSettings(epochs=epochs, seed=seed)
    network, _ = train_network(training, NN_PARAMS, settings, np.sort(order[n_val:]),
                               np.sort(order[:n_val]))
    return network


def network_rmse(network, data):
    per_atom, _ = network.atomic_energies(data["b"])
    predicted = np.add.reduceat(per_atom, data["offsets"][:-1]) / np.diff(data["offsets"])
    return float(np.sqrt(np.mean((predicted - data["energy"]) ** 2)))


def selections(args, pool_path, budget):
    """{name: (picks in pick order, seconds)} for every method."""
    found = {}
    described = cached(args.out / f"select_desc_{args.pool}.npz",
                       lambda: atom_rows(pool_path, SELECT_PARAMS))
    for method in ("coverage", "farthest", "entropy"):
        def run(method=method):
            start = time.perf_counter()
            sel = select_rows(described["b"], described["offsets"], budget, method)
            return dict(picks=sel.positions, seconds=np.array(time.perf_counter() - start))
        result = cached(args.out / f"picks_{method}_{args.pool}_{budget}.npz", run)
        found[method] = (result["picks"], float(result["seconds"]))
        log(f"{method}: {budget} picks in {found[method][1]:.1f} s")
    for seed in range(args.seeds):
        picks = np.random.default_rng(seed).permutation(args.pool)[:budget]
        found[f"random_{seed}"] = (picks, 0.0)
    if importlib.util.find_spec("quests") is None:
        log("QUESTS is not installed (pip install quests): its rows are skipped")
        return found
    for method in args.quests:
        def run(method=method):
            from quests.compression.compress import DatasetCompressor
            images = read_dataset(pool_path)
            start = time.perf_counter()
            compressor = DatasetCompressor(images)
            picks = compressor.get_indices(method, budget)
            return dict(picks=np.asarray(picks, np.int64),
                        seconds=np.array(time.perf_counter() - start))
        result = cached(args.out / f"picks_quests_{method}_{args.pool}_{budget}.npz", run)
        found[f"quests_{method}"] = (result["picks"], float(result["seconds"]))
        log(f"QUESTS {method}: {budget} picks in {found[f'quests_{method}'][1]:.1f} s")
    return found


def time_large(args):
    """Seconds of select_rows (coverage) for ``args.timing`` configurations,
    ``args.timing_picks`` picks; peak memory of the process (ru_maxrss) and of the arrays
    select_rows allocates (tracemalloc)."""
    described = cached(args.out / f"select_desc_{args.pool}.npz", None)
    repeats = -(-args.timing // args.pool)
    rng = np.random.default_rng(0)
    b = np.vstack([described["b"] + 1e-3 * described["b"].std(0) * rng.standard_normal(
        described["b"].shape) for _ in range(repeats)])
    sizes = np.tile(np.diff(described["offsets"]), repeats)[:args.timing]
    offsets = np.r_[0, np.cumsum(sizes)]
    b = b[:offsets[-1]]
    tracemalloc.start()                               # NumPy reports its arrays to it
    start = time.perf_counter()
    select_rows(b, offsets, args.timing_picks, "coverage")
    seconds = time.perf_counter() - start
    own = tracemalloc.get_traced_memory()[1] / 2 ** 30
    tracemalloc.stop()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    log(f"select_rows, {args.timing} configurations ({len(b)} environments, D = {b.shape[1]}): "
        f"{args.timing_picks} picks in {seconds:.1f} s; peak memory of the process {peak:.1f} "
        f"GiB, of which select_rows' own arrays {own:.1f} GiB (the input: "
        f"{b.nbytes / 2 ** 30:.1f} GiB)")
    return dict(configurations=args.timing, environments=len(b), picks=args.timing_picks,
                seconds=seconds, peak_gib=peak, select_gib=own, input_gib=b.nbytes / 2 ** 30)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=10000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--budgets", default=",".join(map(str, BUDGETS)))
    parser.add_argument("--seeds", type=int, default=3, help="random subsets per budget")
    parser.add_argument("--labeler", default="reference:W")
    parser.add_argument("--nn", action="store_true", help="also NN-A1 (PyTorch)")
    parser.add_argument("--epochs", type=int, default=300, help="NN-A1 epochs")
    parser.add_argument("--nn-seeds", type=int, default=1,
                        help="NN-A1 training seeds per subset (the tables show their mean)")
    parser.add_argument("--timing", type=int, default=0, help="time a pool of this many")
    parser.add_argument("--timing-picks", type=int, default=1000, help="picks of --timing")
    parser.add_argument("--quests", default="fps,msc",
                        help="QUESTS methods to compare with (comma-separated; '' for none)")
    parser.add_argument("--plot", type=Path, help="also write the plot here (e.g. docs/...)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", type=Path, default=HERE / "select_out")
    args = parser.parse_args()
    args.quests = [m for m in args.quests.split(",") if m]
    args.out.mkdir(parents=True, exist_ok=True)
    budgets = [int(b) for b in args.budgets.split(",")]
    tag = args.labeler.replace(":", "_").replace("/", "_")
    pool, test, de = datasets(args, tag)
    sets = {name: cached(args.out / f"snap_rows_{name}_{tag}.npz",
                         lambda p=path: energy_rows(p, SNAP_PARAMS, True))
            for name, path in (("pool", pool), ("test", test), ("de", de))}
    picks = selections(args, pool, max(budgets))
    results = []
    nn_sets = {}
    if args.nn:
        nn_sets = {name: cached(args.out / f"nn_rows_{name}_{tag}.npz",
                                lambda p=path: atom_rows(p, NN_PARAMS))
                   for name, path in (("pool", pool), ("test", test), ("de", de))}
    for name, (order, seconds) in picks.items():
        for budget in budgets:
            chosen = np.asarray(order[:budget])
            coefficients = fit_snap_rows(sets["pool"]["rows"][chosen], sets["pool"]["energy"][chosen])
            row = dict(method=name, budget=budget, model="qSNAP 2J=4")
            for test_name in ("test", "de"):
                error = sets[test_name]["rows"] @ coefficients - sets[test_name]["energy"]
                row[test_name] = float(np.sqrt(np.mean(error ** 2)))
            results.append(row)
            if args.nn:
                networks = [fit_network(nn_sets["pool"], chosen, args.epochs, seed=seed)
                            for seed in range(args.nn_seeds)]
                seeds = {t: [network_rmse(net, nn_sets[t]) for net in networks]
                         for t in ("test", "de")}
                results.append(dict(method=name, budget=budget, model="NN-A1 2J=6",
                                    test=float(np.mean(seeds["test"])),
                                    de=float(np.mean(seeds["de"])),
                                    test_seeds=seeds["test"], de_seeds=seeds["de"]))
        log(f"{name}: fitted")
    summary = dict(pool=args.pool, test=args.test, labeler=args.labeler, budgets=budgets,
                   results=results, selection_seconds={k: v[1] for k, v in picks.items()})
    if args.timing:
        summary["timing"] = time_large(args)
    (args.out / "select.json").write_text(json.dumps(summary, indent=1))
    write_table(summary, args.out / "select.md")
    plot(summary, args.out / "learning_curves.png")
    if args.plot:
        plot(summary, args.plot)
    print((args.out / "select.md").read_text())


def _curves(summary, model, test_name):
    """{method: (budgets, RMSE meV/atom)}, the random seeds averaged as 'random (mean)'."""
    curves = {}
    rows = [r for r in summary["results"] if r["model"] == model]
    for method in dict.fromkeys(r["method"] for r in rows):
        key = "random (mean)" if method.startswith("random_") else method
        for r in rows:
            if r["method"] == method:
                curves.setdefault(key, {}).setdefault(r["budget"], []).append(1000 * r[test_name])
    return {k: (sorted(v), [float(np.mean(v[b])) for b in sorted(v)]) for k, v in curves.items()}


def write_table(summary, path):
    lines = [f"Pool {summary['pool']} generated configurations, held-out test "
             f"{summary['test']}, DE {summary.get('de', 'all')}; labels {summary['labeler']}; "
             "energy RMSE in meV/atom.", ""]
    for model in dict.fromkeys(r["model"] for r in summary["results"]):
        for test_name, title in (("test", "held-out generated"), ("de", "DE")):
            curves = _curves(summary, model, test_name)
            budgets = summary["budgets"]
            lines += [f"**{model}, {title}**", "",
                      "| method | " + " | ".join(map(str, budgets)) + " |",
                      "|---|" + "---:|" * len(budgets)]
            base = dict(zip(*curves["random (mean)"]))
            for name, (b, values) in curves.items():
                cells = [f"{v:.1f}" + ("" if name == "random (mean)" else f" ({v / base[x]:.2f})")
                         for x, v in zip(b, values)]
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
            lines.append("")
    lines.append("(ratio) = RMSE / mean RMSE of the random subsets at the same budget. "
                 "Selection seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in
                                                 summary["selection_seconds"].items()
                                                 if not k.startswith("random")))
    if "timing" in summary:
        t = summary["timing"]
        lines.append(f"Timing: {t['configurations']} configurations ({t['environments']} "
                     f"environments), {t['picks']} picks in {t['seconds']:.1f} s; peak memory "
                     f"of the process {t['peak_gib']:.1f} GiB, select_rows' own arrays "
                     f"{t['select_gib']:.1f} GiB, the input {t['input_gib']:.1f} GiB.")
    path.write_text("\n".join(lines) + "\n")


def plot(summary, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    models = list(dict.fromkeys(r["model"] for r in summary["results"]))
    fig, axes = plt.subplots(len(models), 2, figsize=(10, 4 * len(models)), squeeze=False)
    for row, model in enumerate(models):
        for col, (test_name, title) in enumerate((("test", "held-out generated"), ("de", "DE"))):
            ax = axes[row][col]
            for name, (b, values) in _curves(summary, model, test_name).items():
                ax.loglog(b, values, "o-", label=name)
            ax.set(xlabel="training configurations", ylabel="energy RMSE (meV/atom)",
                   title=f"{model}, tested on {title}")
            ax.set_xticks(summary["budgets"], [str(b) for b in summary["budgets"]])
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
