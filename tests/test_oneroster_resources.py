"""OneRoster 1.2 Resources service over real HTTP (and the 1.1 resource reads): resources
imported from resources.csv / classResources.csv / courseResources.csv / userResources.csv,
served under /ims/oneroster/resources/v1p2 with the scope resource.readonly; the links
select a class's, a course's and a user's resources; unknown owners and other tenants' ids
are 404 unknownobject."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from adapters.oneroster.csv.ingest import import_package
from gateway.errors import ValidationError
from gateway.store import Store
from tests.conftest import Api, serve

FIX = Path(__file__).parent / "fixtures" / "oneroster" / "district-v1p2"
RES = "/ims/oneroster/resources/v1p2"
V11 = "/ims/oneroster/v1p1"
SCOPE = ["resource.readonly"]
B = "sourcedId,status,dateLastModified"
FILES = {
    "resources": f"{B},vendorResourceId,title,roles,importance,vendorId,applicationId\n"
                 "res1,,,V-1,Fractions app,\"student,teacher\",primary,acme,\nres2,,,V-2,Atlas,,secondary,,\nres3,,,V-3,Unused,,,,\n",
    "classResources": f"{B},title,classSourcedId,resourceSourcedId\ncr1,,,,k1,res1\ncr2,tobedeleted,,,k1,res3\n",
    "courseResources": f"{B},title,courseSourcedId,resourceSourcedId\nco1,,,,c1,res2\n",
    "userResources": f"{B},title,userSourcedId,resourceSourcedId\nur1,,,,u1,res1\nur2,,,,u1,res2\n",
}


def package(tmp_path: Path, files: dict[str, str]) -> Path:
    d = tmp_path / f"pkg-{len(list(tmp_path.iterdir()))}"
    shutil.copytree(FIX, d)
    (d / "manifest.csv").unlink()
    for name, text in files.items():
        (d / f"{name}.csv").write_text(text, encoding="utf-8")
    listed = [p.stem for p in d.iterdir()]
    rows = ["propertyName,value", "manifest.version,1.0", "oneroster.version,1.2", *(f"file.{n},bulk" for n in listed)]
    (d / "manifest.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return d


@pytest.fixture
def api(store: Store, tmp_path: Path) -> Iterator[Api]:
    from adapters.base import Registry
    from adapters.oneroster import OneRosterAdapter
    from gateway.api.app import create_app
    from gateway.config import Settings

    import_package(store, package(tmp_path, FILES), tenant="t1", source="sis")
    settings = Settings(database_url=str(store.engine.url.render_as_string(hide_password=False)))
    with serve(create_app(settings, store=store, registry=Registry({"oneroster": OneRosterAdapter()}))) as base_url:
        yield Api(base_url, store, settings)


def _ids(r: httpx.Response) -> list[str]:
    assert r.status_code == 200, r.text
    return sorted(x["sourcedId"] for x in r.json()["resources"])


def test_resources_are_listed_and_read_one_by_one(api: Api):
    c = api.auth_client("t1", SCOPE)
    r = c.get(f"{RES}/resources")
    assert _ids(r) == ["res1", "res2", "res3"] and r.headers["X-Total-Count"] == "3"
    one = c.get(f"{RES}/resources/res1").json()["resource"]
    assert one["vendorResourceId"] == "V-1" and one["roles"] == ["student", "teacher"] and one["importance"] == "primary"
    assert _ids(c.get(f"{RES}/resources", params={"filter": "importance='secondary'"})) == ["res2"]


def test_class_course_and_user_resources_follow_their_active_links(api: Api):
    c = api.auth_client("t1", SCOPE)
    assert _ids(c.get(f"{RES}/classes/k1/resources")) == ["res1"]  # cr2 is tobedeleted
    assert _ids(c.get(f"{RES}/courses/c1/resources")) == ["res2"]
    assert _ids(c.get(f"{RES}/users/u1/resources")) == ["res1", "res2"]
    assert _ids(c.get(f"{V11}/classes/k1/resources")) == ["res1"]


def test_unknown_owner_and_other_tenant_are_unknownobject(api: Api):
    c = api.auth_client("t1", SCOPE)
    r = c.get(f"{RES}/classes/nope/resources")
    assert r.status_code == 404 and r.json()["imsx_CodeMinor"]["imsx_codeMinorField"][0]["imsx_codeMinorFieldValue"] == "unknownobject"
    other = api.auth_client("t2", SCOPE)
    assert other.get(f"{RES}/resources/res1").status_code == 404
    assert other.get(f"{RES}/resources").json()["resources"] == []


def test_resources_need_the_resource_scope(api: Api):
    assert api.auth_client("t1", ["gradebook.readonly"]).get(f"{RES}/resources").status_code == 403
    assert api.client().get(f"{RES}/resources").status_code == 401


def test_a_link_to_an_unknown_resource_names_file_row_and_column(store: Store, tmp_path: Path):
    bad = {**FILES, "classResources": f"{B},title,classSourcedId,resourceSourcedId\ncr1,,,,k1,res404\n",
           "resources": FILES["resources"].replace("primary", "main")}
    with pytest.raises(ValidationError) as e:  # strict; tolerant holds res404 (test_oneroster_gradebook_refs)
        import_package(store, package(tmp_path, bad), tenant="t1", source="sis", strict=True)
    errs = {(d.location, d.field) for d in e.value.errors}
    assert ("classResources.csv row 2", "resourceSourcedId") in errs
    assert ("resources.csv row 2", "importance") in errs
