import uuid

from catalog_sync.runtime.events import item_key, new_event_id


def test_event_ids_are_distinct_version_4_uuids():
    ids = {new_event_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    for value in list(ids)[:100]:
        parsed = uuid.UUID(value)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and str(parsed) == value


def test_item_key():
    assert item_key("A1", "ATVPDKIKX0DER", "HB-1") == "A1|ATVPDKIKX0DER|HB-1"
