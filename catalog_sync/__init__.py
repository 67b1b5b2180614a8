"""catalog-sync: keeps a product catalog in sync with Amazon listings."""

__version__ = "0.1.0"
