"""What reaches people and systems: notifications (notify.py), job reports (jobreport.py, posted
by webhook.py), LIMS rows (lims.py) and Allotrope documents (asm.py).

Views only read (DESIGN.md, invariant 10): everything here reads the database and the health
checks, and keeps its own bookkeeping (what was sent, what is still owed) in ``data/reports/``
(state.py), never in the database. Nothing here runs on the path of a file: a slow or absent
receiver delays no ingest.
"""
