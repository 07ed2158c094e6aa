"""The OpenID Connect protocol core: discovery, keys, HTTP to the provider, token checks.

Nothing here imports WSGI or WebOb: these modules speak to the provider and judge what it
sends, and the WSGI face (:mod:`sso_middleware._wsgi`) turns their results into responses.
"""
