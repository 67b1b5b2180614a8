"""`catalog-sync amazon-emulator`: the local SP-API stand-in (LWA token endpoint + Listings Items
API 2021-08-01). Point the submitter at it with SPAPI_ENDPOINT=<url>,
SPAPI_SANDBOX_ENDPOINT=<url>/sandbox and LWA_TOKEN_URL=<url>/auth/o2/token."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser("amazon-emulator", help="the local Amazon SP-API emulator",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.set_defaults(func=run_command)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8099, help="port (default 8099; 0 picks a free one)")
    parser.add_argument("--fd", type=int, default=None, help=argparse.SUPPRESS)  # inherited listening socket
    parser.add_argument("--unthrottled", action="store_true", help="never answer 429 (no usage plans)")
    parser.add_argument("--plan", action="append", default=[], metavar="LANE=RATE[:BURST]",
                        help="override a usage plan, e.g. put=5:10, delete=5:5, preview=1:1 (repeatable)")
    parser.add_argument("--token-ttl", type=float, default=3600.0, metavar="SECONDS",
                        help="lifetime of issued access tokens (default 3600)")
    parser.add_argument("--fault-5xx-rate", type=float, default=0.0, metavar="P",
                        help="probability of answering 500/503 to a Listings call (default 0)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added latency per Listings call")
    parser.add_argument("--latency-jitter-ms", type=float, default=0.0, help="extra random latency, uniform 0..N")
    parser.add_argument("--no-rate-limit-header", action="store_true", help="omit x-amzn-RateLimit-Limit")
    parser.add_argument("--strict-sandbox", action="store_true",
                        help="/sandbox answers only Amazon's static sandbox patterns")
    parser.add_argument("--product-types-dir", default=None,
                        help="folder of <PRODUCT_TYPE>.json definitions: their top-level `required` "
                             "attributes are reported missing (90220)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the fault randomness")


def config_from_args(args: argparse.Namespace):
    from catalog_sync.amazon_emulator.emulator import EmulatorConfig
    from catalog_sync.amazon_emulator.product_types import load_required
    from catalog_sync.amazon_emulator.quota import DEFAULT_PLANS, parse_plan

    if not 0.0 <= args.fault_5xx_rate <= 1.0:
        raise SystemExit("--fault-5xx-rate must be between 0 and 1")
    if args.token_ttl <= 0:
        raise SystemExit("--token-ttl must be > 0")
    try:
        plans = {**DEFAULT_PLANS, **dict(parse_plan(p) for p in args.plan)}
    except ValueError as exc:
        raise SystemExit(str(exc)) from exc
    return EmulatorConfig(
        throttled=not args.unthrottled, plans=plans, token_ttl_seconds=args.token_ttl,
        fault_5xx_rate=args.fault_5xx_rate, latency_ms=args.latency_ms, latency_jitter_ms=args.latency_jitter_ms,
        rate_limit_header=not args.no_rate_limit_header, strict_sandbox=args.strict_sandbox,
        product_type_required=load_required(args.product_types_dir) if args.product_types_dir else {},
        seed=args.seed,
    )


def run_command(args: argparse.Namespace) -> int:
    import socket

    from catalog_sync.amazon_emulator.emulator import Emulator
    from catalog_sync.amazon_emulator.server import bind, serve

    config = config_from_args(args)
    sock = socket.socket(fileno=args.fd) if args.fd is not None else bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    plans = "unthrottled" if not config.throttled else ", ".join(
        f"{lane} {plan.rate:g}/s burst {plan.burst}" for lane, plan in config.plans.items())
    print(f"amazon-emulator listening on http://{host}:{port} ({plans}; token TTL {config.token_ttl_seconds:g} s; "
          f"5xx rate {config.fault_5xx_rate:g}; latency {config.latency_ms:g} ms)", flush=True)
    print(f"  SPAPI_ENDPOINT=http://{host}:{port} SPAPI_SANDBOX_ENDPOINT=http://{host}:{port}/sandbox "
          f"LWA_TOKEN_URL=http://{host}:{port}/auth/o2/token", flush=True)
    serve(Emulator(config), sock)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="amazon-emulator", description=__doc__)
    add_arguments(parser)
    return run_command(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
