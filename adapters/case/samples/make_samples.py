"""Regenerate the bundled CASE sample frameworks (deterministic: same bytes every run).

Run: python adapters/case/samples/make_samples.py

Both frameworks are fictional (the ``.example`` domains are reserved for examples):

- ``northwind-state-mathematics.json``: "Northwind State Mathematics Standards", grades K-8,
  Grade -> Domain -> Cluster -> Standard -> Component (several hundred CFItems), isChildOf
  with sequence numbers, precedes chains (standard to standard inside a cluster, and each
  domain's progression from grade to grade), CFDefinitions (item types, subjects, concepts,
  a licence, association groupings) and a four-level CFRubric for problem solving.
- ``cedar-valley-mathematics.json``: the Cedar Valley USD grade 4 and grade 7 mathematics
  competencies (the demo district's own), each an ``exactMatchOf`` crosswalk to the state
  standard it restates, some ``isRelatedTo`` a neighbouring one, with its own precedes chain.

``build_state`` / ``build_district`` return the packages as dicts; ``generate(n_items,
n_associations)`` builds an arbitrarily large framework for bench/case_import.py.
"""

from __future__ import annotations

import random
import sys
import uuid
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
NS = uuid.UUID("0b1c7d5e-3f08-5c62-9a4d-7e2f1a6b3c90")  # fixed: the sample identifiers derive from it
STAMP = "2026-06-15T09:30:00+00:00"


def uid(*parts: str) -> str:
    return str(uuid.uuid5(NS, "/".join(parts)))


GRADES = ["K", "1", "2", "3", "4", "5", "6", "7", "8"]
GRADE_NAMES = {"K": "Kindergarten", **{g: f"Grade {g}" for g in GRADES[1:]}}
EDU = {"K": "KG", **{g: f"{int(g):02d}" for g in GRADES[1:]}}
RANGE = {"K": 20, "1": 120, "2": 1000, "3": 10000, "4": 1000000, "5": 1000000, "6": 1000000, "7": 1000000, "8": 1000000}
FRACTION = {"3": "halves, thirds, fourths, sixths and eighths", "4": "tenths and hundredths", "5": "unlike denominators"}

#: domain code -> (title, grades, [(cluster heading, [standard statement templates])])
DOMAINS: dict[str, tuple[str, list[str], list[tuple[str, list[str]]]]] = {
    "CC": ("Counting and Cardinality", ["K"], [
        ("Know number names and the count sequence.", [
            "Count to 100 by ones and by tens.",
            "Count forward beginning from a given number within the known sequence.",
            "Write numbers from 0 to 20 and represent a number of objects with a written numeral.",
        ]),
        ("Count to tell the number of objects.", [
            "Understand the relationship between numbers and quantities; connect counting to cardinality.",
            "Count to answer 'how many?' questions about as many as 20 things arranged in a line, a rectangular array or a circle.",
        ]),
        ("Compare numbers.", [
            "Identify whether the number of objects in one group is greater than, less than or equal to the number in another group.",
            "Compare two numbers between 1 and 10 presented as written numerals.",
        ]),
    ]),
    "OA": ("Operations and Algebraic Thinking", ["K", "1", "2", "3", "4", "5"], [
        ("Represent and solve problems involving addition and subtraction.", [
            "Use addition and subtraction within {r} to solve word problems involving situations of adding to, taking from, putting together and comparing.",
            "Solve word problems that call for addition of three whole numbers whose sum is less than or equal to {r}.",
            "Represent a problem with objects, drawings and equations with a symbol for the unknown number.",
        ]),
        ("Understand and apply properties of operations.", [
            "Apply properties of operations as strategies to add and subtract within {r}.",
            "Understand subtraction as an unknown-addend problem within {r}.",
        ]),
        ("Add and subtract fluently.", [
            "Relate counting to addition and subtraction.",
            "Add and subtract within {r} using strategies such as counting on, making ten and decomposing a number.",
            "Fluently add and subtract within the grade's fluency target, using mental strategies.",
        ]),
        ("Work with equations and patterns.", [
            "Understand the meaning of the equal sign and determine whether equations are true or false.",
            "Determine the unknown whole number in an equation relating three whole numbers.",
            "Generate a number or shape pattern that follows a given rule and identify features of the pattern.",
        ]),
    ]),
    "NBT": ("Number and Operations in Base Ten", ["K", "1", "2", "3", "4", "5"], [
        ("Understand place value.", [
            "Understand that the digits of a number within {r} represent amounts of ones, tens, hundreds and beyond.",
            "Read and write numbers within {r} using base-ten numerals, number names and expanded form.",
            "Compare two numbers within {r} based on the meanings of the digits, using >, = and < symbols.",
        ]),
        ("Use place value understanding and properties of operations to add and subtract.", [
            "Fluently add and subtract multi-digit whole numbers within {r} using strategies based on place value.",
            "Mentally add or subtract 10 or 100 to or from a given number within {r}.",
            "Explain why addition and subtraction strategies work, using place value and the properties of operations.",
        ]),
        ("Perform operations with multi-digit numbers.", [
            "Use place value understanding to round whole numbers within {r}.",
            "Multiply and divide multi-digit whole numbers using strategies based on place value and the properties of operations.",
        ]),
    ]),
    "NF": ("Number and Operations - Fractions", ["3", "4", "5"], [
        ("Develop understanding of fractions as numbers.", [
            "Understand a fraction as a number on the number line, working with {f}.",
            "Explain equivalence of fractions and compare fractions by reasoning about their size, with {f}.",
        ]),
        ("Build fractions from unit fractions.", [
            "Understand addition and subtraction of fractions as joining and separating parts referring to the same whole, with {f}.",
            "Solve word problems involving addition and subtraction of fractions, with {f}.",
            "Apply and extend previous understandings of multiplication to multiply a fraction by a whole number.",
        ]),
        ("Use decimal notation for fractions.", [
            "Express a fraction with denominator 10 as an equivalent fraction with denominator 100, and use decimal notation.",
            "Compare two decimals to hundredths by reasoning about their size.",
        ]),
    ]),
    "MD": ("Measurement and Data", ["K", "1", "2", "3", "4", "5"], [
        ("Measure lengths and solve problems involving measurement.", [
            "Measure the length of an object by selecting and using appropriate tools such as rulers and measuring tapes.",
            "Estimate lengths using units of inches, feet, centimetres and metres.",
            "Solve problems involving measurement and conversion of measurements within one system of units.",
        ]),
        ("Work with time, money and data.", [
            "Tell and write time from analogue and digital clocks.",
            "Solve word problems involving money and elapsed time.",
            "Draw picture graphs and bar graphs to represent a data set with several categories, and solve problems using them.",
        ]),
        ("Understand concepts of area, perimeter and volume.", [
            "Recognise area as an attribute of plane figures and understand concepts of area measurement.",
            "Solve real-world problems involving perimeters of polygons and areas of rectangles.",
            "Recognise volume as an attribute of solid figures and relate it to multiplication and addition.",
        ]),
    ]),
    "G": ("Geometry", ["K", "1", "2", "3", "4", "5", "6", "7", "8"], [
        ("Reason with shapes and their attributes.", [
            "Identify and describe shapes, and distinguish between defining and non-defining attributes.",
            "Partition shapes into parts with equal areas and express the area of each part as a unit fraction of the whole.",
            "Classify two-dimensional figures in a hierarchy based on their properties.",
        ]),
        ("Draw, construct and describe geometrical figures.", [
            "Draw and identify points, lines, line segments, rays, angles, and perpendicular and parallel lines.",
            "Solve real-world problems involving area, surface area and volume.",
            "Use informal arguments to establish facts about angle sums and exterior angles of triangles.",
        ]),
        ("Understand congruence, similarity and the Pythagorean theorem.", [
            "Verify experimentally the properties of rotations, reflections and translations.",
            "Understand that a two-dimensional figure is congruent or similar to another through a sequence of transformations.",
            "Explain a proof of the Pythagorean theorem and apply it to find unknown side lengths in right triangles.",
        ]),
    ]),
    "RP": ("Ratios and Proportional Relationships", ["6", "7"], [
        ("Understand ratio concepts and use ratio reasoning to solve problems.", [
            "Understand the concept of a ratio and use ratio language to describe a ratio relationship between two quantities.",
            "Understand the concept of a unit rate associated with a ratio and use rate language.",
            "Use ratio and rate reasoning to solve real-world and mathematical problems.",
        ]),
        ("Analyse proportional relationships and use them to solve problems.", [
            "Compute unit rates associated with ratios of fractions, including ratios of lengths and areas.",
            "Recognise and represent proportional relationships between quantities in tables, graphs and equations.",
            "Use proportional relationships to solve multistep ratio and percent problems.",
        ]),
    ]),
    "NS": ("The Number System", ["6", "7", "8"], [
        ("Apply and extend understandings of operations with fractions.", [
            "Interpret and compute quotients of fractions, and solve word problems involving division of fractions by fractions.",
            "Fluently divide multi-digit numbers and add, subtract, multiply and divide multi-digit decimals.",
        ]),
        ("Apply and extend understandings of numbers to the system of rational numbers.", [
            "Understand that positive and negative numbers are used together to describe quantities having opposite directions or values.",
            "Apply properties of operations to add, subtract, multiply and divide rational numbers.",
            "Solve real-world and mathematical problems involving the four operations with rational numbers.",
        ]),
        ("Know that there are numbers that are not rational, and approximate them.", [
            "Know that numbers that are not rational are called irrational, and that every number has a decimal expansion.",
            "Use rational approximations of irrational numbers to compare their size and locate them on a number line.",
        ]),
    ]),
    "EE": ("Expressions and Equations", ["6", "7", "8"], [
        ("Apply and extend previous understandings of arithmetic to algebraic expressions.", [
            "Write and evaluate numerical expressions involving whole-number exponents.",
            "Write, read and evaluate expressions in which letters stand for numbers.",
            "Apply the properties of operations to generate equivalent expressions.",
        ]),
        ("Reason about and solve one-variable equations and inequalities.", [
            "Understand solving an equation or inequality as a process of answering which values make it true.",
            "Solve real-world and mathematical problems by writing and solving equations of the form x + p = q and px = q.",
            "Solve linear equations in one variable, including equations with rational coefficients.",
        ]),
        ("Analyse and solve pairs of simultaneous linear equations.", [
            "Understand that solutions to a system of two linear equations correspond to points of intersection of their graphs.",
            "Solve systems of two linear equations in two variables algebraically, and estimate solutions by graphing.",
        ]),
    ]),
    "F": ("Functions", ["8"], [
        ("Define, evaluate and compare functions.", [
            "Understand that a function is a rule that assigns to each input exactly one output.",
            "Compare properties of two functions each represented in a different way.",
            "Interpret the equation y = mx + b as defining a linear function whose graph is a straight line.",
        ]),
        ("Use functions to model relationships between quantities.", [
            "Construct a function to model a linear relationship between two quantities.",
            "Describe qualitatively the functional relationship between two quantities by analysing a graph.",
        ]),
    ]),
    "SP": ("Statistics and Probability", ["6", "7", "8"], [
        ("Develop understanding of statistical variability.", [
            "Recognise a statistical question as one that anticipates variability in the data related to the question.",
            "Understand that a set of data collected to answer a statistical question has a distribution described by its centre, spread and shape.",
        ]),
        ("Summarise and describe distributions.", [
            "Display numerical data in plots on a number line, including dot plots, histograms and box plots.",
            "Summarise numerical data sets in relation to their context, including measures of centre and variability.",
        ]),
        ("Investigate chance processes and develop probability models.", [
            "Understand that the probability of a chance event is a number between 0 and 1 that expresses its likelihood.",
            "Develop a probability model and use it to find probabilities of events.",
            "Construct and interpret scatter plots for bivariate measurement data to investigate patterns of association.",
        ]),
    ]),
}

COMPONENTS = ["Use concrete models or drawings to represent the situation.", "Explain the reasoning used, orally or in writing.",
              "Apply the strategy to a real-world context."]


def link(title: str, ident: str, uri: str) -> dict[str, str]:
    return {"title": title, "identifier": ident, "uri": uri}


class Builder:
    def __init__(self, key: str, base: str, title: str, **doc: Any) -> None:
        self.key, self.base = key, base
        self.doc_id = uid(key, "document")
        self.doc = {"identifier": self.doc_id, "uri": self.uri(self.doc_id), "title": title, "lastChangeDateTime": STAMP, **doc}
        self.doc_link = link(title, self.doc_id, self.doc["uri"])
        self.items: list[dict[str, Any]] = []
        self.assocs: list[dict[str, Any]] = []
        self.by_code: dict[str, dict[str, Any]] = {}

    def uri(self, ident: str) -> str:
        return f"{self.base}/uri/{ident}"

    def item(self, code: str, statement: str, item_type: str, type_id: str, levels: list[str], **extra: Any) -> dict[str, Any]:
        ident = uid(self.key, "item", code)
        it = {
            "identifier": ident, "uri": self.uri(ident), "CFDocumentURI": self.doc_link, "fullStatement": statement,
            "humanCodingScheme": code, "CFItemType": item_type,
            "CFItemTypeURI": link(item_type, type_id, self.uri(type_id)), "educationLevel": levels, "language": "en",
            "lastChangeDateTime": STAMP, **extra,
        }
        self.items.append(it)
        self.by_code[code] = it
        return it

    def associate(self, kind: str, origin: dict[str, Any], dest: dict[str, Any], seq: int | None = None, *, name: str = "",
                  grouping: dict[str, str] | None = None) -> None:
        o_title = origin.get("humanCodingScheme") or origin.get("title", "")
        d_title = dest.get("humanCodingScheme") or dest.get("title", "")
        ident = uid(self.key, "assoc", kind, origin["identifier"], dest["identifier"], name)
        a: dict[str, Any] = {
            "identifier": ident, "uri": self.uri(ident), "CFDocumentURI": self.doc_link, "associationType": kind,
            "originNodeURI": link(o_title, origin["identifier"], origin["uri"]),
            "destinationNodeURI": link(d_title, dest["identifier"], dest["uri"]),
            "lastChangeDateTime": STAMP,
        }
        if seq is not None:
            a["sequenceNumber"] = seq
        if grouping:
            a["CFAssociationGroupingURI"] = grouping
        self.assocs.append(a)

    def package(self, definitions: dict[str, Any], rubrics: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        pkg: dict[str, Any] = {"CFDocument": self.doc, "CFItems": self.items, "CFAssociations": self.assocs, "CFDefinitions": definitions}
        if rubrics:
            pkg["CFRubrics"] = rubrics
        return pkg


def _definitions(b: Builder, types: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    type_ids = {t: uid(b.key, "itemtype", t) for t in types}
    subject = uid(b.key, "subject", "math")
    concepts = [("Number sense", "1"), ("Place value", "1.1"), ("Fractions", "1.2"), ("Algebraic reasoning", "2"),
                ("Proportional reasoning", "2.1"), ("Data and chance", "3")]
    defs = {
        "CFConcepts": [{"identifier": uid(b.key, "concept", c), "uri": b.uri(uid(b.key, "concept", c)), "title": c,
                        "keywords": c.lower(), "hierarchyCode": h, "lastChangeDateTime": STAMP} for c, h in concepts],
        "CFSubjects": [{"identifier": subject, "uri": b.uri(subject), "title": "Mathematics", "hierarchyCode": "1",
                        "description": "Mathematics, kindergarten to grade 8", "lastChangeDateTime": STAMP}],
        "CFLicenses": [{"identifier": uid(b.key, "licence"), "uri": b.uri(uid(b.key, "licence")), "title": "CC BY 4.0",
                        "description": "Creative Commons Attribution 4.0 International",
                        "licenseText": "https://creativecommons.org/licenses/by/4.0/", "lastChangeDateTime": STAMP}],
        "CFItemTypes": [{"identifier": type_ids[t], "uri": b.uri(type_ids[t]), "title": t, "description": f"A {t.lower()} of the framework",
                         "hierarchyCode": str(i + 1), "typeCode": t, "lastChangeDateTime": STAMP} for i, t in enumerate(types)],
        "CFAssociationGroupings": [{"identifier": uid(b.key, "grouping", "progression"), "uri": b.uri(uid(b.key, "grouping", "progression")),
                                    "title": "Learning progression", "description": "precedes chains across grades",
                                    "lastChangeDateTime": STAMP}],
    }
    return defs, type_ids


def build_state() -> dict[str, Any]:
    b = Builder("northwind-state", "https://case.northwind.example", "Northwind State Mathematics Standards",
                creator="Northwind State Department of Education", publisher="Northwind State Department of Education",
                description="Grade-level mathematics standards for kindergarten to grade 8 (fictional sample framework).",
                subject=["Mathematics"], language="en", version="2026", adoptionStatus="Adopted", statusStartDate="2026-07-01",
                officialSourceURL="https://education.northwind.example/standards/mathematics")
    types = ["Grade Level", "Domain", "Cluster", "Standard", "Component"]
    defs, tid = _definitions(b, types)
    grouping = link("Learning progression", defs["CFAssociationGroupings"][0]["identifier"], defs["CFAssociationGroupings"][0]["uri"])
    b.doc["subjectURI"] = [link("Mathematics", defs["CFSubjects"][0]["identifier"], defs["CFSubjects"][0]["uri"])]
    b.doc["licenseURI"] = link("CC BY 4.0", defs["CFLicenses"][0]["identifier"], defs["CFLicenses"][0]["uri"])
    rng = random.Random(20260615)
    previous_by_slot: dict[tuple[str, int, int], dict[str, Any]] = {}
    for gs, g in enumerate(GRADES, start=1):
        grade = b.item(f"NW.MATH.{g}", f"{GRADE_NAMES[g]} mathematics", "Grade Level", tid["Grade Level"], [EDU[g]])
        b.associate("isChildOf", grade, {"identifier": b.doc_id, "uri": b.doc["uri"], "title": b.doc["title"]}, gs)
        ds = 0
        for dcode, (dtitle, dgrades, clusters) in DOMAINS.items():
            if g not in dgrades:
                continue
            ds += 1
            domain = b.item(f"NW.MATH.{g}.{dcode}", dtitle, "Domain", tid["Domain"], [EDU[g]])
            b.associate("isChildOf", domain, grade, ds)
            for ci, (heading, standards) in enumerate(clusters):
                letter = "ABCDEFG"[ci]
                cluster = b.item(f"NW.MATH.{g}.{dcode}.{letter}", heading, "Cluster", tid["Cluster"], [EDU[g]], listEnumeration=letter)
                b.associate("isChildOf", cluster, domain, ci + 1)
                prev = None
                for si, template in enumerate(standards, start=1):
                    text = template.format(r=f"{RANGE[g]:,}", f=FRACTION.get(g, "fractions"))
                    std = b.item(f"NW.MATH.{g}.{dcode}.{letter}.{si}", text, "Standard", tid["Standard"], [EDU[g]],
                                 listEnumeration=str(si), conceptKeywords=[dtitle.lower(), heading.split()[0].lower()])
                    b.associate("isChildOf", std, cluster, si)
                    if prev is not None:
                        b.associate("precedes", prev, std)
                    prev = std
                    slot = (dcode, ci, si)
                    if slot in previous_by_slot:  # the progression: the same standard one grade earlier comes first
                        b.associate("precedes", previous_by_slot[slot], std, grouping=grouping)
                    previous_by_slot[slot] = std
                    if rng.random() < 0.3:
                        for k, comp_text in enumerate(COMPONENTS[: rng.choice([2, 3])]):
                            comp = b.item(f"{std['humanCodingScheme']}.{'abc'[k]}", comp_text, "Component", tid["Component"], [EDU[g]],
                                          listEnumeration="abc"[k], abbreviatedStatement=comp_text.split(",")[0][:60])
                            b.associate("isChildOf", comp, std, k + 1)
    # a retired standard, replaced: deprecated items stay resolvable
    old = b.item("NW.MATH.3.OA.A.9", "Solve two-step word problems using the four operations (2019 wording).", "Standard",
                 tid["Standard"], [EDU["3"]], statusEndDate="2026-06-30", notes="Replaced in the 2026 revision by NW.MATH.3.OA.A.3.")
    b.associate("replacedBy", old, b.by_code["NW.MATH.3.OA.A.3"])
    b.associate("isRelatedTo", b.by_code["NW.MATH.6.RP.A.1"], b.by_code["NW.MATH.6.NS.A.1"])
    b.associate("exemplar", b.by_code["NW.MATH.7.RP.B.3"],
                {"identifier": "task-percent-discount", "uri": "https://tasks.northwind.example/percent-discount", "title": "Percent discount task"})
    return b.package(defs, [_rubric(b)])


def _rubric(b: Builder) -> dict[str, Any]:
    rid = uid(b.key, "rubric", "problem-solving")
    levels = [("Beginning", 1, "Attempts the problem with significant errors or an incomplete strategy."),
              ("Developing", 2, "Uses a partly correct strategy; the solution has minor errors."),
              ("Proficient", 3, "Uses an efficient strategy and reaches a correct solution with a clear explanation."),
              ("Advanced", 4, "Solves the problem by more than one strategy and generalises the reasoning.")]
    criteria = []
    for pos, code in enumerate(["NW.MATH.4.OA.A.1", "NW.MATH.7.RP.B.3", "NW.MATH.7.EE.B.2"], start=1):
        item = b.by_code[code]
        cid = uid(b.key, "criterion", code)
        criteria.append({
            "identifier": cid, "uri": b.uri(cid), "category": f"Problem solving ({code})",
            "description": f"Applies {item['fullStatement'][0].lower()}{item['fullStatement'][1:]}", "weight": 1.0, "position": pos,
            "rubricId": rid, "CFItemURI": link(code, item["identifier"], item["uri"]), "lastChangeDateTime": STAMP,
            "CFRubricCriterionLevels": [
                {"identifier": uid(b.key, "level", code, q), "uri": b.uri(uid(b.key, "level", code, q)), "quality": q, "score": s,
                 "description": d, "feedback": f"{q}: {d}", "position": s, "rubricCriterionId": cid, "lastChangeDateTime": STAMP}
                for q, s, d in levels
            ],
        })
    return {"identifier": rid, "uri": b.uri(rid), "title": "Mathematical problem solving",
            "description": "Four-level rubric for multi-step problem solving", "lastChangeDateTime": STAMP, "CFRubricCriteria": criteria}


def build_district(state: dict[str, Any]) -> dict[str, Any]:
    by_code = {i["humanCodingScheme"]: i for i in state["CFItems"]}
    b = Builder("cedar-valley", "https://standards.cvusd.example", "Cedar Valley USD Mathematics Competencies (Grades 4 and 7)",
                creator="Cedar Valley Unified School District", publisher="Cedar Valley Unified School District",
                description="District competencies for grade 4 and grade 7 mathematics, crosswalked to the Northwind State standards.",
                subject=["Mathematics"], language="en", version="2026.1", adoptionStatus="Adopted")
    types = ["Course", "Competency"]
    defs, tid = _definitions(b, types)
    for cs, g in enumerate(["4", "7"], start=1):
        course = b.item(f"CV.M{g}", f"Grade {g} Mathematics", "Course", tid["Course"], [EDU[g]])
        b.associate("isChildOf", course, {"identifier": b.doc_id, "uri": b.doc["uri"], "title": b.doc["title"]}, cs)
        state_standards = [i for i in state["CFItems"] if i["CFItemType"] == "Standard" and i["humanCodingScheme"].startswith(f"NW.MATH.{g}.")]
        prev = None
        for n, st in enumerate(state_standards, start=1):
            comp = b.item(f"CV.M{g}.{n:02d}", f"I can {st['fullStatement'][0].lower()}{st['fullStatement'][1:]}", "Competency",
                          tid["Competency"], [EDU[g]], notes=f"Restates {st['humanCodingScheme']}")
            b.associate("isChildOf", comp, course, n)
            b.associate("exactMatchOf", comp, st)
            if prev is not None:
                b.associate("precedes", prev, comp)
            prev = comp
            parts = st["humanCodingScheme"].rsplit(".", 1)
            sibling = by_code.get(f"{parts[0]}.{int(parts[1]) + 1}")
            if sibling is not None and n % 3 == 0:
                b.associate("isRelatedTo", comp, sibling)
    return b.package(defs)


def generate(n_items: int = 20000, n_associations: int = 40000, *, seed: int = 7) -> dict[str, Any]:
    """A synthetic framework of ``n_items`` CFItems in a 4-level tree and ``n_associations``
    CFAssociations (the isChildOf tree, then precedes chains and isRelatedTo links)."""
    rng = random.Random(seed)
    b = Builder(f"bench-{n_items}-{n_associations}-{seed}", "https://case.bench.example", f"Generated framework ({n_items} items)",
                creator="bench/case_import.py", subject=["Mathematics"], language="en", version="1")
    defs, tid = _definitions(b, ["Domain", "Cluster", "Standard", "Component"])
    root = {"identifier": b.doc_id, "uri": b.doc["uri"], "title": b.doc["title"]}
    levels = ["Domain", "Cluster", "Standard", "Component"]
    parents: list[list[dict[str, Any]]] = [[root]]
    per_level = [max(1, n_items // 400), max(1, n_items // 40), max(1, n_items // 4)]
    per_level.append(n_items - sum(per_level))
    for depth, count in enumerate(per_level):
        ups = parents[depth]
        made = []
        for k in range(count):
            parent = ups[k % len(ups)]
            code = f"{parent.get('humanCodingScheme', 'GEN')}.{k // len(ups) + 1}"
            it = b.item(code, f"{levels[depth]} {k + 1}: students can reason about quantity {rng.randint(1, 999)} "
                              f"and explain the strategy they used.", levels[depth], tid[levels[depth]], [EDU[GRADES[k % 9]]])
            b.associate("isChildOf", it, parent, k // len(ups) + 1)
            made.append(it)
        parents.append(made)
    leaves = parents[-1] or parents[-2]
    i = 0
    while len(b.assocs) < n_associations:
        a, c = leaves[i % len(leaves)], leaves[(i + 1) % len(leaves)]
        b.associate("precedes" if i % 2 == 0 else "isRelatedTo", a, c, name=str(i))
        i += 1
    return b.package(defs)


def write(path: Path, pkg: dict[str, Any]) -> None:
    path.write_bytes(orjson.dumps(pkg, option=orjson.OPT_INDENT_2) + b"\n")


def main() -> None:
    state = build_state()
    district = build_district(state)
    write(HERE / "northwind-state-mathematics.json", state)
    write(HERE / "cedar-valley-mathematics.json", district)
    for name, pkg in (("northwind-state-mathematics.json", state), ("cedar-valley-mathematics.json", district)):
        kinds: dict[str, int] = {}
        for a in pkg["CFAssociations"]:
            kinds[a["associationType"]] = kinds.get(a["associationType"], 0) + 1
        print(f"{name}: {len(pkg['CFItems'])} items, {len(pkg['CFAssociations'])} associations {kinds}", file=sys.stderr)


if __name__ == "__main__":
    main()
