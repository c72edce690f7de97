"""Edge cases of the column-wise de-identification (``gateway.sharing.deidentify``)."""

from __future__ import annotations

import uuid

from gateway.sharing.deidentify import Deidentifier, Pseudonymizer, StateIds

KEY = b"k" * 32


def test_a_column_of_record_ids_holding_a_list_is_pseudonymised_element_by_element(store):
    """``Deidentifier.records`` takes a column whose values may be lists of ids (each mapped):
    the column-at-once path refuses them and the value-by-value one answers."""
    deid = Deidentifier(Pseudonymizer(KEY, "state"), StateIds(store.engine, "d1"))
    a, b, c = (str(uuid.uuid4()) for _ in range(3))
    one = deid.pseudonyms.record
    assert deid.records([a, None, [b, c.upper()]]) == [one("d1", a), None, [one("d1", b), one("d1", c)]]
    assert deid.records([a, None, c]) == [one("d1", a), None, one("d1", c)]
