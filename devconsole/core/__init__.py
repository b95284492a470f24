"""The Textual-free core: server engine, event protocol, supervision, catalogue.

Nothing under ``devconsole.core`` imports Textual; ``tests/test_layers.py``
checks that in a fresh interpreter.
"""
