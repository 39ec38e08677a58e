"""Benchmarks: tradefeed's hot path against the bare websocket-client loop, the
``websockets`` asyncio client and cryptofeed, over loopback.

``python benchmarks/run.py --help`` is the entry point; ``RESULTS.rst`` holds measured
tables.  Modules:

- :mod:`benchmarks.frames`: Dopp frames and the few WebSocket bytes the servers need (pure);
- :mod:`benchmarks.server`: the loopback servers, run as their own process;
- :mod:`benchmarks.job`: what a client process is told to do, and what it records;
- :mod:`benchmarks.consumers`: the clients measured, each run in its own process
  (:mod:`benchmarks.aioclients`: the asyncio ones; :mod:`benchmarks.idle`: idle connections);
- :mod:`benchmarks.procstat`: CPU, memory and thread figures of the current process;
- :mod:`benchmarks.harness`: starts those processes and collects their results;
- :mod:`benchmarks.soak`: memory over a long run (10 M trades): its run, summary and table;
- :mod:`benchmarks.chaos`: every venue for minutes to an hour with seeded faults, checked for
  loss, duplicates, order, recovery, memory and threads (:mod:`benchmarks.chaos_server`: the
  simulator in its own process, faults on command);
- :mod:`benchmarks.report`: summaries, tables, JSON and ``RESULTS.rst``;
- :mod:`benchmarks.run`: the command line.
"""
