"""HTTP surface: app assembly, error mapping, and the canonical /v1 API."""
