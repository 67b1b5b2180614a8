"""Amazon's marketplaces and SP-API hosts, in one place: marketplace ID -> country (what a support
case needs), the store's domain (what a person recognises) and the selling region, whose
production and sandbox hosts every SP-API call goes to (Amazon's developer guide)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Marketplace:
    marketplace_id: str
    country_code: str
    country: str
    region: str  # SP-API endpoint region: NA, EU, FE
    domain: str


_ALL = (
    Marketplace("A2EUQ1WTGCTBG2", "CA", "Canada", "NA", "amazon.ca"),
    Marketplace("ATVPDKIKX0DER", "US", "United States", "NA", "amazon.com"),
    Marketplace("A1AM78C64UM0Y8", "MX", "Mexico", "NA", "amazon.com.mx"),
    Marketplace("A2Q3Y263D00KWC", "BR", "Brazil", "NA", "amazon.com.br"),
    Marketplace("A28R8C7NBKEWEA", "IE", "Ireland", "EU", "amazon.ie"),
    Marketplace("A1RKKUPIHCS9HS", "ES", "Spain", "EU", "amazon.es"),
    Marketplace("A1F83G8C2ARO7P", "UK", "United Kingdom", "EU", "amazon.co.uk"),
    Marketplace("A13V1IB3VIYZZH", "FR", "France", "EU", "amazon.fr"),
    Marketplace("AMEN7PMS3EDWL", "BE", "Belgium", "EU", "amazon.com.be"),
    Marketplace("A1805IZSGTT6HS", "NL", "Netherlands", "EU", "amazon.nl"),
    Marketplace("A1PA6795UKMFR9", "DE", "Germany", "EU", "amazon.de"),
    Marketplace("APJ6JRA9NG5V4", "IT", "Italy", "EU", "amazon.it"),
    Marketplace("A2NODRKZP88ZB9", "SE", "Sweden", "EU", "amazon.se"),
    Marketplace("AE08WJ6YKNBMC", "ZA", "South Africa", "EU", "amazon.co.za"),
    Marketplace("A1C3SOZRARQ6R3", "PL", "Poland", "EU", "amazon.pl"),
    Marketplace("ARBP9OOSHTCHU", "EG", "Egypt", "EU", "amazon.eg"),
    Marketplace("A33AVAJ2PDY3EV", "TR", "Turkey", "EU", "amazon.com.tr"),
    Marketplace("A17E79C6D8DWNP", "SA", "Saudi Arabia", "EU", "amazon.sa"),
    Marketplace("A2VIGQ35RCS4UG", "AE", "United Arab Emirates", "EU", "amazon.ae"),
    Marketplace("A21TJRUUN4KGV", "IN", "India", "EU", "amazon.in"),
    Marketplace("A19VAU5U5O7RUS", "SG", "Singapore", "FE", "amazon.sg"),
    Marketplace("A39IBJ37TRP1C6", "AU", "Australia", "FE", "amazon.com.au"),
    Marketplace("A1VC38T7YXB528", "JP", "Japan", "FE", "amazon.co.jp"),
)

MARKETPLACES: dict[str, Marketplace] = {m.marketplace_id: m for m in _ALL}

PRODUCTION_HOSTS = {r: f"https://sellingpartnerapi-{r.lower()}.amazon.com" for r in ("NA", "EU", "FE")}
SANDBOX_HOSTS = {r: f"https://sandbox.sellingpartnerapi-{r.lower()}.amazon.com" for r in ("NA", "EU", "FE")}
LWA_TOKEN_URL = "https://api.amazon.com/auth/o2/token"  # Login with Amazon, the same for every region


class UnknownMarketplace(ValueError):
    pass


def region_of(marketplace_id: str) -> str:
    """NA, EU or FE; UnknownMarketplace for an ID Amazon does not list."""
    m = MARKETPLACES.get(marketplace_id)
    if m is None:
        raise UnknownMarketplace(f"marketplace {marketplace_id!r} is not a known Amazon marketplace id")
    return m.region


def describe(marketplace_id: str) -> dict:
    """Marketplace ID with its country; an unknown ID is reported as such, not guessed."""
    m = MARKETPLACES.get(marketplace_id)
    if m is None:
        return {"marketplace_id": marketplace_id, "country_code": None, "country": "unknown marketplace",
                "region": None, "domain": None}
    return {"marketplace_id": m.marketplace_id, "country_code": m.country_code, "country": m.country,
            "region": m.region, "domain": m.domain}
