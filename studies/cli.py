"""The command line of ``studies/run.py``: its options, and the one validation of them.

:func:`resolve` turns parsed arguments into a :class:`Request` or raises a one-line
:class:`ValueError`; ``--dry-run`` and the sweep call it alike, so a dry run refuses exactly
what the sweep refuses. The one difference is a side effect, not a check: a dry run does not
download a missing CIFAR (the sweep does, before creating anything) and says so instead.
Nothing here creates a file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import socket
import zlib
from pathlib import Path
from typing import Any

import search_space as ss
from evaluators.catalog import DATASETS, DEFAULT_DATASET
from evaluators.provenance import provenance
from evaluators.record import utc_now
from studies.budget import parse_budget, parse_duration
from studies.data_check import check_data, one_line
from studies.halving import add_time_budget, time_budget_of
from studies.plan import Plan, parse_seeds
from studies.presets import PRESETS, Preset, get_preset
from studies.searches import SEARCHES, SWEEP_SEARCHES

SCHEDULERS = ("asha", "fifo")
ADDRESS_TIMEOUT_S = 3.0  # a cluster that does not accept a TCP connection by then is down
IDENTITY = ("design_ids", "fidelity_config", "dataset")  # what a run directory is bound to
DEFAULT_FIDELITY = Preset.fidelity  # cpu-v2: one default for presets and the command line
CONFIRM_ABOVE = "2h"  # a sweep estimated longer than this asks before it starts


class UsageError(ValueError):
    """Bad command-line input: reported in one line, exit status 2."""


class UsageParser(argparse.ArgumentParser):
    """argparse whose errors raise UsageError (one line, exit 2 by the caller)."""

    def error(self, message: str) -> None:  # one line, not argparse's usage block
        raise UsageError(message)


def build_parser(description: str = "") -> argparse.ArgumentParser:
    p = UsageParser(prog="studies/run.py", description=description)
    for add_group in (_what, _how, _where, _when):
        add_group(p)
    # Testing and experiments: change a fidelity field (FIELD=VALUE, repeatable). The
    # fidelity's name then says so (e.g. smoke+lr=100), so its records get their own keys.
    p.add_argument("--fidelity-set", action="append", default=[], help=argparse.SUPPRESS)
    return p


def _what(p: argparse.ArgumentParser) -> None:
    """What to evaluate: the designs, the data, the fidelity, the seeds."""
    what = p.add_argument_group("what to evaluate")
    what.add_argument("--budget",
                      help="maximum parameters of the whole network: 650000, 650k or 0.65M")
    what.add_argument("--net", help="network template: plain8 (default), res20, or resD "
                                    "for D = 3B+2")
    what.add_argument("--preset", help="a paper experiment instead of --budget/--net: "
                                       + ", ".join(PRESETS))
    what.add_argument("--design", action="append", dest="designs", metavar="ID",
                      help="train this design (a search_space id; repeatable) instead of "
                           "--budget or --preset")
    what.add_argument("--dataset", help=", ".join(DATASETS)
                      + f" (default: {DEFAULT_DATASET}, or the preset's)")
    what.add_argument("--data-dir", help="directory holding the dataset (the same path on "
                                         "every Ray node); default $IGCBENCH_DATA or ./data")
    what.add_argument("--fidelity", help="training budget: smoke, cpu-v2, cpu2-v2, proxy15, "
                                         "proxy, paper; cpu and cpu2 are the committed "
                                         f"records' (default: {DEFAULT_FIDELITY}, or the "
                                         "preset's)")
    what.add_argument("--seeds", help="a count N: seeds 0..N-1 (so 1 is seed 0 alone, the "
                                      "default, or the preset's), or a list 0,1,2 (seed 5 "
                                      "alone: 5,)")
    what.add_argument("--seeds-for-power", action="store_true",
                      help="instead of --seeds: the seeds per design that resolve the "
                           "preset's claims at this fidelity (studies/power_seeds.py)")


def _how(p: argparse.ArgumentParser) -> None:
    """How to search: the search, the scheduler, the trial and time limits."""
    how = p.add_argument_group("how to search")
    how.add_argument("--search", default="grid",
                     help="; ".join(f"{n}: {SEARCHES[n].help}" for n in SWEEP_SEARCHES)
                     + " (default grid; the others stop at --max-trials)")
    how.add_argument("--scheduler", choices=SCHEDULERS,
                     help="asha: stop poor trials early on val_acc; fifo: train every trial "
                          "to the end (default: fifo for grid, asha otherwise)")
    how.add_argument("--max-trials", type=int,
                     help="at most this many (design, seed) trials (default: all)")
    add_time_budget(how)  # --time-budget 1h: studies/time_budget.py
    how.add_argument("--sampler-seed", type=int, default=0,
                     help="seed of the TPE/NSGA-II sampler and the random order (default 0)")


def _where(p: argparse.ArgumentParser) -> None:
    """Where to run and store: the resources, the cluster, the storage."""
    where = p.add_argument_group("where to run and store")
    where.add_argument("--cpus-per-trial", type=float,
                       help="CPUs (torch threads) per trial (default: the fidelity's, or 1)")
    where.add_argument("--gpus-per-trial", type=float, default=0.0,
                       help="GPUs per trial, fractional to share one (0.25) (default 0)")
    where.add_argument("--address", help="an existing Ray cluster (auto, or host:port of its "
                                         "head); default: start Ray on this machine")
    where.add_argument("--storage", help="Optuna storage URL, e.g. postgresql://user@host/db "
                                         "(default: sqlite RUN_DIR/optuna.db)")
    where.add_argument("--run-dir", help="run directory (default: runs/NAME)")
    where.add_argument("--name", help="run name (default: from preset or net and budget, "
                                      "fidelity and dataset)")


def _when(p: argparse.ArgumentParser) -> None:
    """Estimates and confirmation: the dry run, the presets, the threshold."""
    when = p.add_argument_group("estimates and confirmation")
    when.add_argument("--dry-run", action="store_true",
                      help="list the designs with exact costs and the estimated time here "
                           "(this fidelity and the others), and exit")
    when.add_argument("--format", choices=("table", "json"), default="table",
                      help="dry-run output: aligned table (default) or one JSON object per "
                           "line")
    when.add_argument("--list-presets", action="store_true",
                      help="list the presets with their trials and estimated time here, "
                           "and exit")
    when.add_argument("--confirm-above", default=CONFIRM_ABOVE, metavar="DURATION",
                      help="a sweep estimated longer than this (default 2h) asks before it "
                           "starts: y/N on a terminal, otherwise it needs --yes")
    when.add_argument("--yes", "-y", action="store_true",
                      help="start even when the estimate exceeds --confirm-above")


@dataclasses.dataclass(frozen=True)
class Request:
    """A validated command: the plan and everything the sweep needs."""

    plan: Plan
    preset: Preset | None
    budget: int | None
    net: str | None
    fidelity: Any  # evaluators.Fidelity
    num_classes: int
    run_dir: Path
    storage_url: str
    data_dir: str | None
    scheduler: str
    cpus_per_trial: float
    gpus_per_trial: float
    address: str | None
    confirm_above_s: float = float("inf")
    yes: bool = False
    data_note: str | None = None  # dry run: the dataset is missing and the sweep downloads it
    time_budget_s: float | None = None  # --time-budget: studies.time_budget runs the sweep
    power_note: str | None = None  # --seeds-for-power: the seeds and why (studies.power_seeds)

    @property
    def what(self) -> str:
        """What the plan's designs are, in words."""
        n = len(self.plan.design_ids)
        if self.preset is not None:
            return f"{n} designs of preset {self.preset.name}: {self.preset.summary}"
        if self.budget is None:
            return f"{n} design{'s' if n > 1 else ''} named by --design"
        return f"{n} designs of {self.net} within {self.budget:,} parameters"

    def config(self, argv: list[str]) -> dict[str, Any]:
        """run.json: the command and what it resolved to."""
        where = provenance()
        return {
            "argv": argv, "preset": self.preset.name if self.preset else None,
            "budget": self.budget, "net": self.net,
            "design_ids": list(self.plan.design_ids), "seeds": list(self.plan.seeds),
            "fidelity": self.plan.fidelity, "fidelity_config": self.fidelity.to_dict(),
            "dataset": self.plan.dataset, "data_dir": self.data_dir,
            "search": self.plan.search, "max_trials": self.plan.max_trials,
            "sampler_seed": self.plan.sampler_seed, "scheduler": self.scheduler,
            "cpus_per_trial": self.cpus_per_trial, "gpus_per_trial": self.gpus_per_trial,
            "address": self.address, "storage": masked(self.storage_url),
            "study": self.plan.name, "commit": where.commit, "commit_dirty": where.dirty,
            "created": utc_now(),
        }


def resolve(args: argparse.Namespace, *, dry_run: bool = False) -> Request:
    """Validate the command line into a :class:`Request`; raises ValueError (one line).

    ``dry_run``: do not download a missing CIFAR; note it in ``Request.data_note``.
    """
    import evaluators  # torch-free until a dataset is loaded

    preset, budget, designs = _designs(args)
    dataset = args.dataset or (preset.dataset if preset else None) or DEFAULT_DATASET
    num_classes = DATASETS[dataset].classes
    name = args.fidelity or (preset.fidelity if preset else DEFAULT_FIDELITY)
    fidelity = _fidelity(evaluators, name, args.fidelity_set)
    seeds = parse_seeds(args.seeds) if args.seeds else (preset.seeds if preset else (0,))
    power_note = None
    if getattr(args, "seeds_for_power", False):
        from studies.power_seeds import power_seeds

        if args.seeds:
            raise UsageError("--seeds-for-power chooses the seeds; drop --seeds")
        seeds, power_note = power_seeds(preset.name if preset else None, fidelity.name)
    if args.max_trials is not None and args.max_trials < 1:
        raise UsageError(f"--max-trials {args.max_trials} must be >= 1")
    cpus = args.cpus_per_trial if args.cpus_per_trial is not None else float(
        fidelity.threads or 1)
    if not cpus > 0:
        raise UsageError(f"--cpus-per-trial {args.cpus_per_trial} must be > 0")
    if not args.gpus_per_trial >= 0:
        raise UsageError(f"--gpus-per-trial {args.gpus_per_trial} must be >= 0")
    confirm_above = parse_duration(args.confirm_above, option="--confirm-above")
    net = (args.net or "plain8") if budget is not None else None
    name = args.name or _default_name(preset, net, budget, designs, fidelity.name, dataset)
    if not name or "/" in name or name.startswith("."):
        raise UsageError(f"--name {name!r} must be a plain directory name")
    run_dir = Path(args.run_dir or Path("runs") / name).resolve()
    plan = Plan(name=name, design_ids=tuple(d.id for d in designs), seeds=seeds,
                fidelity=fidelity.name, dataset=dataset, search=args.search,
                max_trials=args.max_trials, sampler_seed=args.sampler_seed)
    storage_url = args.storage or f"sqlite:///{run_dir / 'optuna.db'}"
    _check_storage(storage_url, given=args.storage is not None)
    address = _check_address(args.address) if args.address else None
    data_dir, note = check_data(evaluators, dataset, args.data_dir, download=not dry_run)
    request = Request(
        plan=plan, preset=preset, budget=budget, net=net, fidelity=fidelity,
        num_classes=num_classes, run_dir=run_dir, storage_url=storage_url, data_dir=data_dir,
        scheduler=args.scheduler or ("fifo" if args.search == "grid" else "asha"),
        cpus_per_trial=cpus, gpus_per_trial=args.gpus_per_trial, address=address,
        confirm_above_s=confirm_above, yes=args.yes, data_note=note,
        time_budget_s=time_budget_of(args), power_note=power_note)
    _check_run_dir(request)
    return request


def _designs(args: argparse.Namespace) -> tuple[Preset | None, int | None, list[ss.Design]]:
    if args.dataset is not None and args.dataset not in DATASETS:
        raise UsageError(
            f"unknown dataset {args.dataset!r}; accepted: {', '.join(DATASETS)}")
    others = [o for o, v in (("--budget", args.budget), ("--net", args.net),
                             ("--design", args.designs)) if v is not None]
    if args.preset is not None and others:
        raise UsageError(f"--preset {args.preset} fixes its designs; drop {'/'.join(others)}")
    if args.designs is not None and others != ["--design"]:
        raise UsageError("--design names the designs; drop --budget/--net")
    if args.preset is not None:
        preset = get_preset(args.preset)
        return preset, None, [ss.parse(i) for i in preset.design_ids]
    if args.designs is not None:
        designs = [ss.parse(i) for i in args.designs]  # ValueError names a bad id
        ids = [d.id for d in designs]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise UsageError(f"--design {twice[0]} is given twice")
        return None, None, designs
    if args.budget is None:
        if args.net is not None:
            raise UsageError(f"--net {args.net} needs --budget")
        raise UsageError("one of --budget, --preset or --design is required "
                         f"(presets: {', '.join(PRESETS)}; --list-presets shows them)")
    budget = parse_budget(args.budget)
    num_classes = DATASETS[args.dataset or DEFAULT_DATASET].classes
    return None, budget, ss.enumerate_designs(budget, args.net or "plain8",
                                              num_classes=num_classes)


def _fidelity(evaluators: Any, name: str, settings: list[str]) -> Any:
    fidelity = evaluators.get_fidelity(name)
    fields = {f.name for f in dataclasses.fields(fidelity)} - {"name"}
    changes: dict[str, Any] = {}
    for item in settings:
        field, sep, text = item.partition("=")
        if not sep or field not in fields:
            raise UsageError(f"--fidelity-set {item!r}: expected FIELD=VALUE with FIELD one "
                             f"of {', '.join(sorted(fields))}")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        changes[field] = tuple(value) if isinstance(value, list) else value
    return evaluators.with_changes(fidelity, **changes)


def _default_name(preset: Preset | None, net: str | None, budget: int | None,
                  designs: list[ss.Design], fidelity: str, dataset: str) -> str:
    """``PRESET-FID-DS``, ``NET-BUDGET-FID-DS`` or, for --design, the ids (a hash if long)."""
    if preset is not None:
        head = preset.name
    elif budget is not None:
        head = f"{net}-{_budget_label(budget)}"
    else:
        head = "+".join(d.id for d in designs).replace("/", "_")
        if len(head) > 80:
            # Not the record key's hash (evaluators.record owns that): a name, not a key.
            digest = zlib.crc32("|".join(d.id for d in designs).encode())
            head = f"designs{len(designs)}-{digest:08x}"
    return f"{head}-{fidelity}-{dataset}"


def _budget_label(budget: int) -> str:
    """650000 -> 650k, 1000000 -> 1M, 1500 -> 1500."""
    if budget % 1_000_000 == 0:
        return f"{budget // 1_000_000}M"
    if budget % 1_000 == 0:
        return f"{budget // 1_000}k"
    return str(budget)


def _check_storage(url: str, *, given: bool) -> None:
    """An RDB URL that SQLAlchemy understands and, when given, a database that answers."""
    import sqlalchemy
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        raise UsageError(f"--storage {url!r} is not a database URL; accepted: "
                         "sqlite:///PATH, postgresql://USER@HOST/DB, mysql://...") from None
    if parsed.get_backend_name() == "sqlite":
        folder = Path(parsed.database or "").parent
        if given and not folder.is_dir():
            raise UsageError(f"--storage {url!r}: directory {folder} does not exist")
        return
    if not given:
        return
    try:
        engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 5})
        with engine.connect():
            pass
        engine.dispose()
    except Exception as e:
        raise UsageError(f"--storage {masked(url)!r} cannot be opened: "
                         f"{one_line(e)[:200]}") from None


def _check_address(address: str) -> str:
    """The cluster at ``address`` accepts a TCP connection within ADDRESS_TIMEOUT_S."""
    if address.startswith("ray://"):
        raise UsageError(f"--address {address!r}: Ray Client addresses are not supported "
                         "(the driver writes the run directory); use auto or HOST:PORT of "
                         "the head node, and run this command on a cluster node")
    from ray._private.services import canonicalize_bootstrap_address

    try:
        resolved = canonicalize_bootstrap_address(address)
    except (ValueError, ConnectionError) as e:
        raise UsageError(f"--address {address!r}: {one_line(e)}; accepted: auto (a cluster "
                         "started here with `ray start --head`) or HOST:PORT") from None
    if resolved is None:
        raise UsageError(f"--address {address!r}: no running Ray cluster found; accepted: "
                         "auto or HOST:PORT of a head node started with `ray start --head`")
    host, _, port = resolved.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=ADDRESS_TIMEOUT_S):
            pass
    except (OSError, ValueError) as e:
        raise UsageError(f"--address {address!r}: cannot reach the Ray head at {resolved} "
                         f"within {ADDRESS_TIMEOUT_S:.0f} s ({one_line(e)}); accepted: auto "
                         "or HOST:PORT of a running head node") from None
    return address


def _check_run_dir(request: Request) -> None:
    """A run directory holds one sweep: the same designs, fidelity config and dataset."""
    path = request.run_dir / "run.json"
    if not path.is_file():
        return
    old = json.loads(path.read_text())
    new = request.config([])
    differs = [k for k in IDENTITY if old.get(k) != new[k]]
    if differs:
        raise UsageError(f"run directory {request.run_dir} holds another sweep "
                         f"({', '.join(differs)} differ); choose another --name or --run-dir")


def masked(url: str) -> str:
    """A database URL with its password hidden."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url
