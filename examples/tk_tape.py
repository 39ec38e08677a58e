"""A Tkinter live trade tape.  Pump mode: every callback runs on the Tk thread.

Tk widgets may only be touched from the thread that runs ``mainloop()``.  So the manager
runs with ``dispatch="manual"``: tradefeed's threads read and parse, and a ``root.after``
timer calls ``manager.pump()`` on the Tk thread, which runs the callbacks there.
Closing the window stops the manager cleanly.

    python examples/tk_tape.py                   # the built-in simulator, all venues
    python examples/tk_tape.py --config examples/feeds.yaml

``--duration S`` closes the window after S seconds, and Ctrl-C or SIGTERM closes it at
once, the same way as the window's close button; once ``--ready N`` trades are on screen it
prints ``ready`` (the tests take a screenshot then).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import tkinter as tk
from tkinter import ttk

from tradefeed import ConfigError, FeedManager, Trade, TradefeedError
from tradefeed.output import iso_utc

PUMP_EVERY_MS = 50
MAX_PER_PUMP = 500  # keeps the UI responsive during a burst
MAX_ROWS = 200


def main() -> None:
    parser = argparse.ArgumentParser(description="a live trade tape in a Tk window")
    parser.add_argument("--config", help="a YAML config (default: the built-in simulator)")
    parser.add_argument("--duration", type=float, default=0, help="close the window after S seconds")
    parser.add_argument("--ready", type=int, default=0, help="print 'ready' once N trades are shown")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        if args.config:
            manager = FeedManager.from_config(args.config, dispatch="manual")
        else:
            from tradefeed.simulator import Simulator

            sim = stack.enter_context(Simulator(rate=20, history=10))
            manager = FeedManager(dispatch="manual")
            for venue in ("dopp", "synfutures", "synthetix", "rails"):
                manager.add_feed(venue, **sim.feed_params(venue))

        try:
            root = tk.Tk()
        except tk.TclError as error:  # no display ($DISPLAY unset, say): one line, not a traceback
            raise SystemExit("%s: error: cannot open a window: %s" % (sys.argv[0], error)) from None
        root.title("tradefeed tape")
        root.geometry("900x500+0+0")
        columns = ("time", "venue", "symbol", "side", "amount", "price")
        tape = ttk.Treeview(root, columns=columns, show="headings")
        for column, width in zip(columns, (110, 90, 190, 60, 130, 130)):
            tape.heading(column, text=column)
            tape.column(column, width=width, anchor="e" if column in ("amount", "price") else "w")
        tape.tag_configure("buy", foreground="#0a7d12")
        tape.tag_configure("sell", foreground="#b3141b")
        tape.pack(fill="both", expand=True)
        status = ttk.Label(root, text="connecting...")
        status.pack(fill="x")
        shown = 0

        @manager.on_trade
        def add_row(trade: Trade) -> None:  # runs on the Tk thread, inside pump()
            nonlocal shown
            when = iso_utc(trade.timestamp_ms)[11:23]  # HH:MM:SS.mmm, UTC
            values = (when, trade.venue, trade.symbol, trade.side.value, trade.amount, trade.price)
            tape.insert("", 0, values=values, tags=(trade.side.value,))
            shown += 1
            children = tape.get_children()
            if len(children) > MAX_ROWS:
                tape.delete(*children[MAX_ROWS:])
            if shown == args.ready:
                root.update_idletasks()  # draw (and flush to the X server) before saying so
                print("ready", flush=True)

        @manager.on_status
        def on_status(event) -> None:  # also on the Tk thread
            status.configure(text="%s %s" % (event.feed, event.status.value))

        def pump() -> None:
            manager.pump(max_items=MAX_PER_PUMP)
            root.after(PUMP_EVERY_MS, pump)

        def close() -> None:
            manager.stop()
            root.destroy()

        root.protocol("WM_DELETE_WINDOW", close)
        # Ctrl-C and SIGTERM close the window the same way (the handler runs at the next
        # pump; a KeyboardInterrupt raised inside a Tk callback would only be printed)
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda signum, frame: root.after(0, close))
        if args.duration:
            root.after(int(args.duration * 1000), close)
        manager.start()
        root.after(PUMP_EVERY_MS, pump)
        root.mainloop()


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
