"""`catalog-sync amazon-emulator`: the local SP-API stand-in (LWA token endpoint + Listings Items
API 2021-08-01). Point the submitter at it with SPAPI_ENDPOINT=<url>,
SPAPI_SANDBOX_ENDPOINT=<url>/sandbox and LWA_TOKEN_URL=<url>/auth/o2/token.

As at Amazon, only known applications log in, and an access token works only for the sellers
whose refresh token it came from. Tell it the accounts the submitter uses:
  --accounts-file FILE   the submitter's SPAPI_ACCOUNTS_FILE format
  --accounts-from-env    SPAPI_ACCOUNTS_FILE and/or LWA_CLIENT_ID, LWA_CLIENT_SECRET,
                         LWA_REFRESH_TOKEN, SELLER_ID, read as the submitter reads them
  --client ID:SECRET --seller REFRESH_TOKEN=SELLER_ID
With none of them it refuses every login; --any-credentials lets anyone in, for any seller.
/sandbox is Amazon's static sandbox (fixed example answers); --validating-sandbox makes it
validate and store like production instead."""

from __future__ import annotations

import argparse
import os


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
    accounts = parser.add_argument_group("accounts (who may log in, for which sellers)")
    accounts.add_argument("--accounts-file", action="append", default=[], metavar="FILE",
                          help="JSON in the submitter's SPAPI_ACCOUNTS_FILE format (repeatable)")
    accounts.add_argument("--accounts-from-env", action="store_true",
                          help="the accounts of SPAPI_ACCOUNTS_FILE / LWA_* / SELLER_ID, as the submitter reads them")
    accounts.add_argument("--client", action="append", default=[], metavar="CLIENT_ID:SECRET",
                          help="an LWA application (repeatable); the application of --seller and of accounts "
                               "files that name none")
    accounts.add_argument("--seller", action="append", default=[], metavar="REFRESH_TOKEN=SELLER_ID",
                          help="SELLER_ID authorised the --client application with REFRESH_TOKEN (repeatable)")
    accounts.add_argument("--any-credentials", action="store_true",
                          help="accept any client, secret and refresh token, for any seller (trying it by hand; "
                               "tests and the demo configure accounts)")
    parser.add_argument("--validating-sandbox", action="store_true",
                        help="/sandbox validates and stores like production instead of answering Amazon's "
                             "static sandbox examples")
    parser.add_argument("--product-type", action="append", default=[], metavar="NAME",
                        help="a product type Amazon has, besides the built-in ones (repeatable); others are "
                             "answered INVALID 4000003")
    parser.add_argument("--product-types-dir", default=None,
                        help="folder of <PRODUCT_TYPE>.json definitions: known product types, whose top-level "
                             "`required` attributes are reported missing (90220)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the fault randomness")
    parser.add_argument("--time-scale", type=float, default=1.0, metavar="X",
                        help="Amazon seconds per real second for usage plans and feed processing (default 1)")
    parser.add_argument("--feed-processing-s", type=float, default=30.0, metavar="SECONDS",
                        help="Amazon seconds from createFeed to the feed's final status (default 30)")


def accounts_from_args(args: argparse.Namespace, env=os.environ):
    from catalog_sync.amazon_emulator.tokens import LwaAccounts
    from catalog_sync.runtime.spapi_accounts import AccountsError, credentials_from_env, read_accounts_file

    configured = args.accounts_file or args.accounts_from_env or args.client or args.seller
    if args.any_credentials:
        if configured:
            raise SystemExit("--any-credentials lets everyone in: it cannot be combined with configured accounts")
        return LwaAccounts(any_credentials=True)
    accounts = LwaAccounts()
    try:
        clients = []
        for text in args.client:
            client_id, _, secret = text.partition(":")
            accounts.add_client(client_id, secret)
            clients.append((client_id, secret))
        default = clients[0] if len(clients) == 1 else ("", "")
        for text in args.seller:
            refresh, _, seller = text.rpartition("=")  # seller ids never hold '='; refresh tokens might
            if len(clients) != 1:
                raise SystemExit("--seller needs exactly one --client (use --accounts-file for several applications)")
            accounts.authorise(refresh, seller, default[0])
        for path in args.accounts_file:
            accounts.add_credentials(read_accounts_file(path, *default, source=f"--accounts-file {path}").values())
        if args.accounts_from_env:
            accounts.add_credentials(credentials_from_env(env).sellers.values())
    except AccountsError as exc:
        raise SystemExit(str(exc)) from None
    return accounts


def config_from_args(args: argparse.Namespace):
    from catalog_sync.amazon_emulator.emulator import EmulatorConfig
    from catalog_sync.amazon_emulator.product_types import KNOWN_PRODUCT_TYPES, load_required
    from catalog_sync.amazon_emulator.quota import DEFAULT_PLANS, parse_plan

    if not 0.0 <= args.fault_5xx_rate <= 1.0:
        raise SystemExit("--fault-5xx-rate must be between 0 and 1")
    if args.token_ttl <= 0:
        raise SystemExit("--token-ttl must be > 0")
    if args.time_scale <= 0 or args.feed_processing_s < 0:
        raise SystemExit("--time-scale must be > 0 and --feed-processing-s >= 0")
    try:
        plans = {**DEFAULT_PLANS, **dict(parse_plan(p) for p in args.plan)}
    except ValueError as exc:
        raise SystemExit(str(exc)) from exc
    return EmulatorConfig(
        throttled=not args.unthrottled, plans=plans, token_ttl_seconds=args.token_ttl,
        fault_5xx_rate=args.fault_5xx_rate, latency_ms=args.latency_ms, latency_jitter_ms=args.latency_jitter_ms,
        rate_limit_header=not args.no_rate_limit_header, accounts=accounts_from_args(args),
        validating_sandbox=args.validating_sandbox, product_types=KNOWN_PRODUCT_TYPES | set(args.product_type),
        product_type_required=load_required(args.product_types_dir) if args.product_types_dir else {},
        seed=args.seed, time_scale=args.time_scale, feed_processing_s=args.feed_processing_s,
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
    print(f"  accounts: {config.accounts.describe()}; sandbox: "
          f"{'validating (--validating-sandbox)' if config.validating_sandbox else 'static, as Amazon'}", flush=True)
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
