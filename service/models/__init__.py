"""Which generator version serves a request, and keeping versions loaded.

`lease` (what a request holds; the request path imports only this), `registry_access` (registry
calls off the event loop), `aliases` (alias resolution, pins), `pool` (loaded versions:
load → warm, LRU, drain → unload), `watcher` (the poll that swaps moved aliases),
`serving_state` (health and model gauges, published once per change) and `manager` (the
facade the server and servicer use).
"""
