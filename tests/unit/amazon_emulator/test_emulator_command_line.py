"""`catalog-sync amazon-emulator`'s flags for accounts, the sandbox and product types: the
configuration they build, and the mistakes they refuse at start rather than at the first login."""

import argparse
import json

import pytest

from catalog_sync.amazon_emulator.entry import add_arguments, config_from_args
from catalog_sync.amazon_emulator.tokens import Authorisation


def config(*argv: str):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return config_from_args(parser.parse_args(list(argv)))


def test_client_and_seller_flags_make_one_application_with_its_sellers():
    built = config("--client", "app:s3:cret", "--seller", "Atzr|a=b=S1", "--seller", "Atzr|2=S2")
    assert built.accounts.clients == {"app": "s3:cret"}  # a secret may hold ':'; a refresh token '='
    assert built.accounts.refresh_tokens == {"Atzr|a=b": Authorisation("app", frozenset({"S1"})),
                                             "Atzr|2": Authorisation("app", frozenset({"S2"}))}
    assert not built.validating_sandbox and not built.accounts.any_credentials


def test_an_accounts_file_in_the_submitters_format(tmp_path):
    path = tmp_path / "accounts.json"
    path.write_text(json.dumps({"client_id": "app", "client_secret": "s", "sellers": {
        "S1": "Atzr|1", "S2": {"refresh_token": "Atzr|2", "client_id": "other", "client_secret": "t",
                               "rates": {"put": 1}}}}))
    built = config("--accounts-file", str(path))
    assert built.accounts.clients == {"app": "s", "other": "t"}
    assert built.accounts.refresh_tokens["Atzr|2"] == Authorisation("other", frozenset({"S2"}))


def test_accounts_from_the_environment_the_submitter_reads(monkeypatch):
    for name, value in {"LWA_CLIENT_ID": "app", "LWA_CLIENT_SECRET": "s", "LWA_REFRESH_TOKEN": "Atzr|env",
                        "SELLER_ID": "S1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SPAPI_ACCOUNTS_FILE", raising=False)
    built = config("--accounts-from-env")
    assert built.accounts.refresh_tokens == {"Atzr|env": Authorisation("app", frozenset({"S1"}))}


@pytest.mark.parametrize(("argv", "message"), [
    (["--any-credentials", "--client", "app:s"], "cannot be combined"),
    (["--seller", "Atzr|1=S1"], "needs exactly one --client"),
    (["--client", "a:1", "--client", "b:2", "--seller", "Atzr|1=S1"], "needs exactly one --client"),
    (["--client", "app-without-secret"], "client secret"),
    (["--client", "app:s", "--seller", "no-seller-id"], "seller id"),
    (["--client", "app:s", "--client", "app:t"], "two different client secrets"),
    (["--accounts-file", "/nonexistent/accounts.json"], "cannot read it"),
])
def test_mistakes_stop_the_emulator_at_start(argv, message):
    with pytest.raises(SystemExit, match=message):
        config(*argv)


def test_without_accounts_nobody_is_let_in_unless_anyone_is_asked_for():
    assert config().accounts.describe() == "no accounts configured: every token request is refused"
    anyone = config("--any-credentials").accounts
    assert anyone.any_credentials and "ANY credentials" in anyone.describe()


def test_sandbox_and_product_type_flags():
    built = config("--validating-sandbox", "--product-type", "SHIRT")
    assert built.validating_sandbox and {"SHIRT", "HAIRBAND"} <= built.product_types
