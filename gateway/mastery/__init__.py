"""Evidence -> proficiency: calculation methods, the engine (incremental and full), rollups,
progressions and "what's next", learner profiles and plans (DESIGN section 1). Reports on
the states are ``gateway.reports``, which depends on this package, never the reverse.

- ``methods``: the calculation methods (latest, highest, mean, weighted average, decaying
  average, mode, power law, n of m) and ``Rule``; docs/mastery.md defines each.
- ``structure``: a tenant's competencies, relations, rules and scales as the engine reads them.
- ``derived``: ``Derived``, a computed state before it becomes a record.
- ``derivation``: a competency's state from its evidence, a rollup's from its children's.
- ``serial``: a state's stored JSON and hash, built without pydantic (both paths).
- ``reads``: the incremental update's reads by exact keys.
- ``incremental``: the incremental update on the structure compiled to competency numbers.
- ``engine``: ``MasteryEngine``, incremental (a store listener) and full recompute.
- ``learners``: one learner's view: explanations, next competencies, profile, plans.
- ``rules``: creating, replacing and deleting rules (``RuleBook``), and the recompute a
  change starts in the background (``Recomputes``).
"""
