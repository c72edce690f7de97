"""The Statement Resource's ``format`` parameter (Communication 2.1.3): ``ids`` keeps only
identifiers; ``canonical`` replaces activity definitions with the LRS's own and keeps one
language per language map, chosen by Accept-Language (2.1.3.s4)."""

from __future__ import annotations

from typing import Any

_IFIS = ("mbox", "mbox_sha1sum", "openid", "account")
_LANG_MAPS = ("name", "description")
_COMPONENT_LISTS = ("choices", "scale", "source", "target", "steps")


def accept_languages(header: str | None) -> list[str]:
    """RFC 7231 5.3.5: language ranges, best first (q=0 dropped)."""
    if not header:
        return []
    ranked = []
    for i, item in enumerate(header.split(",")):
        tag, _, params = item.strip().partition(";")
        q = 1.0
        for p in params.split(";"):
            name, _, value = p.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if tag and q > 0:
            ranked.append((-q, i, tag.strip().lower()))
    return [tag for _, _, tag in sorted(ranked)]


def pick(language_map: dict[str, str], langs: list[str]) -> dict[str, str]:
    """One entry: the first range that matches a tag or its prefix; else the first entry."""
    if len(language_map) <= 1:
        return language_map
    lowered = {k.lower(): k for k in language_map}
    for want in langs:
        if want == "*":
            break
        for low, key in lowered.items():
            if low == want or low.startswith(want + "-"):
                return {key: language_map[key]}
    key = next(iter(language_map))
    return {key: language_map[key]}


def _agent_ids(a: dict[str, Any]) -> dict[str, Any]:
    out = {k: a[k] for k in ("objectType", *_IFIS) if k in a}
    if "member" in a and not any(k in a for k in _IFIS):
        out["member"] = [_agent_ids(m) for m in a["member"]]
    return out


def ids_only(s: dict[str, Any]) -> dict[str, Any]:
    """``format=ids``: agents and groups by identifier, activities and verbs by id
    (Communication 2.1.3: "only include minimum information necessary ... to identify
    them"; an Activity's objectType is its default, so not needed)."""
    out = dict(s)
    out["actor"] = _agent_ids(s["actor"])
    out["verb"] = {"id": s["verb"]["id"]}
    obj = s["object"]
    ot = obj.get("objectType", "Activity")
    if ot == "Activity":
        out["object"] = {"id": obj["id"]}
    elif ot in ("Agent", "Group"):
        out["object"] = _agent_ids(obj)
    elif ot == "SubStatement":
        out["object"] = ids_only(obj)
    if "authority" in s:
        out["authority"] = _agent_ids(s["authority"])
    ctx = s.get("context")
    if ctx:
        ctx = out["context"] = dict(ctx)
        for k in ("instructor", "team"):
            if k in ctx:
                ctx[k] = _agent_ids(ctx[k])
        if "contextActivities" in ctx:
            ctx["contextActivities"] = {k: [{"id": a["id"]} for a in (v if isinstance(v, list) else [v])]
                                        for k, v in ctx["contextActivities"].items()}
    return out


def _canonical_activity(a: dict[str, Any], definitions: dict[str, dict[str, Any]], langs: list[str]) -> dict[str, Any]:
    definition = definitions.get(a["id"], a.get("definition"))
    out = {k: a[k] for k in ("objectType", "id") if k in a}
    if definition:
        d = dict(definition)
        for k in _LANG_MAPS:
            if k in d:
                d[k] = pick(d[k], langs)
        for k in _COMPONENT_LISTS:
            if k in d:
                d[k] = [{**c, "description": pick(c["description"], langs)} if "description" in c else c for c in d[k]]
        out["definition"] = d
    return out


def canonical(s: dict[str, Any], definitions: dict[str, dict[str, Any]], langs: list[str]) -> dict[str, Any]:
    """``format=canonical``: the LRS's definitions, one language per map."""
    out = dict(s)
    verb = s["verb"]
    out["verb"] = {**verb, "display": pick(verb["display"], langs)} if "display" in verb else verb
    obj = s["object"]
    ot = obj.get("objectType", "Activity")
    if ot == "Activity":
        out["object"] = _canonical_activity(obj, definitions, langs)
    elif ot == "SubStatement":
        out["object"] = canonical(obj, definitions, langs)
    ctx = s.get("context")
    if ctx and "contextActivities" in ctx:
        ctx = out["context"] = dict(ctx)
        ctx["contextActivities"] = {k: [_canonical_activity(a, definitions, langs) for a in (v if isinstance(v, list) else [v])]
                                    for k, v in ctx["contextActivities"].items()}
    if "attachments" in s:
        out["attachments"] = [
            {**a, **{k: pick(a[k], langs) for k in ("display", "description") if k in a}} for a in s["attachments"]
        ]
    return out
