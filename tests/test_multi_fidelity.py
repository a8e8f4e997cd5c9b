"""A table holding several fidelities of the same designs: released from several run
directories at once, queried per fidelity, replayed per fidelity; zero-cost records beside.

The records are the real fig3 sweeps at the cpu and cpu2 fidelities (docs/reproduction,
committed); a second set relabels the cpu records ``cpu2`` with known other accuracies, so
the query arithmetic is checked exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis.replay.table import ReplayTable
from analysis.table.benchmark import Benchmark
from analysis.table.release import main as release_main
from analysis.table.release import read_records, read_release
from studies.store import RecordStore

REPO = Path(__file__).resolve().parents[1]
FIG3 = REPO / "docs" / "reproduction" / "fig3-cpu-cifar10.csv"
FIG3_CPU2 = REPO / "docs" / "reproduction" / "fig3-cpu2-cifar10.csv"


def records_of(frame) -> list[dict]:
    out = []
    for r in frame.to_dict("records"):
        out.append({k: v for k, v in r.items() if k != "record_file" and v == v})
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path, list[dict]]:
    tmp = tmp_path_factory.mktemp("fidelities")
    cpu = records_of(read_records(FIG3))
    cpu2 = []
    for r in cpu:
        r2 = {**r, "fidelity": "cpu2", "fidelity_config": {**r["fidelity_config"],
                                                            "name": "cpu2", "epochs": 4}}
        if r["status"] == "ok":
            r2["val_acc"], r2["test_acc"] = r["val_acc"] + 0.1, r["test_acc"] + 0.1
        cpu2.append(r2)
    a, b = RecordStore(tmp / "cpu"), RecordStore(tmp / "cpu2")
    for r in cpu:
        a.write(r)
    for r in cpu2:
        b.write(r)
    return a.run_dir, b.run_dir, cpu


def test_one_release_of_two_fidelities(runs, tmp_path, capsys):
    cpu_dir, cpu2_dir, cpu = runs
    assert release_main([str(cpu_dir), str(cpu2_dir), str(tmp_path), "--version", "t"]) == 0
    rel = read_release(tmp_path / "igcbench-t.json")
    assert set(rel.manifest["fidelities"]) == {"cpu", "cpu2"}
    assert rel.manifest["fidelities"]["cpu2"]["epochs"] == 4
    assert rel.manifest["records"] == 2 * len(cpu)
    bench = Benchmark.load(tmp_path / "igcbench-t.json")
    assert bench.fidelities == ("cpu", "cpu2")
    d = cpu[0]["design_id"]
    with pytest.raises(ValueError, match="pass fidelity="):
        bench.query(d)
    a, b = bench.query(d, fidelity="cpu"), bench.query(d, fidelity="cpu2")
    assert b.val_acc == pytest.approx(a.val_acc + 0.1) and b.seeds == a.seeds
    assert bench.designs(fidelity="cpu") == bench.designs(fidelity="cpu2")
    assert bench.best(fidelity="cpu2").design_id == bench.best(fidelity="cpu").design_id
    for fid in ("cpu", "cpu2"):
        t = ReplayTable.from_benchmark(bench, fidelity=fid)
        assert t.fidelity == fid and len(t.design_ids) == len(bench.designs(fidelity=fid))
    # The same run twice: a key in two sources is refused, nothing written.
    assert release_main([str(cpu_dir), str(cpu_dir), str(tmp_path / "no"), "--version",
                         "t"]) == 2
    assert "both hold" in capsys.readouterr().err and not (tmp_path / "no").exists()


def test_zero_cost_records_ride_in_a_release(runs, tmp_path):
    cpu_dir, _, cpu = runs
    zc = RecordStore(tmp_path / "zc")
    for r in cpu:
        zc.write({**r, "fidelity": "zc", "fidelity_config": {"name": "zc"}, "status": "ok",
                  "reason": None, "val_acc": None, "test_acc": None, "curve": [],
                  "zero_cost": {"scores": {"synflow": 2.0 + r["seed"]}, "seconds": {},
                                "errors": {}}})
    assert release_main([str(cpu_dir), str(zc.run_dir), str(tmp_path), "--version", "z"]) == 0
    bench = Benchmark.load(tmp_path / "igcbench-z.json")
    rows = bench.frame[bench.frame["fidelity"].eq("zc")]
    assert sorted(rows["zc_synflow"].unique()) == [2.0, 3.0, 4.0]
    assert json.loads(rows["zero_cost"].iloc[0])["scores"]["synflow"] in (2.0, 3.0, 4.0)
    assert bench.frame.loc[bench.frame["fidelity"].eq("cpu"), "zc_synflow"].isna().all()


def test_the_real_fig3_sweeps_at_two_rungs_make_one_table(tmp_path):
    stores = []
    for name, csv in (("cpu", FIG3), ("cpu2", FIG3_CPU2)):
        store = RecordStore(tmp_path / name)
        for r in records_of(read_records(csv)):
            store.write(r)
        stores.append(store.run_dir)
    assert release_main([*map(str, stores), str(tmp_path / "rel"), "--version", "r"]) == 0
    bench = Benchmark.load(tmp_path / "rel" / "igcbench-r.json")
    assert bench.fidelities == ("cpu", "cpu2")
    assert bench.designs(fidelity="cpu") == bench.designs(fidelity="cpu2")
    cpu2 = read_records(FIG3_CPU2).set_index("design_id")
    for d in bench.designs(fidelity="cpu2"):
        q = bench.query(d, fidelity="cpu2")
        assert q.seeds == (0,) and q.test_acc == pytest.approx(cpu2.loc[d, "test_acc"])
        assert bench.query(d, fidelity="cpu").seeds == (0, 1, 2)
