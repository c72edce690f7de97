"""OneRoster ``demographics`` objects <-> ``Person.demographics``. A demographics object is
keyed by its user's sourcedId; its fields without a canonical twin (``cityOfBirth``, its own
status and dateLastModified) are kept by the caller in ``Person.extensions["oneroster_demographics"]``
and put back by ``demographics_to_wire``."""

from __future__ import annotations

from typing import Any

from gateway.errors import ValidationError
from gateway.model import Demographics, Person

from .values import Fields, parse_bool, parse_date
from .vocab import vocabularies


def demographics_to_canonical(obj: dict[str, Any], *, location: str | None = None) -> Demographics:
    """A OneRoster ``demographics`` object (keyed by the user's sourcedId) -> ``Demographics``.

    Race flags (americanIndianOrAlaskaNative, asian, blackOrAfricanAmerican,
    nativeHawaiianOrOtherPacificIslander, white, demographicRaceTwoOrMoreRaces) become race
    codes; hispanicOrLatinoEthnicity a boolean."""
    f = Fields(obj, location)
    out: dict[str, Any] = {}
    out["birth_date"] = f.convert("birthDate", parse_date)
    out["sex"] = f.enum("sex", vocabularies()["sexes"], what="sex")
    races = []
    for wire, code in RACE_FLAGS.items():
        v = f.convert(wire, parse_bool)
        if v:
            races.append(code)
    out["races"] = races
    out["hispanic_or_latino"] = f.convert("hispanicOrLatinoEthnicity", parse_bool)
    out["birth_country"] = f.get("countryOfBirthCode")
    out["birth_state"] = f.get("stateOfBirthAbbreviation")
    out["public_school_residence_status"] = f.get("publicSchoolResidenceStatus")
    f.used.add("cityOfBirth")  # no canonical field; kept by the caller in extensions
    if f.errors:
        raise ValidationError("invalid OneRoster demographics", errors=f.errors)
    return Demographics(**{k: v for k, v in out.items() if v is not None})


RACE_FLAGS = {
    "americanIndianOrAlaskaNative": "american_indian_or_alaska_native",
    "asian": "asian",
    "blackOrAfricanAmerican": "black_or_african_american",
    "nativeHawaiianOrOtherPacificIslander": "native_hawaiian_or_other_pacific_islander",
    "white": "white",
    "demographicRaceTwoOrMoreRaces": "two_or_more_races",
}


def demographics_to_wire(person: Person, *, version: str = "1.2") -> dict[str, Any] | None:
    """``Person.demographics`` -> a OneRoster demographics object (sourcedId = the user's)."""
    d = person.demographics
    if d is None:
        return None
    sexes = vocabularies()["sexes"]
    ext = dict(person.extensions.get("oneroster_demographics") or {})
    out: dict[str, Any] = {
        "sourcedId": person.native_id,
        "status": ext.pop("status", None),
        "dateLastModified": ext.pop("dateLastModified", None),
        "birthDate": d.birth_date.isoformat() if d.birth_date else None,
        "sex": sexes.to_wire(d.sex.value) if d.sex else None,
    }
    for wire, code in RACE_FLAGS.items():
        out[wire] = "true" if code in d.races else "false"
    if d.hispanic_or_latino is not None:
        out["hispanicOrLatinoEthnicity"] = "true" if d.hispanic_or_latino else "false"
    out["countryOfBirthCode"] = d.birth_country
    out["stateOfBirthAbbreviation"] = d.birth_state
    out["publicSchoolResidenceStatus"] = d.public_school_residence_status
    ext.pop("status", None)
    for k, v in ext.items():
        out.setdefault(k, v)
        if out[k] is None:
            out[k] = v
    return {k: v for k, v in out.items() if v is not None}


__all__ = ["RACE_FLAGS", "demographics_to_canonical", "demographics_to_wire"]
