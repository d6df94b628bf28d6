"""The report kit: what every report page (sweep, study, transfer) shares.

``inputs`` reads CSV tables and run logs, ``provenance`` says where a page's numbers come from,
``stats`` holds the paired tests (exact McNemar, Holm), ``pairing`` finds a variant's baseline model
from the facts its rows record, ``render`` turns a page's context into HTML. A page module only
assembles its sections; nothing here imports the attack, model, sweep or transfer code.
"""
