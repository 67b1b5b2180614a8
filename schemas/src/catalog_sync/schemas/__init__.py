"""Avro schemas of every catalog-sync event (one .avsc per event and version); see README.md here."""
