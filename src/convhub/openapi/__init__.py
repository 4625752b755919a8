"""OpenAPI 3.1 documents of both dialects, generated from the declarations the server reads
requests through (``convhub.wire``) and the tables it answers errors from: what a document says
is what the server enforces, and a test keeps the copies in ``docs/openapi/`` equal to them.

It sits above both dialects, as the composition root does: each document reads one dialect's
actions and error table, and ``schemas`` turns wire forms into JSON Schema for either.
"""
