"""The routing layer (DESIGN section 6): connections, routes, cursors, the outbox's
delivery, failure policy, dead letters, sync runs and the two delivery engines.

``protocol`` is what it asks of an adapter's client side; everything else here knows no
standard.
"""
