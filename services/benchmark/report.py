"""The human-readable report on stdout, read from the summary: the levels beside echo and pgbench,
CPU per call, the ledger and two-payer checks, 2207 through the gateway beside direct Settle, the
costs of security and of observability, the cross-node comparison, the targets, and where the
profiled services spent their time."""

from __future__ import annotations

from typing import Any

from services.benchmark.deployment import ADMDVS, WEST_ADMDVS
from services.benchmark.summary import STEADY_CONTROL, TARGET_CALLERS


def print_report(summary: dict[str, Any]) -> None:
    """The whole report; each optional part only when the run measured it."""
    print(
        f"\ngongji benchmark: {summary['cpu_count']} CPUs, servers {summary['server_mode']}, "
        f"{summary['families']} families, {summary['seconds']:g}s per level after {summary['warmup']:g}s warm-up, "
        f"server log level {summary['server_log_level']}, code {summary['code']['commit'] or '(not a git checkout)'}"
        f"{' + uncommitted changes' if summary['code']['dirty'] else ''}"
    )
    print(
        f"transport: {summary['transport']}; every settle, echo and cross-node call presents its caller's certificate"
    )
    kept = "kept by each payment node, current by the binding watch" if summary.get("payer_cache") else "asked per bill"
    processes = summary.get("payment_processes", 1)
    one_round = summary.get("one_round", True)
    rounds = "one call where the other node's payers come last" if one_round else "hold, then commit"
    print(f"payers: {kept}; {processes} process{'es' if processes > 1 else ''} per payment node; cross-node: {rounds}")
    header = (
        f"{'callers':>7} | {'settle/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'err':>4} | {'echo/s':>8} {'p50':>6} "
        f"{'p99':>6} | {'pgbench':>8} {'p50':>6} {'p99':>6} | {'÷pgbench':>8} {'p50÷echo':>8} {'p99÷echo':>8}"
    )
    print(header)
    print("-" * len(header))
    for row in summary["levels"]:
        echo, pg, ratios = row["echo"], row["pgbench"], row["ratios"]
        print(
            f"{row['concurrency']:>7} | {row['settlements_per_second']:>9.1f} {row['p50_ms']:>7.2f} "
            f"{row['p99_ms']:>7.2f} {sum(row['errors'].values()):>4} | {echo['per_second']:>8.0f} "
            f"{echo['p50_ms']:>6.2f} {echo['p99_ms']:>6.2f} | {pg['tps']:>8.0f} {pg['p50_ms']:>6.2f} "
            f"{pg['p99_ms']:>6.2f} | {ratios['settlements_per_pgbench_tps'] or 0:>8.1%} "
            f"{ratios['p50_vs_echo_p50'] or 0:>7.1f}x {ratios['p99_vs_echo_p99'] or 0:>7.1f}x"
        )
    print("\nCPU during the settlement window (% of one core):")
    for row in summary["levels"]:
        print(
            f"  {row['concurrency']:>3} callers: " + ", ".join(f"{k} {v:.0f}%" for k, v in row["cpu_percent"].items())
        )
    print("\nCPU per call (ms; from /proc, so it holds even when the machine is busy), and the rate the serving")
    print(f"side alone could reach on {summary['cpu_count']} free cores:")
    for row in summary["levels"]:
        cost, pg, echo = row["cpu_cost"], row["pgbench"]["cpu_cost"], row["echo"]["cpu_cost"]
        if not cost or not pg:
            continue
        parts = " + ".join(f"{name} {cost['ms_per_call'].get(name, 0):.2f}" for name in cost["serving"])
        print(
            f"  {row['concurrency']:>3} callers: settlement {parts} = {cost['serving_ms_per_call']:.2f} ms "
            f"(≤ {cost['ceiling_per_second'] or 0:.0f}/s); pgbench {pg['serving_ms_per_call']:.2f} ms "
            f"(≤ {pg['ceiling_per_second'] or 0:.0f}/s); echo {echo.get('serving_ms_per_call', 0):.2f} ms; "
            f"ceiling ratio {row['ratios']['ceiling_settlements_per_pgbench_tps'] or 0:.1%}"
        )
    if summary["other_cpu_percent_max"] > 20:
        print(
            f"  note: other processes used up to {summary['other_cpu_percent_max']:.0f}% of a core during a "
            "window (the 'other' column); the machine was not quiet, so these figures are pessimistic"
        )
    if summary.get("steal_cpu_percent_max", 0.0) > 5:
        print(
            f"  note: the hypervisor gave other guests up to {summary['steal_cpu_percent_max']:.0f}% of a core during "
            "a window (the 'steal' column); this machine ran slower than its CPU figures show"
        )
    if summary.get("checkpoint_write_mb_max", 0.0) >= 1:
        print(
            f"  note: PostgreSQL's checkpointer wrote up to {summary['checkpoint_write_mb_max']:.0f} MB during a "
            "window (marked 'checkpoint wrote' in the progress lines, 'ckpt MB' in the open-loop table); "
            "commits wait longer for the WAL then"
        )
    for row in summary["levels"]:
        for error, count in row["errors"].items():
            print(f"  errors at {row['concurrency']} callers: {count} × {error}")
    two = summary["two_payer"]
    print(
        f"\ntwo-payer bills: {two['with_two_legs']} of {two['settlements_checked']} settlements had 2 legs "
        f"({two['fraction']:.1%})"
    )
    ledger = summary["ledger"]
    state = "balanced" if ledger["balanced"] else "NOT BALANCED: " + "; ".join(ledger["problems"])
    print(
        f"ledger after the run: {state} ({ledger['entry_count']} entries, {ledger['account_count']} accounts; "
        f"the run made {ledger['credits']} credits and {ledger['settlements']} settlements)"
    )
    if summary.get("open_loop"):
        _print_open_loop(summary["open_loop"])
    if summary.get("gateway"):
        _print_gateway(summary["gateway"])
    if summary.get("security"):
        _print_security(summary["security"])
    if summary.get("observability"):
        _print_observability(summary["observability"])
    if summary.get("cross_node"):
        _print_cross(summary["cross_node"])
    if summary.get("scale"):
        _print_scale(summary["scale"])
    targets = summary["targets"]
    share, p99 = targets["settlements_vs_pgbench"], targets["p99_ms"]
    mark = {True: "met", False: "NOT met"}
    print("\ntargets:")
    print(
        f"  settlements/s ≥ {share['target']:.0%} of pgbench tps at {share['concurrency']} callers: "
        f"{(share['value'] or 0):.1%} — {mark[share['met']]}"
        + (f" (on CPU cost per call: {share['ceiling_value']:.1%})" if share.get("ceiling_value") else "")
    )
    print(f"  p99 < {p99['target']:g} ms at {p99['concurrency']} callers: {p99['value']:.1f} ms — {mark[p99['met']]}")
    opened = (summary.get("open_loop") or {}).get("target")
    if opened:
        verdict = (
            "not checked: no open-loop rate within 5 points of it"
            if opened["met"] is None
            else f"{opened['value']:.1f} ms at {opened['rate']:g}/s — {mark[opened['met']]}"
        )
        floor = opened.get("pgbench_p99_ms")
        beside = f" (pgbench's own p99 at that rate: {floor:.1f} ms)" if floor is not None else ""
        print(
            f"  open loop: p99 ≤ {opened['p99_ms']:g} ms at {opened['share']:.0%} of the closed-loop best: {verdict}"
            f"{beside}"
        )
    scaled = (summary.get("scale") or {}).get("targets", {})
    for key, bound in (("rate", "≥"), ("p99_growth", "≤")):
        if key in scaled:
            target = scaled[key]
            verdict = f"{target['value']:.3g} — {mark[target['met']]}" if target["met"] is not None else "not checked"
            print(f"  scale: {target['what']} {bound} {target['target']:g}: {verdict}")
    if share["concurrency"] != TARGET_CALLERS:
        print(f"  (both targets are stated at {TARGET_CALLERS} callers; this run's highest level was checked)")
    profile = summary["profile"]
    if profile:
        _print_profile(profile)


def _print_open_loop(opened: dict[str, Any]) -> None:
    print(
        f"\nOpen loop: Settle at a fixed mean rate, Poisson arrivals, each call sent at its intended time and timed "
        f"from it (as wrk2),\nso queueing is not hidden; shares of the best closed-loop rate "
        f"({opened['closed_loop_max_per_second']:.1f}/s at {opened['closed_loop_concurrency']} callers), "
        f"{opened['seconds']:g}s per rate, exact percentiles:"
    )
    header = (
        f"{'rate/s':>8} {'share':>6} {'due/s':>7} | {'achieved/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} "
        f"{'max ms':>8} {'err':>4} | {'in flight':>9} {'send lag':>8} {'ckpt MB':>7}"
    )
    print(header)
    print("-" * len(header))
    for row in opened["levels"]:
        share = row["share_of_closed_loop_max"]
        print(
            f"{row['rate']:>8.1f} {f'{share:.0%}' if share is not None else '—':>6} "
            f"{row['intended'] / opened['seconds']:>7.1f} | "
            f"{row['achieved_per_second']:>10.1f} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} {row['p999_ms']:>9.2f} "
            f"{row['max_ms']:>8.2f} {sum(row['errors'].values()):>4} | {row['max_in_flight']:>9} "
            f"{row['send_lag_max_ms']:>6.1f}ms {_megabytes(row.get('checkpoint_write_mb')):>7}"
        )
    for row in opened["levels"]:
        for error, count in row["errors"].items():
            print(f"  open-loop errors at {row['rate']:g}/s: {count} × {error}")
        if row["unfinished"]:
            print(
                f"  at {row['rate']:g}/s {row['unfinished']} calls were still unanswered when the drain gave up; "
                "their wait so far is in the percentiles (a lower bound)"
            )
    if opened["cap_hit"]:
        print(f"  the in-flight cap ({opened['in_flight_cap']}) was reached: later sends waited (the wait is counted)")
    print(
        "  due/s: the calls the seeded Poisson schedule put in the window (the mean rate ± about √n); in flight: "
        "most calls\n  outstanding at once; send lag: how far behind schedule the generator sent a call at worst "
        "(counted in the latency);\n  with fewer than 1000 calls in a window p99.9 is its maximum; ckpt MB: what "
        "PostgreSQL's checkpointer wrote\n  during the window (its writes and fsyncs delay the WAL flush every "
        "commit waits for)"
    )
    databases = [row for row in opened["levels"] if row.get("pgbench")]
    if databases:
        clients = databases[0]["pgbench"]["clients"]
        print(
            f"PostgreSQL alone at the same rates (pgbench TPC-B -R, {clients} clients, each transaction timed from "
            "its scheduled start):"
        )
        for row in databases:
            database = row["pgbench"]
            print(
                f"{row['rate']:>8.1f}/s: {database['tps']:.1f} tps  p50 {database['p50_ms']:.2f} ms  "
                f"p99 {database['p99_ms']:.2f} ms  p99.9 {database['p999_ms']:.2f} ms; "
                f"Settle's p99 is {row['p99_vs_pgbench_p99'] or 0:.1f}× it"
            )


def _megabytes(written: float | None) -> str:
    return "—" if written is None else f"{written:.0f}"


def _print_scale(scale: dict[str, Any]) -> None:
    print(
        f"\nScale: {scale['databases']};\n{scale['sample']}, each bill settled at a hospital of the "
        f"child's region: closed loop at {scale['concurrency']} callers, then open loop at "
        f"{scale['open_loop_rate'] or 0:.1f}/s ({scale['open_loop_rate_from']}), {scale['seconds']:g}s each:"
    )
    header = (
        f"{'persons':>11} {'load s':>7} {'binding db':>10} {'payment db':>10} | {'settle/s':>8} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'err':>4} {'CPU ms':>6} | {'open/s':>6} {'p50 ms':>7} {'p99 ms':>7} {'p99.9':>7} {'err':>4}"
    )
    print(header)
    print("-" * len(header))
    for row in scale["rows"]:
        closed, opened = row["closed_loop"], row["open_loop"]
        open_part = (
            f"{opened['achieved_per_second']:>6.1f} {opened['p50_ms']:>7.2f} {opened['p99_ms']:>7.2f} "
            f"{opened['p999_ms']:>7.2f} {sum(opened['errors'].values()):>4}"
            if opened
            else f"{'—':>6}"
        )
        print(
            f"{row['persons']:>11,} {row['load_seconds']:>7.1f} {row['database_size']['binding']:>10} "
            f"{row['database_size']['payment']:>10} | {closed['settlements_per_second']:>8.1f} "
            f"{closed['p50_ms']:>7.2f} {closed['p99_ms']:>7.2f} {sum(closed['errors'].values()):>4} "
            f"{closed['cpu_cost'].get('serving_ms_per_call') or 0:>6.2f} | {open_part}"
        )
    for row in scale["rows"]:
        for error, count in row["closed_loop"]["errors"].items():
            print(f"  errors at {row['persons']:,} persons: {count} × {error}")
    print(
        "  load s: gongji populate (generate, COPY, ANALYZE), after the migrations; sizes as loaded, before the run;\n"
        "  CPU ms: the serving side's CPU per settlement (closed loop), steadier than the rate on a busy machine;\n"
        "  open/s: the rate achieved of the one offered"
    )


def _print_gateway(gateway: dict[str, Any]) -> None:
    print(
        "\n2207 through the gateway: the same families' bills as national-interface 2207 envelopes over HTTPS "
        "(each hospital's\nclient certificate, keep-alive), settled by the gateway on the same payment service "
        "over mutual-TLS gRPC, beside direct gRPC Settle:"
    )
    header = (
        f"{'callers':>7} | {'Settle/s':>9} {'p50 ms':>7} {'p99 ms':>7} | {'2207/s':>9} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'err':>4} | {'2207÷Settle':>11} {'p50 ×':>6} {'p99 ×':>6} | {'CPU ms/call direct → gateway':>30}"
    )
    print(header)
    print("-" * len(header))
    for row in gateway["levels"]:
        direct, through, ratios = row["direct_settle"], row["through_gateway"], row["ratios"]
        gateway_ms = through["cpu_cost"].get("ms_per_call", {}).get("gateway")
        cpu_text = (
            f"{direct['serving_ms_per_call'] or 0:.2f} → {through['cpu_cost'].get('serving_ms_per_call', 0):.2f}"
            + (f" (gateway {gateway_ms:.2f})" if gateway_ms is not None else "")
        )
        print(
            f"{row['concurrency']:>7} | {direct['settlements_per_second']:>9.1f} {direct['p50_ms']:>7.2f} "
            f"{direct['p99_ms']:>7.2f} | {through['settlements_per_second']:>9.1f} {through['p50_ms']:>7.2f} "
            f"{through['p99_ms']:>7.2f} {sum(through['errors'].values()):>4} | "
            f"{ratios['gateway_per_direct_settlements'] or 0:>11.1%} {ratios['gateway_per_direct_p50'] or 0:>5.2f}x "
            f"{ratios['gateway_per_direct_p99'] or 0:>5.2f}x | {cpu_text:>30}"
        )
    for row in gateway["levels"]:
        for error, count in row["through_gateway"]["errors"].items():
            print(f"  gateway errors at {row['concurrency']} callers: {count} × {error}")
    paid, ledger, sample = gateway["paid_by_accounts"], gateway["ledger"], gateway["sample"]
    state = "balanced" if ledger["balanced"] else "NOT BALANCED: " + "; ".join(ledger["problems"])
    print(
        f"gateway: {paid['with_no_cash']} of {paid['settlements_checked']} 2207 answers had psn_cash_pay 0 (sample: "
        f"acct_pay {sample['acct_pay']}, acct_mulaid_pay {sample['acct_mulaid_pay']}, psn_cash_pay "
        f"{sample['psn_cash_pay']} yuan); ledger afterwards {state} ({ledger['entry_count']} entries)"
    )


def _print_security(security: dict[str, Any]) -> None:
    print(
        "\ncost of security: the same Settle load on the same databases with binding and payment restarted "
        "--insecure\n(plaintext; each call names its hospital in x-forwarded-client-cert, so authorization "
        "still runs and only TLS differs):"
    )
    header = (
        f"{'callers':>7} | {'mTLS/s':>9} {'p50 ms':>7} {'p99 ms':>7} | {'plain/s':>9} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'err':>4} | {'mTLS÷plain':>10} {'cost':>6} {'p50 ×':>6} {'p99 ×':>6} | {'CPU ms/call mTLS plain':>22} "
        f"{'pg ×':>5}"
    )
    print(header)
    print("-" * len(header))
    for row in security["levels"]:
        tls, plain, ratios = row["mutual_tls"], row["plaintext"], row["ratios"]
        print(
            f"{row['concurrency']:>7} | {tls['settlements_per_second']:>9.1f} {tls['p50_ms']:>7.2f} "
            f"{tls['p99_ms']:>7.2f} | {plain['settlements_per_second']:>9.1f} {plain['p50_ms']:>7.2f} "
            f"{plain['p99_ms']:>7.2f} {sum(plain['errors'].values()):>4} | "
            f"{ratios['mtls_per_plaintext_settlements'] or 0:>10.1%} {row['security_cost'] or 0:>6.1%} "
            f"{ratios['mtls_per_plaintext_p50'] or 0:>5.2f}x {ratios['mtls_per_plaintext_p99'] or 0:>5.2f}x | "
            f"{tls['serving_ms_per_call'] or 0:>16.2f} {plain['cpu_cost'].get('serving_ms_per_call', 0):>5.2f} "
            f"{ratios['postgres_cpu_mtls_per_plaintext'] or 0:>4.2f}x"
        )
    low, high = STEADY_CONTROL
    verdict = {
        True: f"within {low:.1f}–{high:.1f} at every level: the machine held its speed between the phases",
        False: f"outside {low:.1f}–{high:.1f}: the machine's speed changed between the phases (a shared host?), "
        "so the ratio says more about that than about TLS",
        None: "no CPU figures on this system",
    }[security["steady"]]
    print(f"  pg ×: postgres's CPU per settlement, mTLS ÷ plaintext, a control TLS does not touch; {verdict}")
    _print_rerun_outcome("plaintext", security, "plaintext")


def _print_observability(observed: dict[str, Any]) -> None:
    print(
        "\ncost of observability: the same Settle load with binding and payment restarted (mutual TLS) with "
        "--metrics-address,\neach /metrics scraped every second, and OTEL_TRACES_EXPORTER=otlp (every call traced) "
        "to a receiver in this process:"
    )
    header = (
        f"{'callers':>7} | {'off/s':>8} {'p50 ms':>7} {'p99 ms':>7} | {'on/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'err':>4} | {'on÷off':>7} {'cost':>6} {'p50 ×':>6} {'p99 ×':>6} | {'CPU ms/settlement off → on':>35} "
        f"{'pg ×':>5}"
    )
    print(header)
    print("-" * len(header))
    for row in observed["levels"]:
        off, on, ratios = row["off"], row["on"], row["ratios"]
        on_ms = on["cpu_cost"].get("ms_per_call", {})

        def cpu(ms: dict[str, Any], name: str) -> str:
            return f"{ms.get(name) or 0:.2f}"

        cpu_text = (
            f"payment {cpu(off['ms_per_call'], 'payment')}→{cpu(on_ms, 'payment')} "
            f"binding {cpu(off['ms_per_call'], 'binding')}→{cpu(on_ms, 'binding')}"
        )
        print(
            f"{row['concurrency']:>7} | {off['settlements_per_second']:>8.1f} {off['p50_ms']:>7.2f} "
            f"{off['p99_ms']:>7.2f} | {on['settlements_per_second']:>8.1f} {on['p50_ms']:>7.2f} "
            f"{on['p99_ms']:>7.2f} {sum(on['errors'].values()):>4} | "
            f"{ratios['on_per_off_settlements'] or 0:>7.1%} {row['observability_cost'] or 0:>6.1%} "
            f"{ratios['on_per_off_p50'] or 0:>5.2f}x {ratios['on_per_off_p99'] or 0:>5.2f}x | {cpu_text:>35} "
            f"{ratios['postgres_cpu_on_per_off'] or 0:>4.2f}x"
        )
    print(
        "  pg ×: postgres's CPU per settlement, on ÷ off: the control, though not a clean one here, since each "
        "scrape reads its gauges from the database"
    )
    failures = sum(observed["scrape_failures"].values())
    print(
        f"  tracing was on: {observed['spans_received']} spans received in {observed['export_requests']} OTLP "
        f"exports (≈ {observed['spans_per_settlement'] or 0:g} per settlement); metrics: {observed['scrapes']} "
        f"scrapes answered ({failures} failed), {observed['scrape_ms_mean'] or 0:.1f} ms each on average"
    )
    _print_rerun_outcome("observed", observed, "on")


def _print_rerun_outcome(what: str, phase: dict[str, Any], side: str) -> None:
    """The errors, legs and ledger of a phase that reran the Settle load on restarted servers."""
    for row in phase["levels"]:
        for error, count in row[side]["errors"].items():
            print(f"  {what} errors at {row['concurrency']} callers: {count} × {error}")
    ledger = phase["ledger"]
    state = "balanced" if ledger["balanced"] else "NOT BALANCED: " + "; ".join(ledger["problems"])
    two = phase["two_payer"]
    print(
        f"{what}: {two['with_two_legs']} of {two['settlements_checked']} settlements had 2 legs; "
        f"ledger afterwards {state} ({ledger['entry_count']} entries)"
    )


def _print_cross(cross: dict[str, Any]) -> None:
    print(
        f"\ncross-node settlements ({cross['families']} families: child and mother in {ADMDVS} on east, father in "
        f"{WEST_ADMDVS} on west; bills sent to east) beside single-node ones:"
    )
    header = (
        f"{'callers':>7} | {'single/s':>9} {'p50 ms':>7} {'p99 ms':>7} | {'cross/s':>9} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'err':>4} | {'cross÷single':>12} {'p50 ×':>6} {'p99 ×':>6}"
    )
    print(header)
    print("-" * len(header))
    for row in cross["levels"]:
        alone, ratios = row["single_node"], row["ratios"]
        print(
            f"{row['concurrency']:>7} | {alone['settlements_per_second']:>9.1f} {alone['p50_ms']:>7.2f} "
            f"{alone['p99_ms']:>7.2f} | {row['settlements_per_second']:>9.1f} {row['p50_ms']:>7.2f} "
            f"{row['p99_ms']:>7.2f} {sum(row['errors'].values()):>4} | "
            f"{ratios['cross_per_single_settlements'] or 0:>12.1%} {ratios['cross_per_single_p50'] or 0:>5.1f}x "
            f"{ratios['cross_per_single_p99'] or 0:>5.1f}x"
        )
    for row in cross["levels"]:
        for error, count in row["errors"].items():
            print(f"  cross-node errors at {row['concurrency']} callers: {count} × {error}")
    legs = cross["legs"]
    print(
        f"cross-node bills: {legs['with_a_leg_in_west']} of {legs['settlements_checked']} had one leg paid in "
        f"{WEST_ADMDVS} ({legs['with_two_legs']} with 2 legs); sample: {', '.join(cross['sample_legs'])}"
    )
    for name, ledger in cross["ledgers"].items():
        state = "balanced" if ledger["balanced"] else "NOT BALANCED: " + "; ".join(ledger["problems"])
        print(f"ledger on {name}: {state} ({ledger['entry_count']} entries, {ledger['account_count']} accounts)")
    clearing = cross["clearing"]

    def owed(balances: list[dict[str, Any]]) -> str:
        return (
            ", ".join(
                f"{b['debtor_province']}→{b['creditor_province']} {b['amount_fen'] / 100:.2f} yuan" for b in balances
            )
            or "nothing"
        )

    print(
        f"clearing report for {clearing['date']} (China Standard Time): "
        + (f"east and west agree: {owed(clearing['east'])}" if clearing["agree"] else
           f"east and west DISAGREE: east {owed(clearing['east'])}; west {owed(clearing['west'])}")
    )  # fmt: skip


def _print_profile(profile: dict[str, Any]) -> None:
    clock = "CPU time of each thread" if profile["clock"] == "cpu" else "wall-clock time"
    print(f"\nprofile ({clock}, {profile['settle_calls']} Settle calls with the warm-ups; ms are per settlement):")
    sections = (
        ("payment", "top_cumulative", "payment service, top 25 by cumulative time"),
        ("payment", "top_self", "payment service, top 15 by own time"),
        ("binding", "top_self", "binding service, top 15 by own time"),
    )
    for service in ("payment", "binding"):
        layers = profile.get(service, {}).get("layers")
        if layers:
            print(f"\n  {service} service, own time by layer:")
            for row in layers:
                print(f"  {row['layer']:>22} {row['percent']:>5.1f}%  {row['ms_per_settlement'] or 0:>7.3f} ms")
    for service, key, title in sections:
        found = profile.get(service, {})
        if key not in found:
            continue
        print(f"\n  {title} ({found['path']}):")
        print(f"  {'calls':>9} {'own s':>8} {'cum s':>8} {'own ms':>7} {'cum ms':>7}  function")
        for row in found[key]:
            print(
                f"  {row['calls']:>9} {row['tottime_s']:>8.2f} {row['cumtime_s']:>8.2f} "
                f"{row['tottime_ms_per_settlement'] or 0:>7.3f} {row['cumtime_ms_per_settlement'] or 0:>7.3f}  "
                f"{row['function']}"
            )
