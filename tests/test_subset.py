"""emtool subset / merge: exact selections, bit-exact copies, provenance, one-line errors."""
import json

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from click.testing import CliRunner

from emtool.cli import main
from emtool.data.dataset import (dataset_info, format_info, provenance_record, read_arrays,
                                 write_dataset)
from emtool.data.schema import CONFIG_FIELDS
from emtool.errors import DatasetError
from emtool.data.subset import label_origins, merge_datasets, parse_index, subset_dataset

GROUPS = ["bulk", "surface", ""]
LABELER = {"kind": "potential", "target": "reference:W", "kwargs": {}}


def images(n, seed, first_index=0):
    """n small configurations: groups cycle bulk/surface/(none), every third unlabeled, the
    others with energy and forces, every fourth also with stress; info of every JSON kind."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        m = int(rng.integers(1, 4))
        atoms = Atoms(numbers=rng.choice([74, 42], m), positions=rng.uniform(0, 2, (m, 3)) +
                      2.0 * np.arange(m)[:, None], cell=np.diag(rng.uniform(7, 9, 3)), pbc=True)
        if k % 3:
            labels = dict(energy=rng.normal(), forces=rng.normal(size=(m, 3)))
            if k % 4 == 0:
                labels["stress"] = rng.normal(size=6)
            atoms.calc = SinglePointCalculator(atoms, **labels)
        atoms.info.update(index=first_index + 3 * k, group=GROUPS[k % 3], K=float(rng.normal()),
                          converged=bool(k % 2), steps=int(k), path=[1, 2.5, "x"], name="W α")
        out.append(atoms)
    return out


def write(path, n, seed, first_index=0, labeler=LABELER, parameters=None):
    provenance = [provenance_record("generate", {"seed": seed})]
    if labeler:
        provenance.append(provenance_record("label", dict(labeler, versions={"ase": "x"})))
    write_dataset(path, images(n, seed, first_index), parameters or {"seed": seed}, provenance)
    return path


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_one_line_error(result, match):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 and match in result.output, result.output


def assert_copied(out, source, keys_out, keys_source):
    """Rows ``keys_out`` of dataset ``out`` equal rows ``keys_source`` of ``source`` bit for bit
    (info: all items but source_file/source_index), and record where they came from."""
    a, b = read_arrays(out), read_arrays(source)
    rows_a = np.searchsorted(a["index"], keys_out)
    rows_b = np.searchsorted(b["index"], keys_source)
    assert (a["index"][rows_a] == keys_out).all() and (b["index"][rows_b] == keys_source).all()
    def same(x, y):
        return x.tolist() == y.tolist() if x.dtype == object else x.tobytes() == y.tobytes()

    def atom_rows(arrays, rows):
        return np.concatenate([np.arange(arrays["offset"][r], arrays["offset"][r] +
                                         arrays["natoms"][r]) for r in rows])

    for name in CONFIG_FIELDS:
        if name not in ("index", "offset", "info"):
            assert same(a[name][rows_a], b[name][rows_b]), name
    for name in ("numbers", "positions", "forces"):
        assert same(a[name][atom_rows(a, rows_a)], b[name][atom_rows(b, rows_b)]), name
    for row_a, row_b, key in zip(rows_a, rows_b, keys_source):
        info = json.loads(a["info"][row_a])
        assert info.pop("source_file") == str(source.resolve())
        assert info.pop("source_index") == key
        assert info == json.loads(b["info"][row_b])


def test_parse_index_is_python_slicing():
    n = 10
    for spec, expected in [(":", range(10)), ("0:100", range(10)), ("::2", range(0, 10, 2)),
                           ("-3:", range(7, 10)), ("3", [3]), ("-1", [9]), ("3,5,9", [3, 5, 9]),
                           ("9,3,3", [3, 9]), ("::-1", range(10)), ("1:8:3,-2:", [1, 4, 7, 8, 9]),
                           ("5:2", []), (" 2 : 4 ", [2, 3])]:
        assert parse_index(spec, n).tolist() == list(expected), spec
    for spec, match in [("10", "out of range"), ("-11", "out of range"), ("a", "not an integer"),
                        ("", "not an integer"), ("1:2:3:4", "not an integer"),
                        ("1,,2", "not an integer"), ("::0", "step cannot be zero")]:
        with pytest.raises(DatasetError, match=match):
            parse_index(spec, n)


@pytest.mark.parametrize("options, pick", [
    ([], lambda k: True),
    (["--index", "::2"], None),
    (["--index", "-4:"], None),
    (["--index", "1,4,7"], None),
    (["--group", "bulk"], lambda k: k % 3 == 0),
    (["--group", "surface", "--group", ""], lambda k: k % 3 != 0),
    (["--labeled"], lambda k: k % 3 != 0),
    (["--unlabeled"], lambda k: k % 3 == 0),
    (["--group", "surface", "--labeled", "--index", "-2:"], lambda k: k % 3 == 1),
])
def test_subset_selects_exactly(tmp_path, options, pick):
    source = write(tmp_path / "d.h5", 14, seed=1, first_index=100)
    keys = 100 + 3 * np.arange(14)
    filtered = [key for k, key in enumerate(keys) if pick is None or pick(k)]
    index = options[options.index("--index") + 1] if "--index" in options else ":"
    expected = np.array(filtered)[parse_index(index, len(filtered))]
    out = tmp_path / "s.h5"
    result = run("subset", source, "-o", out, *options)
    assert result.exit_code == 0, result.output
    assert f"{len(expected)} configurations" in result.output
    assert read_arrays(out, ["index"])["index"].tolist() == expected.tolist()
    assert_copied(out, source, expected, expected)
    info, before = dataset_info(out), dataset_info(source)
    assert info["parameters"] == before["parameters"] == {"seed": 1}
    assert info["provenance"][:-1] == before["provenance"]
    record = info["provenance"][-1]
    assert record["action"] == "subset"
    assert record["settings"]["source"] == str(source.resolve())
    assert record["settings"]["configs"] == len(expected)
    assert record["settings"]["source_configs"] == 14


def test_subset_library_keeps_keys_and_refuses_its_input(tmp_path):
    source = write(tmp_path / "d.h5", 6, seed=2)
    summary = subset_dataset(source, tmp_path / "s.h5", "1:", "bulk", labeled=None)
    assert summary["configs"] == 1 and summary["group_counts"] == {"bulk": 1}
    assert read_arrays(tmp_path / "s.h5", ["index"])["index"].tolist() == [9]
    with pytest.raises(DatasetError, match="would replace the input"):
        subset_dataset(source, tmp_path / "." / "d.h5")


def test_subset_errors_are_one_line(tmp_path):
    source = write(tmp_path / "d.h5", 6, seed=3)
    out = tmp_path / "s.h5"
    before = source.read_bytes()
    assert_one_line_error(run("subset", source, "-o", out, "--group", "bulk", "--group", "liquid"),
                          'no group "liquid"; groups present: "", "bulk", "surface"')
    assert_one_line_error(run("subset", source, "-o", out, "--index", "4:2"), "empty "
                          "selection: none of its 6 configurations is picked by index '4:2'")
    assert_one_line_error(run("subset", source, "-o", out, "--group", "bulk", "--labeled"),
                          "empty selection")
    assert_one_line_error(run("subset", source, "-o", out, "--index", "6"), "out of range")
    assert_one_line_error(run("subset", source, "-o", out, "--index", "x"), "not an integer")
    assert_one_line_error(run("subset", source, "-o", source, "--overwrite"),
                          "would replace the input")
    assert_one_line_error(run("subset", tmp_path / "missing.h5", "-o", out), "missing.h5")
    assert not out.exists() and source.read_bytes() == before
    out.write_text("keep me")
    assert_one_line_error(run("subset", source, "-o", out), "exists; pass --overwrite")
    assert out.read_text() == "keep me"
    assert run("subset", source, "-o", out, "--overwrite").exit_code == 0
    assert dataset_info(out)["configs"] == 6


def test_merge_concatenates_and_records_sources(tmp_path):
    sources = [write(tmp_path / "a.h5", 5, seed=4),
               write(tmp_path / "b.h5", 4, seed=5, parameters={"seed": 5, "K": 1.0}),
               write(tmp_path / "c.h5", 3, seed=6)]
    out = tmp_path / "m.h5"
    result = run("merge", *sources, "-o", out)
    assert result.exit_code == 0, result.output
    assert "12 configurations" in result.output and "from 3 datasets" in result.output
    merged = read_arrays(out, ["index", "group"])
    assert merged["index"].tolist() == list(range(12))
    start = 0
    for path in sources:
        keys = read_arrays(path, ["index"])["index"]
        assert_copied(out, path, np.arange(start, start + len(keys)), keys)
        start += len(keys)
    info = dataset_info(out)
    assert info["groups"] == {"": 3, "bulk": 5, "surface": 4}
    assert info["parameters"] == {"job": "merge", "sources": [
        {"path": str(p.resolve()), "parameters": dataset_info(p)["parameters"]} for p in sources]}
    expected = [dict(r, source=str(p.resolve())) for p in sources
                for r in dataset_info(p)["provenance"]]
    assert info["provenance"][:-1] == expected
    record = info["provenance"][-1]
    assert record["action"] == "merge" and record["settings"]["configs"] == 12
    assert [s["configs"] for s in record["settings"]["sources"]] == [5, 4, 3]
    assert f"generate  (in {sources[1].resolve()})  emtool" in format_info(info)
    # a merge of merges keeps the innermost tags; the configurations name the file read
    summary = merge_datasets([out, sources[0]], tmp_path / "mm.h5")
    assert summary["configs"] == 17
    again = dataset_info(tmp_path / "mm.h5")["provenance"]
    assert [r.get("source") for r in again[:len(expected)]] == [r["source"] for r in expected]
    assert again[len(expected)]["source"] == str(out.resolve())


def test_merge_refuses_labels_of_different_origin(tmp_path):
    gpaw = {"kind": "ase", "target": "gpaw_w.py:calc", "kwargs": {"ecut": 500}}
    a = write(tmp_path / "a.h5", 4, seed=7)
    b = write(tmp_path / "b.h5", 4, seed=8, labeler=gpaw)
    assert label_origins(dataset_info(b)["provenance"]) == ('ase:gpaw_w.py:calc {"ecut": 500}',)
    unlabeled = tmp_path / "u.h5"
    write_dataset(unlabeled, [atoms for atoms in images(6, 9) if atoms.calc is None],
                  provenance=[provenance_record("generate")])
    out = tmp_path / "m.h5"
    assert_one_line_error(run("merge", a, b, "-o", out),
                          f"labels of different origin (potential:reference:W: {a}; ase:")
    assert not out.exists()
    assert run("merge", a, unlabeled, "-o", out).exit_code == 0       # no labels: no conflict
    assert run("merge", a, b, "-o", out, "--overwrite", "--mixed-labels").exit_code == 0
    record = dataset_info(out)["provenance"][-1]
    assert record["settings"]["mixed_labels"] is True
    # imported labels are named by their source file; a dataset without records is unrecorded
    imported = [provenance_record("import", {"source": "/data/DE"})]
    assert label_origins(imported) == ("import /data/DE",)
    assert label_origins(imported + [provenance_record("label", LABELER)]) == \
        ("potential:reference:W",)
    assert label_origins([]) == ("unrecorded",)


def test_merge_errors_are_one_line(tmp_path):
    a, b = write(tmp_path / "a.h5", 3, seed=10), write(tmp_path / "b.h5", 3, seed=11)
    before = {p: p.read_bytes() for p in (a, b)}
    assert_one_line_error(run("merge", a, b, "-o", b, "--overwrite"), "would replace the input")
    assert_one_line_error(run("merge", a, tmp_path / "." / "a.h5", "-o", tmp_path / "m.h5"),
                          "given twice")
    (tmp_path / "m.h5").write_text("keep me")
    assert_one_line_error(run("merge", a, b, "-o", tmp_path / "m.h5"), "exists; pass --overwrite")
    assert_one_line_error(run("merge", a, tmp_path / "nope.h5", "-o", tmp_path / "n.h5"),
                          "nope.h5: no such dataset file")
    empty = tmp_path / "e.h5"
    write_dataset(empty, [])
    assert_one_line_error(run("merge", empty, "-o", tmp_path / "n.h5"), "no configurations")
    with pytest.raises(DatasetError, match="would replace the input"):
        merge_datasets([a, b], tmp_path / "." / "a.h5")
    assert {p: p.read_bytes() for p in (a, b)} == before
    assert (tmp_path / "m.h5").read_text() == "keep me" and not (tmp_path / "n.h5").exists()
