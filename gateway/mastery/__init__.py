"""Evidence -> proficiency: calculation methods, the engine (incremental and full), rollups,
progressions and "what's next", learner profiles and plans, reports (DESIGN section 1)."""
