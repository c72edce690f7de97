"""Evidence -> proficiency: calculation methods, the engine (incremental and full), rollups,
progressions and "what's next", learner profiles and plans (DESIGN section 1). Reports on
the states are ``gateway.reports``, which depends on this package, never the reverse.

- ``methods``: the calculation methods (latest, highest, mean, weighted average, decaying
  average, mode, power law, n of m) and ``Rule``; docs/mastery.md defines each.
- ``structure``: a tenant's competencies, relations, rules and scales as the engine reads them.
- ``derived``: ``Derived``, a computed state before it becomes a record.
- ``serial``: a state's stored JSON and hash, built without pydantic (the full recompute).
- ``engine``: ``MasteryEngine``, incremental (a store listener) and full recompute.
- ``learners``: one learner's view: explanations, next competencies, profile, plans.
- ``rules``: creating, replacing and deleting rules (``RuleBook``), and the recompute a
  change starts in the background (``Recomputes``).
"""
