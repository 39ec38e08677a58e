"""The chaos soak's venues: the simulator in a process of its own, driven over stdin.

    python -m benchmarks.chaos_server --seed 1 --rate 10

Serves every venue (``tradefeed.simulator.Simulator``, trades at *rate* per second per
venue, no connect-rate limit), then prints one JSON line: the ``add_feed`` arguments of
each feed the soak runs (the four public feeds, Rails with its private ``trades`` stream,
the Synthetix user feed).  Then it reads one JSON command per line on stdin and answers
each with one JSON line on stdout (``{"ok": ...}`` or ``{"error": ...}``):

- ``{"op": "drop", "venue": V}``: abort V's connections (the client sees 1006);
- ``{"op": "close", "venue": V, "code": C}``: close frame C (1000, 1001, 1011);
- ``{"op": "refuse", "venue": V, "n": N, "status": S, "retry_after": R}``: refuse the
  next N handshakes with S and ``Retry-After: R``, then drop V's connections (so the
  client meets the refusals now);
- ``{"op": "silence", "venue": V}``: stall V's open connections and leave their pings
  unanswered: nothing arrives, only the client's ping timeout can tell;
  ``{"op": "heal", "venue": V}`` undoes it for whatever is still open;
- ``{"op": "inject", "venue": V, "frame": F}``: send F (a malformed frame) on V's
  connections, in order with its trades;
- ``{"op": "expire", "venue": "rails"}``: expire every Rails token (close 1008);
- ``{"op": "dump", "path": P}``: write every tape to P as JSON lines ``{"tape", "record"}``
  (``tape``: a venue name for its public tape, ``rails-fills``, ``synthetix-fills``);
- ``{"op": "quit"}``: stop the simulator and exit.

The simulator runs here, not in the soaked process, so that process's memory and
threads are the client's alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal
from typing import Any

from tradefeed.simulator import Simulator

#: the feeds the soak runs: name -> (venue, stream of the simulator's feed_params)
FEEDS = {
    "dopp": ("dopp", "public"),
    "synfutures": ("synfutures", "public"),
    "synthetix": ("synthetix", "public"),
    "rails": ("rails", "public"),
    "synthetix-user": ("synthetix", "user"),
}


def _json(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError("not JSON: %r" % (value,))


def feed_params(sim: Simulator) -> dict[str, dict[str, Any]]:
    """Each soaked feed's ``add_feed`` arguments (``venue`` included)."""
    out: dict[str, dict[str, Any]] = {}
    for name, (venue, stream) in FEEDS.items():
        params = dict(sim.feed_params(venue, stream=stream))
        if name == "rails":
            params["subscriptions"] = ["publicTrades", "trades"]  # and the account's own fills
        out[name] = {"venue": venue, **params}
    return out


def dump(sim: Simulator, path: str) -> int:
    """Every tape to *path*; how many records."""
    count = 0
    with open(path, "w", encoding="utf-8") as out:
        tapes: list[tuple[str, list[dict[str, Any]]]] = [(v, sim.venue(v).trades()) for v in ("dopp", "synfutures", "synthetix", "rails")]
        tapes.append(("rails-fills", sim.venue("rails").fills()))  # type: ignore[attr-defined]
        tapes.append(("synthetix-fills", sim.venue("synthetix").trade.fills()))  # type: ignore[attr-defined]
        for tape, records in tapes:
            for record in records:
                out.write(json.dumps({"tape": tape, "record": record}, default=_json) + "\n")
                count += 1
    return count


def execute(sim: Simulator, command: dict[str, Any]) -> Any:
    op, venue = command.get("op"), command.get("venue")
    if op == "drop":
        return sim.drop_connections(venue)
    if op == "close":
        return sim.drop_connections(venue, code=int(command["code"]), reason="chaos")
    if op == "refuse":
        sim.refuse_handshakes(int(command["n"]), int(command["status"]), command.get("retry_after"), venue=venue)
        return sim.drop_connections(venue)
    if op == "silence":
        return sim.stall(venue) + sim.mute_pings(venue)
    if op == "heal":
        return sim.resume(venue) + sim.unmute_pings(venue)
    if op == "inject":
        return sim.venue(str(venue)).inject(str(command["frame"]))
    if op == "expire":
        return sim.venue("rails").expire_tokens()  # type: ignore[attr-defined]
    if op == "dump":
        return dump(sim, str(command["path"]))
    raise ValueError("unknown op %r" % (op,))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=float, default=10.0, help="trades per second per venue")
    args = parser.parse_args(argv)
    # fill_history: the whole run's fills stay on the tape (the soak checks every one)
    options = {"synthetix": {"fill_history": None}}
    with Simulator(seed=args.seed, rate=args.rate, max_connects=None, history=50, options=options) as sim:
        print(json.dumps({"feeds": feed_params(sim)}, default=_json), flush=True)
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                command = json.loads(line)
                if command.get("op") == "quit":
                    print(json.dumps({"ok": "quit"}), flush=True)
                    break
                reply: dict[str, Any] = {"ok": execute(sim, command)}
            except Exception as err:  # noqa: BLE001 - the driver reads the error and decides
                reply = {"error": "%s: %s" % (type(err).__name__, err)}
            print(json.dumps(reply, default=_json), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
