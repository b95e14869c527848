"""The Nudge rule grammar (nudge.lark), shipped inside the package as `engine.grammar`."""
