"""Signed-in sessions: the state machine over a store back end, token refresh, locks, revocations.

Where a record lives is the business of :mod:`sso_middleware.stores`; this layer decides what a
session holds and when it ends.
"""
