"""The hot path's stages, in one process: CPU per trade of each, without sockets or threads.

    python -m benchmarks.hotpath                  # 1 and 20 trades/frame, best of 15
    python -m benchmarks.hotpath --per-frame 20 --repeat 31

The socket runs (``run.py --mode throughput``) give the ratio users see, but on a shared
machine their repetitions spread by 10 % or more, so they cannot show a lever worth 2 %.
Here each stage runs over the same Dopp frames the throughput server sends (ids unique,
so de-duplication drops nothing), and the best of ``--repeat`` runs is kept: other work
on the machine only ever adds time.  Run it in two checkouts to compare them (the
checkout in the current directory is the one imported)::

    (cd ../old && python -m benchmarks.hotpath) ; python -m benchmarks.hotpath

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="CPU per trade of each stage of tradefeed's hot path, in-process.")
    parser.add_argument("--per-frame", default="1,20", help="trades per frame, comma-separated (default 1,20)")
    parser.add_argument("--repeat", type=int, default=15, help="runs per stage; the best is kept (default 15)")
    parser.add_argument("--trades", type=int, default=TRADES, help="trades per run (default %d)" % TRADES)
    args = parser.parse_args(argv)
    try:
        sizes = [int(size) for size in args.per_frame.split(",")]
    except ValueError:
        parser.error("--per-frame takes whole numbers separated by commas, not %r" % args.per_frame)
    if any(size < 1 for size in sizes) or args.repeat < 1 or args.trades < 1:
        parser.error("--per-frame, --repeat and --trades must be at least 1")
    import tradefeed

    print("tradefeed from %s; best of %d runs of %d trades; us per trade" % (Path(tradefeed.__file__).parent, args.repeat, args.trades))
    results = {size: measure(size, args.repeat, args.trades) for size in sizes}
    names = list(next(iter(results.values())))
    print("%-10s" % "per frame" + "".join("%12s" % name for name in names))
    for size, figures in results.items():
        print("%-10d" % size + "".join("%12.3f" % figures[name] for name in names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
