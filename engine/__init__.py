"""Nudge: rule-based marketing automation.

Pipeline, one module per stage: grammar → parse tree (`parse`) → AST (`ast`) → checked rule set
(`check`) → compiled plan (`plan`) → evaluation (`evaluate`) → policies (`policies`) → outbox
(`outbox`) → channels (`channels`).
"""
