"""latentserve.promotion: quality gates, promote and rollback of registry aliases.

Sits above the service layer because its gates run the embedded backend. Example::

    from latentserve.promotion.promote import promote
    result = promote(uri, "sprites-vae", 3, "production", gates=load_gates(None))
"""
