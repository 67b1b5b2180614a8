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


def test_an_item_key_splits_back_even_when_the_reference_holds_the_separator():
    from catalog_sync.runtime.events import split_item_key

    assert split_item_key(item_key("A1", "ATVPDKIKX0DER", "HB|1|x")) == ("A1", "ATVPDKIKX0DER", "HB|1|x")
    assert split_item_key(item_key(None, "ATVPDKIKX0DER", "HB-1")) == ("", "ATVPDKIKX0DER", "HB-1")
