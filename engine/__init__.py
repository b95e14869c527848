"""Nudge: rule-based marketing automation.

The packages follow the pipeline: `language` (grammar → parse tree → AST) → `checking` (the
checked rule set) → `plan` (triggers and conditions as SQL) → `evaluation` (the one core, and
`simulate`, `explain` and the tick that drive it) → `policies` → `outbox` (the ledger, the
transactional outbox, templates) → `channels`. README.md's "How it works" lists the modules of
each stage.
"""
