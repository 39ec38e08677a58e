"""The hot path's stages, in one process: CPU per trade of each, without sockets or threads.

    python -m benchmarks.hotpath                  # 1 and 20 trades/frame, best of 15
    python -m benchmarks.hotpath --per-frame 20 --repeat 31
    python -m benchmarks.hotpath --baseline ../before --write-results   # a lever, before and after

The socket runs (``run.py --mode throughput``) give the ratio users see, but on a shared
machine their repetitions spread by 10 % or more, so they cannot show a lever worth a few
per cent.
Here each stage runs over the same Dopp frames the throughput server sends (ids unique,
so de-duplication drops nothing), and the best of ``--repeat`` runs is kept: other work
on the machine only ever adds time.  ``--baseline`` names another checkout (the code
before a lever): both are measured in child processes, taking turns (three rounds, each
a third of ``--repeat``), and the table gives each one's row and the change.  ``--write-results`` puts the table in ``RESULTS.rst`` (mode ``hotpath``), so the
gain of each lever is on record.

Trades are handed over in batches of the frames one read of a busy stream brings
(``READ_SIZE`` bytes: about 400 one-trade frames, or 21 of 20 trades), as a connection
does while bytes are pending.  Stages, each per trade:

- ``json.loads``: what the floor pays to parse (``recv()`` not included);
- ``parse``: ``DoppAdapter.parse``, frame to Trades (the typed decode, the mapping, the
  Trade checks, ``raw`` left undecoded);
- ``pipeline``: de-duplication, gap and staleness bookkeeping, the batch
  (``tradefeed.pipeline.Pipeline``);
- ``dispatch``: the queue hand-off and ``pump()`` running one trade callback;
- ``total``: the three together, frame after frame, as a connection thread and a
  ``pump()`` thread would run them if they took turns.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import timeit
from pathlib import Path
from typing import Any, Callable

if __package__ in (None, ""):  # run as a script: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.frames import dopp_frame  # noqa: E402

__all__ = ["stages", "main"]

#: trades per measured run, whatever the frame size (a frame list of a few MiB)
TRADES = 60_000
#: rounds of turns with a --baseline checkout
ROUNDS = 3


def stages(per_frame: int, trades: int = TRADES) -> dict[str, Callable[[], Any]]:
    """Each stage as a function doing *trades* trades' worth of its work."""
    from tradefeed.adapters.dopp import DoppAdapter
    from tradefeed.dispatcher import Dispatcher
    from tradefeed.feedstate import FeedState, Line
    from tradefeed.pipeline import Pipeline

    from tradefeed._framing import READ_SIZE

    frames = [dopp_frame(1 + i * per_frame, per_frame) for i in range(max(1, trades // per_frame))]
    per_batch = max(1, READ_SIZE // len(frames[0]))  # frames handed over together
    last = len(frames) - 1

    def adapter() -> DoppAdapter:
        parser = DoppAdapter()
        parser.parse(dopp_frame(0, 1), 0)  # the connection's first frame, the snapshot, is behind it
        return parser

    parser = adapter()
    parsed = [parser.parse(frame, 1).trades for frame in frames]

    def pipeline(put: Callable[[list[Any], str], None]) -> Pipeline:
        return Pipeline("dopp-1", "dopp", FeedState(4096), Line(), put, 500)

    batches: list[list[Any]] = []
    collect = pipeline(lambda batch, feed: batches.append(batch))
    for index, trades_of_frame in enumerate(parsed):
        collect.trades(trades_of_frame, True, 1)
        if index % per_batch == per_batch - 1 or index == last:
            collect.flush()

    def dispatcher() -> tuple[Dispatcher, list[int]]:
        count = [0]

        def on_trade(trade: Any) -> None:
            count[0] += 1

        dispatch = Dispatcher()
        dispatch.add_trade_callback(on_trade, None, None)
        return dispatch, count

    def run_loads() -> None:
        for frame in frames:
            json.loads(frame)

    def run_parse() -> None:
        parse = adapter().parse
        for frame in frames:
            parse(frame, 1)

    def run_pipeline() -> None:
        pipe = pipeline(lambda batch, feed: None)
        for index, trades_of_frame in enumerate(parsed):
            pipe.trades(trades_of_frame, True, 1)
            if index % per_batch == per_batch - 1 or index == last:
                pipe.flush()

    def run_dispatch() -> None:
        dispatch, count = dispatcher()
        for batch in batches:
            dispatch.put(list(batch), "dopp-1")
            dispatch.pump()
        assert count[0] == len(frames) * per_frame

    def run_total() -> None:
        parse = adapter().parse
        dispatch, count = dispatcher()
        pipe = pipeline(dispatch.put)
        for index, frame in enumerate(frames):
            pipe.trades(parse(frame, 1).trades, True, 1)
            if index % per_batch == per_batch - 1 or index == last:
                pipe.flush()
                dispatch.pump()
        assert count[0] == len(frames) * per_frame

    return {
        "json.loads": run_loads,
        "parse": run_parse,
        "pipeline": run_pipeline,
        "dispatch": run_dispatch,
        "total": run_total,
    }


def measure(per_frame: int, repeat: int, trades: int = TRADES) -> dict[str, float]:
    """Microseconds per trade of each stage: the best of *repeat* runs."""
    runs = stages(per_frame, trades)
    count = max(1, trades // per_frame) * per_frame
    return {name: min(timeit.repeat(run, number=1, repeat=repeat)) / count * 1e6 for name, run in runs.items()}


def measure_in(checkout: Path, per_frame: int, repeat: int, trades: int) -> dict[str, float]:
    """:func:`measure` in a child process that imports the tradefeed of *checkout*
    (these stages, and the frames, are this checkout's)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(checkout)]
    command += ["--per-frame", str(per_frame), "--repeat", str(repeat), "--trades", str(trades)]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    figures = json.loads(out.splitlines()[-1])
    imported = Path(figures.pop("imported from"))
    if imported != checkout.resolve() / "tradefeed":  # an installed tradefeed took precedence
        raise RuntimeError("measured the tradefeed in %s, not the one in %s" % (imported, checkout))
    return dict(figures)


def commit_of(checkout: Path) -> str:
    """The short commit of *checkout*, or its name when git cannot say."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=checkout, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return checkout.name


def table(rows: list[tuple[str, str, dict[str, float]]]) -> str:
    """Rows of (per frame, checkout, figures) as text; a row after its baseline's gets a
    change row beneath it."""
    names = list(rows[0][2])
    width = max(len("tradefeed"), *(len(checkout) for _, checkout, _ in rows)) + 2
    lines = ["%-10s%-*s" % ("per frame", width, "tradefeed") + "".join("%12s" % name for name in names)]
    previous: tuple[str, dict[str, float]] | None = None
    for size, checkout, figures in rows:
        lines.append("%-10s%-*s" % (size, width, checkout) + "".join("%12.3f" % figures[name] for name in names))
        if previous is not None and previous[0] == size:
            base = previous[1]
            lines.append(
                "%-10s%-*s" % ("", width, "change")
                + "".join("%+11.1f%%" % ((figures[name] / base[name] - 1) * 100) for name in names)
            )
            previous = None
        else:
            previous = (size, figures)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="CPU per trade of each stage of tradefeed's hot path, in-process.")
    parser.add_argument("--per-frame", default="1,20", help="trades per frame, comma-separated (default 1,20)")
    parser.add_argument("--repeat", type=int, default=15, help="runs per stage; the best is kept (default 15)")
    parser.add_argument("--trades", type=int, default=TRADES, help="trades per run (default %d)" % TRADES)
    parser.add_argument("--baseline", type=Path, help="another checkout, measured in turns with this one")
    parser.add_argument("--write-results", action="store_true", help="put the table in benchmarks/RESULTS.rst")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)  # measure_in(): one JSON line
    args = parser.parse_args(argv)
    try:
        sizes = [int(size) for size in args.per_frame.split(",")]
    except ValueError:
        parser.error("--per-frame takes whole numbers separated by commas, not %r" % args.per_frame)
    if any(size < 1 for size in sizes) or args.repeat < 1 or args.trades < 1:
        parser.error("--per-frame, --repeat and --trades must be at least 1")
    if args.child is not None:
        sys.path.insert(0, str(args.child.resolve()))
        figures = measure(sizes[0], args.repeat, args.trades)
        import tradefeed

        print(json.dumps({**figures, "imported from": str(Path(tradefeed.__file__).resolve().parent)}))
        return 0
    if args.baseline is not None and not (args.baseline / "tradefeed" / "__init__.py").is_file():
        parser.error("--baseline: %s is not a tradefeed checkout (no tradefeed/__init__.py)" % args.baseline)
    here = Path(__file__).resolve().parent.parent
    from benchmarks import report

    info = report.machine()
    rows: list[tuple[str, str, dict[str, float]]] = []
    for size in sizes:
        if args.baseline is None:
            rows.append((str(size), info["commit"], measure(size, args.repeat, args.trades)))
            continue
        best: dict[Path, dict[str, float]] = {}
        for _ in range(ROUNDS):
            for checkout in (args.baseline, here):
                figures = measure_in(checkout, size, max(1, args.repeat // ROUNDS), args.trades)
                kept = best.setdefault(checkout, figures)
                best[checkout] = {name: min(kept[name], figure) for name, figure in figures.items()}
        rows.append((str(size), commit_of(args.baseline) + " (baseline)", best[args.baseline]))
        rows.append((str(size), info["commit"], best[here]))
    text = table(rows)
    print("best of %d runs of %d trades; us per trade" % (args.repeat, args.trades))
    print(text)
    if args.write_results:
        command = "python -m benchmarks.hotpath" + "".join(" " + a for a in (sys.argv[1:] if argv is None else argv))
        report.update_results(info, command, {"hotpath": text})
        print("\nwrote %s" % report.RESULTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
