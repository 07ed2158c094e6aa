"""The WSGI face: the middleware, its routes, pages, cookies and request bodies, and the
environ accessors an application calls.
"""
