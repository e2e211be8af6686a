"""`gongji benchmark`: settlements per second and their latency on PostgreSQL,
beside two baselines measured in the same run on the same machine.

* gongji: the binding and payment services, each in its own process (as in
  production; `--in-process` runs them on threads of this process instead),
  on scratch PostgreSQL databases. N families are registered over gRPC (a
  child with two grantors who split the child's bills PROPORTIONAL, so every
  bill is a two-payer settlement), then 1, 8, 32 … concurrent callers send
  Settle as fast as the answers come back.
* Everything runs as in production: every port serves mutual TLS with
  certificates of a development CA made in the scratch directory, and every
  call passes the shipped access policy as its natural caller (a `Desk` holds
  one stub per caller): people and policies are registered by a national
  operator, bindings and payer orders made by the national app, accounts
  credited and ledgers checked by the operator, and each bill is settled by
  the hospital named in it (one certificate per institution code, over sixteen
  connections a hospital taken in turn, as its counters would).
* PostgreSQL's own pgbench TPC-B (`-s 1`) with as many clients: what the
  database alone does on this machine.
* A bare grpc.aio echo server in its own process, driven by the same client
  loop over the same mutual TLS (a service certificate on the server, a
  hospital's on the client): what gRPC in Python alone costs per call, so
  settle ÷ echo compares like with like.
* Open loop (on by default; `--no-open-loop` skips it): right after the
  closed-loop levels, on the same servers and families, Settle calls arrive at a
  fixed mean rate with Poisson (exponential, seeded) gaps, each sent at its
  intended time whether or not earlier ones have answered, and timed from that
  intended time (as wrk2 does), so coordinated omission cannot hide queueing.
  The rates are 50, 70 and 90 % of the best closed-loop settlements/s of the same
  run, or `--rate R[,R…]`; the report gives p50/p99/p99.9, max, the achieved rate
  and errors per rate, and the project's target (p99 ≤ 25 ms at 70 %).
* Through the gateway (on by default; `--no-gateway` skips it, and so does
  `--profile`): after the single-node phase the national-interface gateway is
  started (`gongji serve gateway`, or on a thread with `--in-process`) in front of
  the same binding and payment servers, on a scratch database of its own, and the
  same families' bills are sent as 2207 envelopes, POSTed over HTTPS by each
  hospital with its own certificate on keep-alive aiohttp connections, at the same
  concurrency levels. The report sets 2207 settlements/s through the gateway beside
  direct gRPC Settle of the same run, with the ratio, the latencies and the CPU per
  settlement (the gateway's own included); the ledger must balance afterwards.
* The cost of security (on by default; `--no-plaintext-baseline` skips it):
  after the single-node phase the binding and payment servers are restarted
  with `--insecure` (plaintext on 127.0.0.1) on the same databases and the same
  families, and the same Settle load runs at the same concurrency levels. Those
  calls name their hospital in an `x-forwarded-client-cert` header, so the access
  policy still judges every call and only TLS differs; the report gives both
  rates and mTLS ÷ plaintext per level. The servers then get mutual TLS again.
  The phases run one after the other, and on a shared host the machine's speed
  can change in between: postgres's CPU per settlement, which TLS does not touch,
  is reported beside each ratio as a control, and the report says when it moved.
  `--in-process` skips this phase (as it skips the cross-node one), and so does
  `--profile` (the profiler would slow the mutual-TLS side only).
* The cost of observability (on by default; `--no-observability-baseline` skips
  it, and `--in-process` and `--profile` do too): the single-node phase runs with
  no `--metrics-address` and no OTEL_* variables (the benchmark drops any it was
  started with). Then binding and payment are restarted with mutual TLS,
  `--metrics-address` (both `/metrics` scraped every second, as Prometheus would)
  and `OTEL_TRACES_EXPORTER=otlp` to a trace receiver on a thread of the
  benchmark, which counts the spans; the same Settle load runs again, and the
  report sets it beside the single-node levels (rates, latency, CPU per
  settlement, postgres's CPU as the control) with the spans and scrapes counted.
  The servers are then restarted with observability off.
* Cross-node (on by default; `--no-cross-node` skips it): the payment service
  runs as two nodes on this machine, "east" (Jiangsu, 32, among others) and
  "west" (Gansu, 62, among others), each with its own scratch database and one
  routing file, which the binding service gets too (it answers only these
  nodes). The single-node figures come from families entirely in Nanjing,
  served by east alone; then as many cross-province families (child and mother
  in Nanjing, father in Lanzhou with his account on west) settle two-payer bills
  at a Nanjing hospital through east, at the same concurrency levels. Afterwards
  both ledgers must balance and both nodes must report the same clearing.

* Scale (only with `--population N[,N…]`, last): per population, smallest first,
  fresh binding and payment databases loaded with COPY by `gongji populate`
  (services/population), binding and east started on them, a uniform sample of
  the populated families (`--families` of them, every region) read back, and their
  children's bills settled at their region's hospitals: closed loop at
  `--scale-concurrency` callers (8), then open loop at one rate for every population
  (70 % of the smallest one's closed-loop rate, or `--scale-rate`). The report gives
  load time, database sizes, rates and latencies per population, and the project's
  targets: the rate at the largest ≥ 80 % of the rate at the smallest, the open-loop
  p99 growing ≤ 1.25×. Each population's databases are dropped before the next loads.

Every window also records the CPU each process used (from /proc), including
"other": what processes outside the benchmark took, since a busy machine skews
everything, and "steal": what the hypervisor gave other guests of the host while this
machine's cores were ready to run (a shared host slows the whole run without it
showing as any process's CPU); for a payment node of several processes, each process's own
share after the node's ("payment:1", "payment:2"), since the kernel gives each connection whole to
one process and an uneven spread leaves one busy while another idles; and what PostgreSQL's
checkpointer wrote, since a checkpoint's writes delay the WAL flush every commit waits for.
It reports what it measured; it never fails on speed.
`--profile PATH` runs both services under cProfile (every thread, from the first
measured call to the last of the single-node mutual-TLS phase) and prints where
the payment service's time goes: the top functions and the share of each layer
(SQLAlchemy, psycopg, asyncio …).

The package, one idea a module. `run` runs it all (`run_benchmark`, `parse_concurrency`);
the workload is `families` (registering them), `desk` (who calls), `settle_load` and the
phases `single_node` (with `open_loop`), `through_gateway`, `cost_of_security`, `cost_of_observability`,
`cross_node` and `scale`; the baselines are `echo` and `pgbench`; measuring is `driver`, `latency` and `cpu`;
`processes`, `servers` and `gateway_server` start and stop what runs; `profiling` records and
`profile_stats` reads the cProfile dumps; the output
is `summary` (the JSON object) and `report` (the text). `deployment` names the nodes, callers
and regions, `options` the flags; `__main__` is the entry of the helper processes it starts.
"""

from __future__ import annotations

from services.benchmark.errors import BenchmarkError
from services.benchmark.run import parse_concurrency, parse_population, parse_rates, run_benchmark

__all__ = ["BenchmarkError", "parse_concurrency", "parse_population", "parse_rates", "run_benchmark"]
