"""Validator configuration from the environment (interfaces.md §4 plus the validator's own knobs)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from catalog_sync.runtime.config import ConfigError, env_choice, env_float, env_str
from catalog_sync.runtime.marketplaces import LWA_TOKEN_URL


@dataclass(frozen=True)
class ValidatorSettings:
    # Folder of <PRODUCT_TYPE>.json; None: the bundled samples (or, with source amazon, none).
    product_types_dir: Path | None = None
    # local: files only. amazon: files in PRODUCT_TYPES_DIR first, then the Product Type Definitions API.
    product_types_source: str = "local"
    product_types_cache_dir: Path = Path.home() / ".cache" / "catalog-sync" / "product-types"
    product_types_max_age_s: float = 24 * 3600
    default_seller_id: str | None = None
    spapi_endpoint: str | None = None
    lwa_token_url: str = LWA_TOKEN_URL
    lwa_client_id: str | None = None
    lwa_client_secret: str | None = None
    lwa_refresh_token: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> ValidatorSettings:
        env = os.environ if env is None else env
        folder = env_str(env, "PRODUCT_TYPES_DIR")
        cache = env_str(env, "PRODUCT_TYPES_CACHE_DIR")
        settings = cls(
            product_types_dir=Path(folder) if folder else None,
            product_types_source=env_choice(env, "PRODUCT_TYPES_SOURCE", "local", ("local", "amazon")),
            product_types_cache_dir=Path(cache) if cache else cls.product_types_cache_dir,
            product_types_max_age_s=env_float(env, "PRODUCT_TYPES_MAX_AGE_S", 24 * 3600, minimum=0),
            default_seller_id=env_str(env, "SELLER_ID"),
            spapi_endpoint=env_str(env, "SPAPI_ENDPOINT"),
            lwa_token_url=env_str(env, "LWA_TOKEN_URL", LWA_TOKEN_URL),
            lwa_client_id=env_str(env, "LWA_CLIENT_ID"),
            lwa_client_secret=env_str(env, "LWA_CLIENT_SECRET"),
            lwa_refresh_token=env_str(env, "LWA_REFRESH_TOKEN"),
        )
        settings = dataclasses.replace(settings, **overrides)
        if settings.product_types_dir is not None and not settings.product_types_dir.is_dir():
            raise ConfigError(f"PRODUCT_TYPES_DIR={settings.product_types_dir} is not a folder")
        if settings.product_types_source == "amazon":
            missing = [n for n, v in (("LWA_CLIENT_ID", settings.lwa_client_id),
                                      ("LWA_CLIENT_SECRET", settings.lwa_client_secret),
                                      ("LWA_REFRESH_TOKEN", settings.lwa_refresh_token)) if not v]
            if missing:
                raise ConfigError(f"PRODUCT_TYPES_SOURCE=amazon needs {', '.join(missing)}")
        return settings
