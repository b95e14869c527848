"""Nudge: rule-based marketing automation.

Pipeline: grammar → parse tree (`language`, `parse`) → AST (`transform`, `ast`) → checked rule
set (`check`, `types`, `ruleset`) → compiled plan (`triggers`, `sqlgen`) → evaluation
(`evaluate`) → policies (`policies`, `gates`) → outbox (`tick`, `ledger`, `outbox`) → channels
(`channels`). README.md's "How it works" lists the modules of each stage.
"""
