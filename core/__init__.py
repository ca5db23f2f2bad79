"""The pure core: the Mistral v2 language (lang/), the engine (engine.py,
model.py), task policies, states, the action table, graph and timeline
layout. No Django and no I/O (tests/engine/test_import_contract.py)."""
