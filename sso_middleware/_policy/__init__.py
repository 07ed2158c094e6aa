"""Policy: which paths need which sign-in (access rules), where a user may be sent, and what
may be added to an authorization request.
"""
