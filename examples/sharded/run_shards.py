"""Run N shards of examples/sharded/feeds.yaml as N processes writing into one Redis,
as N hosts would (each with ``tradefeed run feeds.yaml --shard I/N``).

Against the built-in simulator (needs the 'sim' and 'redis' extras and a Redis server):

    python examples/sharded/run_shards.py --simulator --shards 3 --duration 5 --redis redis://localhost:6379/0

Then read the trades downstream with ``python examples/sharded/consume.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from tradefeed import ConfigError, TradefeedError

HERE = Path(__file__).parent

if sys.platform == "win32":  # SIGTERM would end a shard unflushed: Ctrl-Break its own group
    SPAWN = {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
    STOP = signal.CTRL_BREAK_EVENT
else:
    SPAWN = {}
    STOP = signal.SIGTERM


def simulated_config(sim, source: Path, target: Path) -> None:
    """The same feeds, pointed at the simulator."""
    document = yaml.safe_load(source.read_text())
    for feed in document["feeds"]:
        feed["url"] = sim.url(feed["venue"])
    target.write_text(yaml.safe_dump(document))


def main() -> None:
    parser = argparse.ArgumentParser(description="run every shard of a config as its own process")
    parser.add_argument("--config", default=str(HERE / "feeds.yaml"))
    parser.add_argument("--shards", type=int, default=3)
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://localhost:6379/0"))
    parser.add_argument("--duration", type=float, default=0, help="stop after S seconds (0: until Ctrl-C)")
    parser.add_argument("--simulator", action="store_true", help="run the feeds against the built-in simulator")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        config = Path(args.config)
        if args.simulator:
            from tradefeed.simulator import Simulator

            sim = stack.enter_context(Simulator(rate=50, history=10, max_connects=None))
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            config = folder / "feeds.yaml"
            simulated_config(sim, Path(args.config), config)
        env = dict(os.environ, REDIS_URL=args.redis)
        # with --duration each shard stops itself (its clock starts once it runs, so a
        # shard slow to start still gets its full time); Ctrl-C stops them all now
        duration = ["--duration", str(args.duration)] if args.duration else []
        shards = [
            subprocess.Popen(
                [sys.executable, "-m", "tradefeed", "run", str(config), "--shard", "%d/%d" % (i, args.shards), "--quiet"]
                + duration,
                env=env,
                **SPAWN,
            )
            for i in range(1, args.shards + 1)
        ]
        try:
            for shard in shards:
                shard.wait()
        except KeyboardInterrupt:
            for shard in shards:
                shard.send_signal(STOP)  # each flushes its sink and exits 0
        codes = [shard.wait(30) for shard in shards]
        print("shards exited with", codes, flush=True)
        sys.exit(max(codes))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # Ctrl-C: whatever was open has been closed on the way out
        pass
    except ImportError as error:  # an extra that is not installed (the simulator's: 'sim')
        sys.exit("%s: error: %s" % (sys.argv[0], error))
    except TradefeedError as error:  # a bad config, a feed that ended: one line, as the CLI says it
        print("%s: error: %s" % (sys.argv[0], error), file=sys.stderr)
        sys.exit(2 if isinstance(error, ConfigError) else 1)
